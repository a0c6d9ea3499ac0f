"""The store interface: a revisioned key-value log with watch, knowing nothing of kinds.

Keys look like etcd's: `/registry/<resource>/<namespace>/<name>` (namespaced) or
`/registry/<resource>/<name>` (cluster-scoped). Values are JSON-shaped dicts; the
store owns `metadata.resourceVersion`, which it sets to the revision of the write.
One global revision counts every write; a list is read at a revision; a watch
replays from a revision, then goes live; a revision older than the retained
history is "compacted" (the API answers 410 Expired).

Objects handed out by a store are shared and must be treated as read-only:
copy (e.g. `orjson.loads(entry.raw)`) before changing one.
"""
from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import AsyncIterator


class StoreError(Exception):
    pass


class KeyExists(StoreError):
    pass


class KeyNotFound(StoreError):
    pass


class RevisionConflict(StoreError):
    """The object changed since the revision the caller based its write on."""

    def __init__(self, current: "Entry"):
        super().__init__("revision conflict")
        self.current = current


class Compacted(StoreError):
    def __init__(self, requested: int, compacted: int, current: int):
        super().__init__(f"revision {requested} compacted at {compacted}")
        self.requested = requested
        self.compacted = compacted
        self.current = current


@dataclass(slots=True)
class Entry:
    """One stored object: the dict, its JSON bytes, and its revision."""
    obj: dict
    raw: bytes
    rev: int


ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
TICK = "TICK"   # a wake-up a watch consumer asked for (timeouts, bookmarks): not an event


@dataclass(slots=True)
class Event:
    type: str            # ADDED | MODIFIED | DELETED
    key: str
    entry: Entry         # the object after the write (for DELETED: last state, rev = deletion rev)
    prev: Entry | None   # the object before the write (None for ADDED)

    @property
    def rev(self) -> int:
        return self.entry.rev


def resource_prefix(key: str) -> str:
    """`/registry/pods/ns/x` -> `/registry/pods/`: watchers are indexed by it."""
    i = key.index("/", len("/registry/"))
    return key[: i + 1]


@dataclass(eq=False)
class Watcher:
    """A live subscription: events with rev > min_rev under prefix, in order."""
    prefix: str
    min_rev: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    closed: bool = False
    overflow: bool = False
    max_pending: int = 50_000

    def push(self, ev: Event) -> None:
        if self.closed or ev.entry.rev <= self.min_rev:
            return
        if self.queue.qsize() >= self.max_pending:
            self.overflow = True
            self.closed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(ev)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)

    def poke(self) -> None:
        if not self.closed:
            self.queue.put_nowait(TICK)


class Store(abc.ABC):
    """What every backend provides (SQLite embedded, etcd distributed)."""

    @property
    @abc.abstractmethod
    def revision(self) -> int:
        """The current global revision (what a list read now is "at")."""

    @property
    @abc.abstractmethod
    def compacted_revision(self) -> int:
        """Watches and continues from revisions below this fail with Compacted."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def get(self, key: str) -> Entry | None: ...

    @abc.abstractmethod
    async def list(self, prefix: str, *, start_after: str = "", limit: int = 0,
                   predicate=None) -> tuple[list[Entry], int, str | None, int]:
        """Entries under prefix in key order, after `start_after`, at most `limit` (0 = all)
        that satisfy `predicate(entry)`. Returns (entries, revision, last key if more remain,
        count of remaining keys under the prefix — an upper bound when a predicate is used)."""

    @abc.abstractmethod
    async def create(self, key: str, obj: dict) -> Entry: ...

    @abc.abstractmethod
    async def update(self, key: str, obj: dict, expected_rev: int | None) -> Entry:
        """Replace the object; `expected_rev` (if not None) must be the stored revision."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_rev: int | None) -> Entry:
        """Remove the key; returns the last state stamped with the deletion revision."""

    @abc.abstractmethod
    async def watch(self, prefix: str, from_rev: int) -> "WatchStream": ...

    @abc.abstractmethod
    async def compact(self, rev: int) -> None: ...


class WatchStream(abc.ABC):
    """Events after a revision: the replayed history first, then live ones."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def poke(self) -> None:
        """Make the iterator yield TICK soon (lets the consumer check timers without a task)."""

    @property
    @abc.abstractmethod
    def progress_rev(self) -> int:
        """A revision all events up to which have been delivered (for BOOKMARKs)."""
