"""The ReplicationController controller (kube-controller-manager's pkg/controller/replication,
which is the ReplicaSet controller on core/v1 types).

Owns: keeping exactly spec.replicas active pods that match an RC's selector — creating them
from the template (generateName `<rc>-`, a controller ownerReference with
blockOwnerDeletion) in slow-start batches, adopting matching orphans, releasing pods whose
labels stop matching, deleting surplus pods in the real order (unscheduled, pending,
not-ready, doubled-up and newest first); the RC status (replicas, fullyLabeledReplicas,
readyReplicas, availableReplicas with minReadySeconds, observedGeneration, the
ReplicaFailure condition) and the SuccessfulCreate / SuccessfulDelete / FailedCreate events.
Reads come from the shared informer caches, writes go through the API.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Callable

from shim.controllers.runtime import Api, ApiError, Informers, Recorder, WorkQueue

log = logging.getLogger("shim.controllers.replication")

BURST_REPLICAS = 500           # the real controller's burstReplicas
SLOW_START_INITIAL_BATCH = 1
COMPONENT = "replication-controller"

_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


# ---- pod predicates ---------------------------------------------------------------------

def controller_ref(obj: dict) -> dict | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """An RC's map selector; an empty selector matches nothing (as labels.SelectorFromSet
    validation forbids it and the controller treats it so)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def is_active(pod: dict) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and \
        not (pod.get("metadata") or {}).get("deletionTimestamp")


def ready_condition(pod: dict) -> dict | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c
    return None


def is_ready(pod: dict) -> bool:
    c = ready_condition(pod)
    return c is not None and c.get("status") == "True"


def is_available(pod: dict, min_ready_seconds: int, now: float) -> bool:
    if not is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    from shim.api.rest import parse_rfc3339
    ltt = ready_condition(pod).get("lastTransitionTime")
    if not ltt:
        return False
    return parse_rfc3339(ltt) + min_ready_seconds <= now


def _ts(s: str | None) -> float:
    if not s:
        return 0.0
    from shim.api.rest import parse_rfc3339
    try:
        return parse_rfc3339(s)
    except ValueError:
        return 0.0


def deletion_order(pods: list[dict]) -> list[dict]:
    """Pods sorted so the first ones are deleted first (controller.ActivePodsWithRanks)."""
    on_node: dict[str, int] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName") or ""
        on_node[node] = on_node.get(node, 0) + 1

    def key(p: dict):
        spec, st = p.get("spec") or {}, p.get("status") or {}
        node = spec.get("nodeName") or ""
        ready = is_ready(p)
        ready_since = _ts(ready_condition(p).get("lastTransitionTime")) if ready else 0.0
        restarts = max([c.get("restartCount", 0) for c in st.get("containerStatuses") or []] or [0])
        created = _ts((p.get("metadata") or {}).get("creationTimestamp"))
        return (1 if node else 0,                          # unassigned first
                _PHASE_ORDER.get(st.get("phase"), 0),       # pending < unknown < running
                1 if ready else 0,                          # not ready first
                -on_node[node],                             # doubled-up first
                -ready_since,                               # ready for less time first
                -restarts,                                  # more restarts first
                -created if created else float("-inf"))     # newer first
    return sorted(pods, key=key)


def pod_from_template(rc: dict) -> dict:
    """The pod the controller creates for an RC (controller.GetPodFromTemplate)."""
    m = rc["metadata"]
    tpl = copy.deepcopy((rc.get("spec") or {}).get("template") or {})
    tm = tpl.get("metadata") or {}
    meta = {"generateName": f"{m['name']}-", "namespace": m.get("namespace"),
            "ownerReferences": [owner_reference(rc)]}
    for k in ("labels", "annotations", "finalizers"):
        if tm.get(k):
            meta[k] = tm[k]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tpl.get("spec") or {}}


def owner_reference(rc: dict) -> dict:
    m = rc["metadata"]
    return {"apiVersion": "v1", "kind": "ReplicationController", "name": m["name"],
            "uid": m["uid"], "controller": True, "blockOwnerDeletion": True}


def calculate_status(rc: dict, pods: list[dict], manage_error: str | None, now: float,
                     ltt: str) -> dict:
    """The RC status for these (claimed, active) pods (replica_set_utils calculateStatus)."""
    spec = rc.get("spec") or {}
    tpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = spec.get("minReadySeconds") or 0
    full = sum(1 for p in pods if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v
                                      for k, v in tpl_labels.items()))
    ready = sum(1 for p in pods if is_ready(p))
    available = sum(1 for p in pods if is_available(p, min_ready, now))
    old = rc.get("status") or {}
    conds = [c for c in old.get("conditions") or []]
    failure = next((c for c in conds if c.get("type") == "ReplicaFailure"), None)
    if manage_error is not None and failure is None:
        diff = len(pods) - spec.get("replicas", 1)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        conds.append({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": ltt,
                      "reason": reason, "message": manage_error})
    elif manage_error is None and failure is not None:
        conds = [c for c in conds if c.get("type") != "ReplicaFailure"]
    status: dict = {"replicas": len(pods)}
    if full:
        status["fullyLabeledReplicas"] = full
    if ready:
        status["readyReplicas"] = ready
    if available:
        status["availableReplicas"] = available
    gen = (rc.get("metadata") or {}).get("generation")
    if gen:
        status["observedGeneration"] = gen
    if conds:
        status["conditions"] = conds
    return status


# ---- the controller ---------------------------------------------------------------------

class ReplicationManager:
    def __init__(self, api: Api, informers: Informers, *, workers: int = 5,
                 clock: Callable[[], float] = time.time):
        self.api = api
        self.informers = informers
        self.pods = informers.caches["pods"]
        self.rcs = informers.caches["replicationcontrollers"]
        self.clock = clock
        self.recorder = Recorder(api, COMPONENT, clock=clock)
        self.queue = WorkQueue("replication", self.sync, workers, ready=informers.synced)
        informers.listen(self.on_change)

    async def run(self) -> None:
        await self.queue.run()

    # ---- event routing ----
    def on_change(self, plural: str, etype: str, obj: dict, old: dict | None) -> None:
        if plural == "replicationcontrollers":
            m = obj["metadata"]
            self.queue.add((m.get("namespace"), m["name"]))
        elif plural == "pods":
            self._pod_changed(obj, old)

    def _pod_changed(self, pod: dict, old: dict | None) -> None:
        ns = pod["metadata"].get("namespace")
        refs = [r for r in (controller_ref(pod), controller_ref(old) if old else None) if r]
        for ref in refs:
            if ref.get("kind") == "ReplicationController":
                self.queue.add((ns, ref.get("name")))
        if not refs:          # an orphan: every RC whose selector matches may adopt it
            labels = pod["metadata"].get("labels")
            old_labels = (old or {}).get("metadata", {}).get("labels")
            for rc in self.rcs.list(ns):
                sel = (rc.get("spec") or {}).get("selector")
                if selector_matches(sel, labels) or selector_matches(sel, old_labels):
                    self.queue.add((ns, rc["metadata"]["name"]))

    # ---- sync ----
    async def sync(self, key) -> None:
        ns, name = key
        rc = self.rcs.get(ns, name)
        if rc is None:
            return                      # gone: the garbage collector takes its pods
        pods = [p for p in self.pods.list(ns) if is_active(p)]
        claimed = await self.claim(rc, pods)
        err = None
        if not rc["metadata"].get("deletionTimestamp"):
            err = await self.manage(rc, claimed)
            claimed = [p for p in self._claimed_now(rc) if is_active(p)]
        await self.update_status(rc, claimed, err)

    def _claimed_now(self, rc: dict) -> list[dict]:
        uid = rc["metadata"]["uid"]
        return [p for p in self.pods.list(rc["metadata"].get("namespace"))
                if (controller_ref(p) or {}).get("uid") == uid]

    async def claim(self, rc: dict, pods: list[dict]) -> list[dict]:
        """Pods this RC controls after adopting orphans and releasing mismatches."""
        m = rc["metadata"]
        selector = (rc.get("spec") or {}).get("selector")
        deleting = bool(m.get("deletionTimestamp"))
        out, adopt, release = [], [], []
        for p in pods:
            ref = controller_ref(p)
            labels_ok = selector_matches(selector, p["metadata"].get("labels"))
            if ref is not None:
                if ref.get("uid") != m["uid"]:
                    continue
                if labels_ok:
                    out.append(p)
                elif not deleting:
                    release.append(p)
            elif labels_ok and not deleting and not p["metadata"].get("deletionTimestamp"):
                adopt.append(p)
        for p in release:
            await self._release(p, m["uid"])
        if adopt and await self._can_adopt(rc):
            for p in adopt:
                if await self._patch_owner(p, owner_reference(rc)):
                    out.append(self.pods.get(m.get("namespace"), p["metadata"]["name"]) or p)
        return out

    async def _can_adopt(self, rc: dict) -> bool:
        """Re-read the RC from the API: adoption needs it alive and the same object."""
        m = rc["metadata"]
        try:
            fresh = await self.api.get("replicationcontrollers", m.get("namespace"), m["name"])
        except ApiError as e:
            if e.code == 404:
                return False
            raise
        fm = fresh.get("metadata") or {}
        return fm.get("uid") == m["uid"] and not fm.get("deletionTimestamp")

    async def _patch_owner(self, pod: dict, ref: dict) -> bool:
        pm = pod["metadata"]
        patch = {"metadata": {"ownerReferences": [ref], "uid": pm["uid"]}}
        try:
            new = await self.api.patch("pods", pm.get("namespace"), pm["name"], patch,
                                       kind="strategic")
        except ApiError as e:
            if e.code in (404, 422):
                return False
            raise
        self.informers.written("pods", new)
        return True

    async def _release(self, pod: dict, uid: str) -> None:
        pm = pod["metadata"]
        left = [r for r in pm.get("ownerReferences") or [] if r.get("uid") != uid]
        if left:
            patch, kind = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": uid}],
                                        "uid": pm["uid"]}}, "strategic"
        else:
            patch, kind = {"metadata": {"ownerReferences": None, "uid": pm["uid"]}}, "merge"
        try:
            new = await self.api.patch("pods", pm.get("namespace"), pm["name"], patch, kind=kind)
        except ApiError as e:
            if e.code in (404, 422):
                return
            raise
        self.informers.written("pods", new)

    async def manage(self, rc: dict, pods: list[dict]) -> str | None:
        """Create or delete pods to reach spec.replicas; the first error's message or None."""
        want = (rc.get("spec") or {}).get("replicas", 1)
        diff = len(pods) - want
        if diff < 0:
            return await self._create(rc, min(-diff, BURST_REPLICAS))
        if diff > 0:
            return await self._delete(rc, deletion_order(pods)[:min(diff, BURST_REPLICAS)])
        return None

    async def _create(self, rc: dict, count: int) -> str | None:
        ns = rc["metadata"].get("namespace")
        batch = SLOW_START_INITIAL_BATCH
        remaining = count
        while remaining > 0:
            n = min(batch, remaining)
            results = await asyncio.gather(*(self._create_one(rc, ns) for _ in range(n)))
            errs = [r for r in results if r is not None]
            if errs:
                return errs[0]
            remaining -= n
            batch *= 2
        return None

    async def _create_one(self, rc: dict, ns: str) -> str | None:
        try:
            pod = await self.api.create("pods", ns, pod_from_template(rc))
        except ApiError as e:
            if e.code == 409 and e.reason == "AlreadyExists":
                return None        # a generated name collided; the next sync makes another
            self.recorder.event(rc, "Warning", "FailedCreate", f"Error creating: {e.message}")
            return e.message
        self.informers.written("pods", pod)
        self.recorder.event(rc, "Normal", "SuccessfulCreate",
                            f"Created pod: {pod['metadata']['name']}")
        return None

    async def _delete(self, rc: dict, victims: list[dict]) -> str | None:
        results = await asyncio.gather(*(self._delete_one(rc, p) for p in victims))
        errs = [r for r in results if r is not None]
        return errs[0] if errs else None

    async def _delete_one(self, rc: dict, pod: dict) -> str | None:
        pm = pod["metadata"]
        try:
            out = await self.api.delete("pods", pm.get("namespace"), pm["name"], uid=pm["uid"])
        except ApiError as e:
            if e.code == 404:
                self.informers.removed("pods", pod)
                return None
            self.recorder.event(rc, "Warning", "FailedDelete", f"Error deleting: {e.message}")
            return e.message
        om = (out or {}).get("metadata") or {}
        if out and out.get("kind") == "Pod" and om.get("deletionTimestamp") and \
                (om.get("finalizers") or om.get("deletionGracePeriodSeconds")):
            self.informers.written("pods", out)        # terminating: no longer active
        else:
            self.informers.removed("pods", pod)
        self.recorder.event(rc, "Normal", "SuccessfulDelete", f"Deleted pod: {pm['name']}")
        return None

    async def update_status(self, rc: dict, pods: list[dict], err: str | None) -> None:
        from shim.api.rest import now_rfc3339
        now = self.clock()
        status = calculate_status(rc, pods, err, now, now_rfc3339(now))
        if status != (rc.get("status") or {}):
            new = dict(rc)
            new["status"] = status
            m = rc["metadata"]
            try:
                out = await self.api.replace("replicationcontrollers", m.get("namespace"),
                                             m["name"], new, sub="status")
            except ApiError as e:
                if e.code == 404:
                    return
                raise           # 409: the queue retries with the newer RC from the watch
            self.informers.written("replicationcontrollers", out, quiet=True)
        spec = rc.get("spec") or {}
        min_ready = spec.get("minReadySeconds") or 0
        want = spec.get("replicas", 1)
        if err is None and min_ready and status.get("readyReplicas", 0) == want and \
                status.get("availableReplicas", 0) != want:
            self.queue.add_after((rc["metadata"].get("namespace"), rc["metadata"]["name"]),
                                 float(min_ready))
