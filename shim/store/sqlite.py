"""The embedded store: SQLite log + current-state table, in-memory index, group commits.

Layout (one file, WAL mode):
  log(rev INTEGER PRIMARY KEY, key, type, value, prev_rev) — every write, rowid = revision
  kv(key PRIMARY KEY, rev, value)                            — current state, same transaction
  meta(name PRIMARY KEY, value)                              — 'compacted', 'rev'

The current state is also held in memory (key -> Entry), so reads never touch the
disk. A write is checked and applied to memory at once on the event loop (so
preconditions are exact and serial), queued into the next group commit, and
acknowledged — and fanned out to watchers — only after its transaction committed.
All SQLite work runs on one dedicated thread. kine (k3s) is the model for the log.
"""
from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import os
import sqlite3
from typing import AsyncIterator

import orjson

from .base import (ADDED, DELETED, MODIFIED, TICK, Compacted, Entry, Event, KeyExists,
                   KeyNotFound, RevisionConflict, Store, Watcher, WatchStream,
                   resource_prefix)

_TYPES = {ADDED: 0, MODIFIED: 1, DELETED: 2}
_TYPE_NAMES = {v: k for k, v in _TYPES.items()}


def _stamp(obj: dict, rev: int) -> Entry:
    obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
    return Entry(obj, orjson.dumps(obj), rev)


class SQLiteStore(Store):
    def __init__(self, path: str, *, history: int = 100_000, compact_interval: float = 300.0):
        self.path = path
        self.history = history
        self.compact_interval = compact_interval
        self._rev = 0
        self._compacted = 0
        self._dispatched = 0
        self._data: dict[str, Entry] = {}
        self._keys: dict[str, list[str]] = {}       # resource prefix -> sorted keys
        self._watchers: dict[str, set[Watcher]] = {}
        self._pending: list[tuple[Event, asyncio.Future]] = []
        self._commit_task: asyncio.Task | None = None
        self._compactor: asyncio.Task | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None
        self._failed: BaseException | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._rev

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self) -> None:
        d = os.path.dirname(self.path)
        if d:
            os.makedirs(d, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL: a commit survives kill -9
        db.executescript("""
            CREATE TABLE IF NOT EXISTS log (rev INTEGER PRIMARY KEY, key TEXT NOT NULL,
                type INTEGER NOT NULL, value BLOB NOT NULL, prev_rev INTEGER);
            CREATE INDEX IF NOT EXISTS log_key ON log(key, rev);
            CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, rev INTEGER NOT NULL,
                value BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        """)
        self._db = db

    def _load(self) -> tuple[list[tuple[str, int, bytes]], int, int]:
        db = self._db
        rows = db.execute("SELECT key, rev, value FROM kv").fetchall()
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        top = db.execute("SELECT MAX(rev) FROM log").fetchone()[0] or 0
        return rows, max(top, meta.get("rev", 0)), meta.get("compacted", 0)

    async def start(self) -> None:
        await self._run(self._open)
        rows, rev, compacted = await self._run(self._load)
        for key, krev, value in rows:
            self._data[key] = Entry(orjson.loads(value), value, krev)
            self._keys.setdefault(resource_prefix(key), []).append(key)
        for keys in self._keys.values():
            keys.sort()
        self._rev = self._dispatched = rev
        self._compacted = compacted
        if self.compact_interval > 0:
            self._compactor = asyncio.create_task(self._compact_loop())

    async def close(self) -> None:
        if self._compactor:
            self._compactor.cancel()
        while self._commit_task and not self._commit_task.done():
            await asyncio.shield(self._commit_task)
        for ws in self._watchers.values():
            for w in list(ws):
                w.close()
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)

    # ---- reads --------------------------------------------------------------------------
    async def get(self, key: str) -> Entry | None:
        return self._data.get(key)

    def get_now(self, key: str) -> Entry | None:
        """Synchronous read of the current state (SQLite store only; used on hot paths)."""
        return self._data.get(key)

    async def list(self, prefix, *, start_after="", limit=0, predicate=None):
        return self.list_now(prefix, start_after=start_after, limit=limit, predicate=predicate)

    def list_now(self, prefix, *, start_after="", limit=0, predicate=None):
        keys = self._keys.get(resource_prefix(prefix + "x"), ())
        lo = bisect.bisect_left(keys, prefix)
        if start_after and start_after >= prefix:
            lo = max(lo, bisect.bisect_right(keys, start_after))
        out: list[Entry] = []
        data = self._data
        i, n = lo, len(keys)
        while i < n:
            k = keys[i]
            if not k.startswith(prefix):
                break
            e = data[k]
            i += 1
            if predicate is None or predicate(e):
                out.append(e)
                if limit and len(out) >= limit:
                    break
        more = None
        remaining = 0
        if limit and len(out) >= limit:
            remaining = bisect.bisect_left(keys, prefix + "\xff", i) - i
            if remaining > 0:
                more = keys[i - 1]
        return out, self._rev, more, remaining

    # ---- writes -------------------------------------------------------------------------
    def _check(self):
        if self._failed is not None:
            raise RuntimeError(f"store failed: {self._failed}")

    def _index_add(self, key: str) -> None:
        keys = self._keys.setdefault(resource_prefix(key), [])
        bisect.insort(keys, key)

    def _index_remove(self, key: str) -> None:
        keys = self._keys.get(resource_prefix(key))
        if keys:
            i = bisect.bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                del keys[i]

    async def create(self, key: str, obj: dict) -> Entry:
        self._check()
        if key in self._data:
            raise KeyExists(key)
        self._rev += 1
        entry = _stamp(obj, self._rev)
        self._data[key] = entry
        self._index_add(key)
        return await self._enqueue(Event(ADDED, key, entry, None))

    async def update(self, key: str, obj: dict, expected_rev: int | None) -> Entry:
        self._check()
        cur = self._data.get(key)
        if cur is None:
            raise KeyNotFound(key)
        if expected_rev is not None and expected_rev != cur.rev:
            raise RevisionConflict(cur)
        self._rev += 1
        entry = _stamp(obj, self._rev)
        self._data[key] = entry
        return await self._enqueue(Event(MODIFIED, key, entry, cur))

    async def delete(self, key: str, expected_rev: int | None) -> Entry:
        self._check()
        cur = self._data.get(key)
        if cur is None:
            raise KeyNotFound(key)
        if expected_rev is not None and expected_rev != cur.rev:
            raise RevisionConflict(cur)
        self._rev += 1
        last = orjson.loads(cur.raw)
        entry = _stamp(last, self._rev)
        del self._data[key]
        self._index_remove(key)
        return await self._enqueue(Event(DELETED, key, entry, cur))

    async def _enqueue(self, ev: Event) -> Entry:
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((ev, fut))
        if self._commit_task is None or self._commit_task.done():
            self._commit_task = asyncio.create_task(self._commit_loop())
        await fut
        return ev.entry

    def _write_batch(self, batch: list[Event]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO log(rev, key, type, value, prev_rev) VALUES (?,?,?,?,?)",
                [(e.rev, e.key, _TYPES[e.type], e.entry.raw, e.prev.rev if e.prev else None)
                 for e in batch])
            # apply in order: a key may be written several times in one batch
            for e in batch:
                if e.type == DELETED:
                    db.execute("DELETE FROM kv WHERE key=?", (e.key,))
                else:
                    db.execute("INSERT INTO kv(key, rev, value) VALUES (?,?,?) ON CONFLICT(key) "
                               "DO UPDATE SET rev=excluded.rev, value=excluded.value",
                               (e.key, e.rev, e.entry.raw))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def _commit_loop(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            events = [ev for ev, _ in batch]
            try:
                await self._run(self._write_batch, events)
            except BaseException as exc:  # the disk refused: nothing acknowledged, stop writing
                self._failed = exc
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError(f"store commit failed: {exc}"))
                return
            for ev in events:
                self._dispatched = ev.rev
                ws = self._watchers.get(resource_prefix(ev.key))
                if ws:
                    for w in ws:
                        if ev.key.startswith(w.prefix):
                            w.push(ev)
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    # ---- watch --------------------------------------------------------------------------
    def _replay(self, prefix: str, after: int, upto: int) -> list[tuple]:
        return self._db.execute(
            "SELECT l.rev, l.key, l.type, l.value, p.rev, p.value FROM log l "
            "LEFT JOIN log p ON p.rev = l.prev_rev "
            "WHERE l.rev > ? AND l.rev <= ? AND l.key >= ? AND l.key < ? ORDER BY l.rev",
            (after, upto, prefix, prefix + "\xff")).fetchall()

    async def watch(self, prefix: str, from_rev: int) -> "SQLiteWatch":
        if from_rev < self._compacted:
            raise Compacted(from_rev, self._compacted, self._rev)
        start = self._dispatched
        w = Watcher(prefix, max(from_rev, start))
        rp = resource_prefix(prefix + "x")
        self._watchers.setdefault(rp, set()).add(w)
        replay: list[Event] = []
        if from_rev < start:
            try:
                rows = await self._run(self._replay, prefix, from_rev, start)
            except BaseException:
                self._watchers[rp].discard(w)
                raise
            if from_rev < self._compacted:   # compacted while we read
                self._watchers[rp].discard(w)
                raise Compacted(from_rev, self._compacted, self._rev)
            for rev, key, typ, value, prev_rev, prev_value in rows:
                prev = Entry(orjson.loads(prev_value), prev_value, prev_rev) if prev_value else None
                replay.append(Event(_TYPE_NAMES[typ], key, Entry(orjson.loads(value), value, rev), prev))
        return SQLiteWatch(self, w, rp, replay, max(from_rev, start))

    def _unwatch(self, rp: str, w: Watcher) -> None:
        ws = self._watchers.get(rp)
        if ws:
            ws.discard(w)

    def watcher_count(self) -> int:
        return sum(len(v) for v in self._watchers.values())

    # ---- compaction ---------------------------------------------------------------------
    def _compact_db(self, rev: int, current: int) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM log WHERE rev <= ? AND rev < ?", (rev, current))
        db.execute("INSERT INTO meta(name, value) VALUES ('compacted', ?) ON CONFLICT(name) "
                   "DO UPDATE SET value=excluded.value", (rev,))
        db.execute("INSERT INTO meta(name, value) VALUES ('rev', ?) ON CONFLICT(name) "
                   "DO UPDATE SET value=MAX(value, excluded.value)", (current,))
        db.execute("COMMIT")

    async def compact(self, rev: int) -> None:
        rev = min(rev, self._dispatched)
        if rev <= self._compacted:
            return
        await self._run(self._compact_db, rev, self._dispatched)
        self._compacted = rev

    async def _compact_loop(self) -> None:
        while True:
            await asyncio.sleep(self.compact_interval)
            target = self._dispatched - self.history
            if target > self._compacted:
                try:
                    await self.compact(target)
                except Exception:  # compaction is best effort; the next round retries
                    pass


class SQLiteWatch(WatchStream):
    def __init__(self, store: SQLiteStore, w: Watcher, rp: str, replay: list[Event], base: int):
        self._store = store
        self._w = w
        self._rp = rp
        self._replay = replay
        self._last = base

    @property
    def progress_rev(self) -> int:
        if self._replay or not self._w.queue.empty():
            return self._last
        return max(self._last, self._store._dispatched)

    @property
    def overflowed(self) -> bool:
        return self._w.overflow

    async def __aiter__(self) -> AsyncIterator[Event]:
        for ev in self._replay:
            self._last = ev.rev
            yield ev
        self._replay = []
        q = self._w.queue
        while True:
            ev = await q.get()
            if ev is None:
                return
            if ev is TICK:
                yield ev
                continue
            self._last = ev.rev
            yield ev

    def close(self) -> None:
        self._store._unwatch(self._rp, self._w)
        self._w.close()

    def poke(self) -> None:
        self._w.poke()
