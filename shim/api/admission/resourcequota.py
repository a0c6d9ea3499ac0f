"""ResourceQuota admission (apiserver's admission/plugin/resourcequota) for creates and
updates in a namespace with quotas.

Owns the decision and its wording:
- `pods "x" is forbidden: failed quota: q1: must specify limits.cpu for: main`;
- `pods "x" is forbidden: exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2`.
Usage is computed exactly at admission time from the store (every object of the kind in the
namespace that matches the quota's scopes) plus the admissions granted but not yet stored,
under a per-namespace lock, so concurrent creates never over-admit; the granted usage is then
written to the quota's status.used as the real plugin does (the quota controller keeps it
exact afterwards). Evaluators live in shim/controllers/resourcequota.py.
"""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from shim.api import errors
from shim.controllers import resourcequota as ev
from shim.store.base import RevisionConflict

INFLIGHT_TTL = 30.0     # seconds an admitted-but-unseen create is still counted


class _Inflight:
    __slots__ = ("key", "plural", "usage", "t")

    def __init__(self, key: str, plural: str, usage: dict, t: float):
        self.key, self.plural, self.usage, self.t = key, plural, usage, t


class ResourceQuotaAdmission:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._inflight: dict[str, list[_Inflight]] = defaultdict(list)

    def handles(self, attrs) -> bool:
        if attrs.subresource or attrs.resource.group or not attrs.resource.namespaced:
            return False
        plural = attrs.resource.plural
        if attrs.operation == "CREATE":
            return plural not in ev.IGNORED
        return attrs.operation == "UPDATE" and plural == "services"

    async def admit(self, attrs) -> None:
        if not self.handles(attrs):
            return
        rest = attrs.ctx.rest
        qres = rest.registry.get("", "v1", "resourcequotas")
        quotas, _, _, _ = await rest.store.list(qres.prefix(attrs.namespace))
        if not quotas:
            return
        async with self._locks[attrs.namespace]:
            await self._check(attrs, qres)

    async def _check(self, attrs, qres) -> None:
        rest = attrs.ctx.rest
        ns, plural, obj = attrs.namespace, attrs.resource.plural, attrs.obj
        now = rest.clock()
        quotas, _, _, _ = await rest.store.list(qres.prefix(ns))
        matching = [e for e in quotas if ev.quota_matches(e.obj, plural, obj)]
        if not matching:
            return
        for e in matching:
            required = ev.matching_resources(plural, ev.hard_of(e.obj))
            if plural == "pods":
                why = ev.pod_constraints(required, obj)
                if why:
                    raise errors.forbidden(plural, attrs.name,
                                           f"failed quota: {e.obj['metadata']['name']}: {why}")
        delta = ev.usage(plural, obj, now)
        if attrs.operation == "UPDATE" and attrs.old is not None:
            old = ev.usage(plural, attrs.old, now)
            delta = {k: v.sub(old[k]) if k in old else v for k, v in delta.items()}
        delta = {k: v for k, v in delta.items() if v.value != 0}
        if not delta:
            return
        objects = await self._objects(attrs, plural)
        updates = []
        for e in matching:
            hard = ev.hard_of(e.obj)
            requested = {k: v for k, v in delta.items() if k in hard}
            if not requested:
                continue
            used = ev.calculate_used(e.obj, objects, now)
            used = ev.add_lists(used, self._pending(ns, plural, e.obj))
            new_used = ev.add_lists(used, requested)
            exceeded = sorted(k for k in requested if new_used[k].value > hard[k].value)
            if exceeded:
                raise errors.forbidden(plural, attrs.name, (
                    f"exceeded quota: {e.obj['metadata']['name']}, "
                    f"requested: {ev.pretty({k: requested[k] for k in exceeded})}, "
                    f"used: {ev.pretty({k: used.get(k, ev.Qty()) for k in exceeded})}, "
                    f"limited: {ev.pretty({k: hard[k] for k in exceeded})}"))
            updates.append((e, used, requested))
        if attrs.dry_run or not updates:
            return
        if attrs.operation == "CREATE":
            key = attrs.resource.key(ns, attrs.name)
            self._inflight[ns].append(_Inflight(key, plural, delta, self.clock()))
        for e, used, requested in updates:
            await self._write_status(rest, qres, e, ev.add_lists(used, requested))

    async def _objects(self, attrs, plural: str) -> dict[str, list[dict]]:
        """The stored objects of this kind in the namespace, read in one snapshot; in-flight
        admissions whose object is in it (or that are older than INFLIGHT_TTL) are dropped,
        the others stay counted by `_pending`."""
        res = attrs.resource
        ns = attrs.namespace
        entries, _, _, _ = await attrs.ctx.store.list(res.prefix(ns))
        objs = [e.obj for e in entries]
        stored = {res.key(ns, o["metadata"]["name"]) for o in objs}
        now = self.clock()
        keep = [f for f in self._inflight.get(ns, [])
                if not (f.plural == plural and f.key in stored) and now - f.t <= INFLIGHT_TTL]
        if keep:
            self._inflight[ns] = keep
        else:
            self._inflight.pop(ns, None)
        return {plural: objs}

    def _pending(self, ns: str, plural: str, quota: dict) -> dict:
        total: dict = {}
        hard = ev.hard_of(quota)
        for f in self._inflight.get(ns, []):
            if f.plural == plural:
                total = ev.add_lists(total, {k: v for k, v in f.usage.items() if k in hard})
        return total

    async def _write_status(self, rest, qres, entry, used: dict) -> None:
        """status.used := the usage just granted (best effort; the controller reconciles)."""
        import orjson
        m = entry.obj["metadata"]
        key = qres.key(m["namespace"], m["name"])
        for _ in range(3):
            cur = await rest.store.get(key)
            if cur is None:
                return
            new = orjson.loads(cur.raw)
            old_used = ev.parse_list((new.get("status") or {}).get("used"))
            new["status"] = ev.quota_status(new, {**old_used, **used})
            if new == cur.obj:
                return
            try:
                await rest.store.update(key, new, cur.rev)
                return
            except RevisionConflict:
                continue
