"""The node lifecycle controller (kube-controller-manager's nodelifecycle, its health and
tainting parts), an API client like the others.

Every `monitor_period` seconds each node's health is checked: a node is healthy while
its kube-node-lease Lease (renewTime) or its Ready condition's lastHeartbeatTime changed
within `grace_period` seconds (node-monitor-grace-period, 40 s) of *local* observation
time. When it goes silent, its Ready, MemoryPressure, DiskPressure and PIDPressure
conditions become Unknown, reason NodeStatusUnknown, message
"Kubelet stopped posting node status." (NodeStatusNeverUpdated / "Kubelet never posted
node status." for a condition the kubelet never wrote).

Taints follow the conditions, as the controller's NoSchedule and NoExecute passes do:
Ready False → node.kubernetes.io/not-ready, Ready Unknown → node.kubernetes.io/unreachable
(both NoSchedule and NoExecute), Memory/Disk/PIDPressure True and NetworkUnavailable True →
their NoSchedule taints, spec.unschedulable → node.kubernetes.io/unschedulable:NoSchedule;
taints whose reason has gone are removed.

Not done (yet): evicting pods from unreachable nodes after their tolerationSeconds
(the taint-eviction controller) and marking their pods NotReady.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from typing import Callable

from shim.api.errors import StatusError
from shim.client import Client

log = logging.getLogger("shim.controllers.nodelifecycle")

GRACE_PERIOD = 40.0
MONITOR_PERIOD = 5.0
HEALTH_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NO_SCHEDULE_TAINTS = {
    ("Ready", "False"): NOT_READY,
    ("Ready", "Unknown"): UNREACHABLE,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
}
NO_EXECUTE_TAINTS = {("Ready", "False"): NOT_READY, ("Ready", "Unknown"): UNREACHABLE}
MANAGED = {(k, "NoSchedule") for k in NO_SCHEDULE_TAINTS.values()} | \
    {(k, "NoExecute") for k in NO_EXECUTE_TAINTS.values()} | {(UNSCHEDULABLE, "NoSchedule")}


def rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(node: dict, ctype: str) -> dict | None:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def unknown_conditions(node: dict, now: float) -> list[dict] | None:
    """The node's conditions with the health ones set Unknown; None if nothing changes."""
    conds = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
    changed = False
    for ctype in HEALTH_CONDITIONS:
        cur = next((c for c in conds if c.get("type") == ctype), None)
        if cur is None:
            conds.append({"type": ctype, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                          "message": "Kubelet never posted node status.",
                          "lastHeartbeatTime": rfc3339(now), "lastTransitionTime": rfc3339(now)})
            changed = True
        elif cur.get("status") != "Unknown":
            cur.update(status="Unknown", reason="NodeStatusUnknown",
                       message="Kubelet stopped posting node status.",
                       lastTransitionTime=rfc3339(now))
            changed = True
    return conds if changed else None


def desired_taints(node: dict, now: float) -> list[dict]:
    """The node's taints with the controller-managed ones made to match its conditions."""
    want: list[tuple[str, str]] = []
    for c in (node.get("status") or {}).get("conditions") or []:
        key = NO_SCHEDULE_TAINTS.get((c.get("type"), c.get("status")))
        if key:
            want.append((key, "NoSchedule"))
        key = NO_EXECUTE_TAINTS.get((c.get("type"), c.get("status")))
        if key:
            want.append((key, "NoExecute"))
    if (node.get("spec") or {}).get("unschedulable"):
        want.append((UNSCHEDULABLE, "NoSchedule"))
    current = list((node.get("spec") or {}).get("taints") or [])
    have = {(t.get("key"), t.get("effect")) for t in current}
    out = [t for t in current if (t.get("key"), t.get("effect")) not in MANAGED
           or (t.get("key"), t.get("effect")) in want]
    for key, effect in want:
        if (key, effect) not in have:
            out.append({"key": key, "effect": effect, "timeAdded": rfc3339(now)})
    return out


class NodeLifecycle:
    def __init__(self, client: Client, *, grace_period: float = GRACE_PERIOD,
                 monitor_period: float = MONITOR_PERIOD,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.client = client
        self.grace = grace_period
        self.period = monitor_period
        self.clock = clock
        self.wall = wall
        self.nodes = client.reflector("nodes")
        self.leases = client.reflector("leases", "kube-node-lease", group="coordination.k8s.io")
        self._seen: dict[str, tuple[tuple, float]] = {}   # node -> (heartbeat marks, observed at)

    def _heartbeat(self, name: str, node: dict) -> tuple:
        lease = self.leases.cache.get(f"kube-node-lease/{name}") or {}
        ready = _condition(node, "Ready") or {}
        return ((lease.get("spec") or {}).get("renewTime"), ready.get("lastHeartbeatTime"))

    def healthy(self, name: str, node: dict) -> bool:
        """Did the node show a sign of life within the grace period (local clock)?"""
        now = self.clock()
        marks = self._heartbeat(name, node)
        prev = self._seen.get(name)
        if prev is None or prev[0] != marks:
            self._seen[name] = (marks, now)
            return True
        return now - prev[1] <= self.grace

    async def check(self, name: str) -> None:
        node = self.nodes.cache.get(name)
        if node is None:
            self._seen.pop(name, None)
            return
        if not self.healthy(name, node):
            conds = unknown_conditions(node, self.wall())
            if conds is not None:
                log.info("node %s stopped posting status; marking it Unknown", name)
                body = {"apiVersion": "v1", "kind": "Node", "metadata": node["metadata"],
                        "spec": node.get("spec") or {},
                        "status": {**(node.get("status") or {}), "conditions": conds}}
                node = await self.client.update("nodes", body, subresource="status")
        taints = desired_taints(node, self.wall())
        if taints != ((node.get("spec") or {}).get("taints") or []):
            await self.client.patch("nodes", name, {
                "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                "spec": {"taints": taints or None}})

    async def monitor(self) -> None:
        await self.nodes.synced.wait()
        await self.leases.synced.wait()
        while True:
            for name in list(self.nodes.cache):
                try:
                    await self.check(name)
                except StatusError as e:
                    if e.code not in (404, 409):     # gone or changed: next round
                        log.warning("node lifecycle %s: %s", name, e.message)
                except ConnectionError as e:
                    log.warning("node lifecycle %s: %s", name, e)
            await asyncio.sleep(self.period)

    async def _drain(self, reflector) -> None:
        async for _ev in reflector:
            pass

    async def run(self) -> None:
        await asyncio.gather(self._drain(self.nodes), self._drain(self.leases), self.monitor())
