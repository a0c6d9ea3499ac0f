"""The store contract, run against every backend (SQLite today; etcd joins the list with issue 9)."""
from __future__ import annotations

import asyncio

import pytest

from shim.store.base import Compacted, KeyExists, KeyNotFound, RevisionConflict
from shim.store.sqlite import SQLiteStore


def make_sqlite(tmp_path):
    return SQLiteStore(str(tmp_path / "state.db"), compact_interval=0)


BACKENDS = [make_sqlite]


@pytest.fixture(params=BACKENDS, ids=lambda f: f.__name__.removeprefix("make_"))
def make_store(request, tmp_path):
    return lambda: request.param(tmp_path)


def run(coro):
    return asyncio.run(coro)


def obj(name, ns="default", **extra):
    return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name, "namespace": ns},
            **extra}


def test_create_get_update_delete_and_revisions(make_store):
    async def go():
        s = make_store()
        await s.start()
        r0 = s.revision
        e = await s.create("/registry/configmaps/default/a", obj("a"))
        assert e.rev == r0 + 1
        assert e.obj["metadata"]["resourceVersion"] == str(e.rev)
        with pytest.raises(KeyExists):
            await s.create("/registry/configmaps/default/a", obj("a"))
        got = await s.get("/registry/configmaps/default/a")
        assert got.rev == e.rev
        e2 = await s.update("/registry/configmaps/default/a", obj("a", data={"k": "v"}), e.rev)
        assert e2.rev == e.rev + 1
        with pytest.raises(RevisionConflict):
            await s.update("/registry/configmaps/default/a", obj("a"), e.rev)
        with pytest.raises(KeyNotFound):
            await s.update("/registry/configmaps/default/zz", obj("zz"), None)
        d = await s.delete("/registry/configmaps/default/a", None)
        assert d.rev == e2.rev + 1 and d.obj["data"] == {"k": "v"}
        assert await s.get("/registry/configmaps/default/a") is None
        await s.close()
    run(go())


def test_list_prefix_limit_continue(make_store):
    async def go():
        s = make_store()
        await s.start()
        for ns in ("a", "b"):
            for i in range(5):
                await s.create(f"/registry/configmaps/{ns}/c{i}", obj(f"c{i}", ns))
        await s.create("/registry/secrets/a/s", obj("s", "a"))
        items, rev, more, _ = await s.list("/registry/configmaps/a/")
        assert [e.obj["metadata"]["name"] for e in items] == [f"c{i}" for i in range(5)]
        assert rev == s.revision and more is None
        page1, _, more, remaining = await s.list("/registry/configmaps/", limit=3)
        assert len(page1) == 3 and more == "/registry/configmaps/a/c2" and remaining == 7
        page2, _, more2, _ = await s.list("/registry/configmaps/", limit=100, start_after=more)
        assert len(page2) == 7 and more2 is None
        sel, _, _, _ = await s.list("/registry/configmaps/", predicate=lambda e: e.obj["metadata"]
                                    ["name"] == "c1")
        assert len(sel) == 2
        await s.close()
    run(go())


def test_watch_replay_then_live_and_compaction(make_store):
    async def go():
        s = make_store()
        await s.start()
        e1 = await s.create("/registry/configmaps/default/a", obj("a"))
        await s.create("/registry/configmaps/other/b", obj("b", "other"))
        e3 = await s.update("/registry/configmaps/default/a", obj("a", data={"x": "1"}), None)
        w = await s.watch("/registry/configmaps/default/", e1.rev - 1)
        it = w.__aiter__()
        ev = await asyncio.wait_for(it.__anext__(), 2)
        assert (ev.type, ev.rev) == ("ADDED", e1.rev)
        ev = await asyncio.wait_for(it.__anext__(), 2)
        assert (ev.type, ev.rev) == ("MODIFIED", e3.rev) and ev.prev.rev == e1.rev
        e4 = await s.delete("/registry/configmaps/default/a", None)
        ev = await asyncio.wait_for(it.__anext__(), 2)
        assert (ev.type, ev.rev) == ("DELETED", e4.rev)
        w.close()
        await s.compact(e3.rev)
        with pytest.raises(Compacted):
            await s.watch("/registry/configmaps/", e1.rev)
        w2 = await s.watch("/registry/configmaps/", e3.rev)
        ev = await asyncio.wait_for(w2.__aiter__().__anext__(), 2)
        assert ev.rev == e4.rev
        w2.close()
        await s.close()
    run(go())


def test_survives_restart_with_same_revisions(make_store):
    async def go():
        s = make_store()
        await s.start()
        e = await s.create("/registry/configmaps/default/a", obj("a"))
        await s.create("/registry/configmaps/default/b", obj("b"))
        rev = s.revision
        await s.close()
        s2 = make_store()
        await s2.start()
        assert s2.revision == rev
        got = await s2.get("/registry/configmaps/default/a")
        assert got.rev == e.rev and got.obj["metadata"]["resourceVersion"] == str(e.rev)
        w = await s2.watch("/registry/configmaps/", e.rev)
        ev = await asyncio.wait_for(w.__aiter__().__anext__(), 2)
        assert ev.obj if False else ev.entry.obj["metadata"]["name"] == "b"
        w.close()
        e3 = await s2.create("/registry/configmaps/default/c", obj("c"))
        assert e3.rev == rev + 1
        await s2.close()
    run(go())


def test_concurrent_writes_group_commit_keep_order(make_store):
    async def go():
        s = make_store()
        await s.start()
        w = await s.watch("/registry/configmaps/", s.revision)
        entries = await asyncio.gather(*[s.create(f"/registry/configmaps/default/c{i}", obj(f"c{i}"))
                                         for i in range(200)])
        revs = sorted(e.rev for e in entries)
        assert revs == list(range(revs[0], revs[0] + 200))
        it = w.__aiter__()
        seen = [(await asyncio.wait_for(it.__anext__(), 2)).rev for _ in range(200)]
        assert seen == revs
        w.close()
        await s.close()
    run(go())
