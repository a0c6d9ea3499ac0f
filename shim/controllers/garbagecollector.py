"""The garbage collector (kube-controller-manager's pkg/controller/garbagecollector).

Owns cascading deletion through metadata.ownerReferences for the core/v1 kinds:
- Background: when an owner is gone, each dependent whose owners are all gone is deleted
  (dependents with another live owner only lose the dangling references);
- Foreground: an owner carrying the `foregroundDeletion` finalizer keeps existing until its
  blocking dependents (blockOwnerDeletion: true) are gone; the collector deletes them, then
  removes the finalizer;
- Orphan: an owner carrying the `orphan` finalizer has its ownerReference removed from every
  dependent, then the finalizer removed;
- dependents of owners that no longer exist (also ones deleted while nothing ran) are
  collected after the initial listing.
The dependency graph is kept from the shared informer caches; every decision re-reads the
object (and, if not in the graph, its owner) from the API first, as the real collector does.
Owner references to kinds this server does not serve are never treated as dangling.
"""
from __future__ import annotations

import logging
from collections import defaultdict

from shim.controllers.runtime import (NAMESPACED, PLURAL_OF_KIND, Api, ApiError, Informers,
                                      WorkQueue)

log = logging.getLogger("shim.controllers.garbagecollector")

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def _meta(obj: dict | None) -> dict:
    return (obj or {}).get("metadata") or {}


def deleting_dependents(obj: dict | None) -> bool:
    m = _meta(obj)
    return bool(m.get("deletionTimestamp")) and FOREGROUND in (m.get("finalizers") or [])


def orphaning(obj: dict | None) -> bool:
    m = _meta(obj)
    return bool(m.get("deletionTimestamp")) and ORPHAN in (m.get("finalizers") or [])


class Node:
    __slots__ = ("plural", "ns", "name", "uid", "owners")

    def __init__(self, plural: str, obj: dict):
        m = _meta(obj)
        self.plural = plural
        self.ns = m.get("namespace")
        self.name = m.get("name")
        self.uid = m.get("uid")
        self.owners = list(m.get("ownerReferences") or [])


class GarbageCollector:
    def __init__(self, api: Api, informers: Informers, *, workers: int = 10):
        self.api = api
        self.informers = informers
        self.nodes: dict[str, Node] = {}
        self.dependents: dict[str, set[str]] = defaultdict(set)
        self.queue = WorkQueue("garbagecollector", self.process, workers, ready=informers.synced)
        informers.listen(self.on_change)

    async def run(self) -> None:
        await self.queue.run()

    # ---- graph ----
    def on_change(self, plural: str, etype: str, obj: dict, old: dict | None) -> None:
        m = _meta(obj)
        uid = m.get("uid")
        if not uid:
            return
        if etype == "DELETED":
            self._forget(uid)
            return
        node = self.nodes.get(uid)
        old_owner_uids = {r.get("uid") for r in node.owners} if node else set()
        node = Node(plural, obj)
        self.nodes[uid] = node
        new_owner_uids = {r.get("uid") for r in node.owners}
        for o in old_owner_uids - new_owner_uids:
            self._unlink(o, uid)
        for o in new_owner_uids:
            self.dependents[o].add(uid)
        if orphaning(obj):
            self.queue.add(("orphan", uid))
        if deleting_dependents(obj):
            self.queue.add(("delete", uid))
            for d in list(self.dependents.get(uid, ())):
                self.queue.add(("delete", d))
        for o in new_owner_uids:
            owner = self.nodes.get(o)
            if owner is None or deleting_dependents(self._cached(owner)):
                self.queue.add(("delete", uid))
                break

    def _unlink(self, owner_uid: str, dep_uid: str) -> None:
        deps = self.dependents.get(owner_uid)
        if deps is not None:
            deps.discard(dep_uid)
            if not deps:
                del self.dependents[owner_uid]
        owner = self.nodes.get(owner_uid)
        if owner is not None and deleting_dependents(self._cached(owner)):
            self.queue.add(("delete", owner_uid))

    def _forget(self, uid: str) -> None:
        node = self.nodes.pop(uid, None)
        if node is not None:
            for r in node.owners:
                self._unlink(r.get("uid"), uid)
        for d in list(self.dependents.get(uid, ())):
            self.queue.add(("delete", d))

    def _cached(self, node: Node) -> dict | None:
        obj = self.informers.caches[node.plural].get(node.ns, node.name)
        return obj if _meta(obj).get("uid") == node.uid else None

    def blocking_dependents(self, uid: str) -> list[Node]:
        out = []
        for d in self.dependents.get(uid, ()):
            node = self.nodes.get(d)
            if node is not None and any(r.get("uid") == uid and r.get("blockOwnerDeletion")
                                        for r in node.owners):
                out.append(node)
        return out

    # ---- work ----
    async def process(self, key) -> None:
        action, uid = key
        if action == "orphan":
            await self.orphan(uid)
        else:
            await self.attempt_to_delete(uid)

    async def _latest(self, node: Node) -> dict | None:
        try:
            obj = await self.api.get(node.plural, node.ns, node.name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        return obj if _meta(obj).get("uid") == node.uid else None

    async def attempt_to_delete(self, uid: str) -> None:
        node = self.nodes.get(uid)
        if node is None:
            return
        cached = self._cached(node)
        if _meta(cached).get("deletionTimestamp") and not deleting_dependents(cached):
            return
        latest = await self._latest(node)
        if latest is None:
            return
        if deleting_dependents(latest):
            return await self._process_deleting_dependents(node, latest)
        refs = _meta(latest).get("ownerReferences") or []
        if not refs:
            return
        solid, dangling, waiting = [], [], []
        for ref in refs:
            state = await self._classify(node, ref)
            {"solid": solid, "dangling": dangling, "waiting": waiting}[state].append(ref)
        if solid:
            if dangling or waiting:
                await self._drop_owner_refs(node, [r.get("uid") for r in dangling + waiting])
            return
        if waiting and self.dependents.get(uid):
            if any(deleting_dependents(self._cached(self.nodes[d]))
                   for d in self.dependents[uid] if d in self.nodes):
                await self._unblock(node, latest)
            return await self._delete(node, "Foreground")
        fins = _meta(latest).get("finalizers") or []
        policy = "Orphan" if ORPHAN in fins else "Foreground" if FOREGROUND in fins else "Background"
        await self._delete(node, policy)

    async def _classify(self, node: Node, ref: dict) -> str:
        """solid | dangling | waiting (owner exists and is deleting its dependents)."""
        owner = self.nodes.get(ref.get("uid"))
        if owner is not None:
            obj = self._cached(owner)
            if obj is not None:
                return "waiting" if deleting_dependents(obj) else "solid"
        plural = PLURAL_OF_KIND.get(ref.get("kind")) if ref.get("apiVersion") == "v1" else None
        if plural is None:
            return "solid"          # a kind this server does not serve: never collect
        ns = node.ns if NAMESPACED[plural] else None
        if NAMESPACED[plural] and not node.ns:
            return "solid"          # cluster-scoped object with a namespaced owner: invalid
        try:
            obj = await self.api.get(plural, ns, ref.get("name"))
        except ApiError as e:
            if e.code == 404:
                return "dangling"
            raise
        if _meta(obj).get("uid") != ref.get("uid"):
            return "dangling"
        return "waiting" if deleting_dependents(obj) else "solid"

    async def _process_deleting_dependents(self, node: Node, latest: dict) -> None:
        blocking = self.blocking_dependents(node.uid)
        if not blocking:
            await self._remove_finalizer(node, FOREGROUND)
            return
        for dep in blocking:
            if not deleting_dependents(self._cached(dep)):
                self.queue.add(("delete", dep.uid))

    async def _delete(self, node: Node, policy: str) -> None:
        try:
            out = await self.api.delete(node.plural, node.ns, node.name, propagation=policy,
                                        uid=node.uid)
        except ApiError as e:
            if e.code in (404, 409):
                return
            raise
        if isinstance(out, dict) and out.get("kind") not in (None, "Status") and \
                _meta(out).get("deletionTimestamp"):
            self.informers.written(node.plural, out)

    async def _drop_owner_refs(self, node: Node, owner_uids: list[str]) -> None:
        left = [r for r in node.owners if r.get("uid") not in owner_uids]
        if left:
            kind = "strategic"
            refs = [{"$patch": "delete", "uid": u} for u in owner_uids]
        else:       # the last ones go: no empty list left behind (omitempty on the wire)
            kind, refs = "merge", None
        patch = {"metadata": {"ownerReferences": refs, "uid": node.uid}}
        try:
            out = await self.api.patch(node.plural, node.ns, node.name, patch, kind=kind)
        except ApiError as e:
            if e.code in (404, 422):
                return
            raise
        self.informers.written(node.plural, out)

    async def _unblock(self, node: Node, latest: dict) -> None:
        refs = []
        for r in _meta(latest).get("ownerReferences") or []:
            r = dict(r)
            if r.get("blockOwnerDeletion"):
                r["blockOwnerDeletion"] = False
            refs.append(r)
        await self.api.patch(node.plural, node.ns, node.name,
                             {"metadata": {"ownerReferences": refs,
                                           "resourceVersion": _meta(latest).get("resourceVersion")}})

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        latest = await self._latest(node)
        if latest is None:
            return
        m = _meta(latest)
        fins = m.get("finalizers") or []
        if finalizer not in fins:
            return
        patch = {"metadata": {"finalizers": [f for f in fins if f != finalizer],
                              "resourceVersion": m.get("resourceVersion")}}
        try:
            out = await self.api.patch(node.plural, node.ns, node.name, patch)
        except ApiError as e:
            if e.code == 404:
                return
            raise
        self.informers.written(node.plural, out)

    async def orphan(self, uid: str) -> None:
        node = self.nodes.get(uid)
        if node is None:
            return
        for d in list(self.dependents.get(uid, ())):
            dep = self.nodes.get(d)
            if dep is not None:
                await self._drop_owner_refs(dep, [uid])
        await self._remove_finalizer(node, ORPHAN)
