"""The scheduler: binds pending pods (empty spec.nodeName, schedulerName default-scheduler)
to nodes through pods/binding, as kube-scheduler's default profile does — an API client
(shim/client.py) like any other.

Filters, in the default profile's order, first failure wins per node (the reason
strings are kube-scheduler's): NodeUnschedulable, TaintToleration (NoSchedule/NoExecute),
NodeAffinity (nodeSelector + required node affinity), NodePorts (hostPort clashes),
NodeResourcesFit (pods, cpu, memory, ephemeral-storage, extended resources vs.
allocatable minus the requests of the node's non-terminal pods). Among the nodes that
fit, the one with the most free cpu+memory (LeastAllocated) wins; ties are broken at
random. A pod that fits nowhere gets PodScheduled=False/Unschedulable with the
FitError message (plus the "preemption: …" part of the default PostFilter; no pod is
ever preempted), a FailedScheduling Warning event, and is retried with back-off
(1 s doubling to 10 s) when nodes or pods change, and at the latest after 5 minutes.
"""
from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

from shim.api.errors import StatusError
from shim.client import Client, WatchEvent, object_key
from shim.node.events import EventRecorder, WARNING, NORMAL
from shim.resources.quantity import QuantityError, parse_quantity

log = logging.getLogger("shim.controllers.scheduler")

SCHEDULER_NAME = "default-scheduler"
NO_NODES = "no nodes available to schedule pods"
UNSCHEDULABLE_NODE = "node(s) were unschedulable"
AFFINITY_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
PORTS_CONFLICT = "node(s) didn't have free ports for the requested pod ports"
TOO_MANY_PODS = "Too many pods"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
PREEMPT_NEVER = "not eligible due to preemptionPolicy=Never."
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
# status codes of a failed filter
UNSCHEDULABLE = "Unschedulable"                          # preemption might help
UNRESOLVABLE = "UnschedulableAndUnresolvable"

BACKOFF_INITIAL, BACKOFF_MAX = 1.0, 10.0
MAX_UNSCHEDULABLE_WAIT = 300.0
DEFAULT_MILLI_CPU, DEFAULT_MEMORY = 100, 200 * 1024 * 1024   # non-zero requests for scoring


# ---- resources -------------------------------------------------------------------------

def _amount(name: str, value) -> int:
    """cpu in millicores, everything else in whole units (bytes, counts)."""
    try:
        q = parse_quantity(value)
    except (QuantityError, TypeError, ValueError):
        return 0
    return math.ceil(q * 1000) if name == "cpu" else math.ceil(q)


def _add(into: dict, res: dict | None) -> dict:
    for k, v in (res or {}).items():
        into[k] = into.get(k, 0) + _amount(k, v)
    return into


def _max(a: dict, b: dict) -> dict:
    return {k: max(a.get(k, 0), b.get(k, 0)) for k in set(a) | set(b)}


def pod_requests(pod: dict) -> dict[str, int]:
    """resourcehelper.PodRequests: containers + sidecars, at least every init step, + overhead."""
    spec = pod.get("spec") or {}
    reqs: dict = {}
    for c in spec.get("containers") or []:
        _add(reqs, (c.get("resources") or {}).get("requests"))
    sidecars: dict = {}
    init_max: dict = {}
    for c in spec.get("initContainers") or []:
        r = _add({}, (c.get("resources") or {}).get("requests"))
        if c.get("restartPolicy") == "Always":
            _add_ints(reqs, r)
            _add_ints(sidecars, r)
            step = dict(sidecars)
        else:
            step = _add_ints(dict(r), sidecars)
        init_max = _max(init_max, step)
    reqs = _max(reqs, init_max)
    return _add(reqs, spec.get("overhead"))


def _add_ints(into: dict, other: dict) -> dict:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v
    return into


def node_allocatable(node: dict) -> dict[str, int]:
    return {k: _amount(k, v) for k, v in
            ((node.get("status") or {}).get("allocatable") or {}).items()}


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# ---- filters ---------------------------------------------------------------------------

@dataclass
class NodeInfo:
    node: dict
    pods: list[dict] = field(default_factory=list)          # non-terminal pods bound here

    @property
    def name(self) -> str:
        return self.node["metadata"]["name"]

    def requested(self) -> dict[str, int]:
        total: dict = {}
        for p in self.pods:
            _add_ints(total, pod_requests(p))
        return total

    def used_ports(self) -> set[tuple[str, str, int]]:
        out = set()
        for p in self.pods:
            out |= pod_host_ports(p)
        return out


def pod_host_ports(pod: dict) -> set[tuple[str, str, int]]:
    out = set()
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP",
                         int(p["hostPort"])))
    return out


def _ports_clash(want: set, used: set) -> bool:
    for ip, proto, port in want:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and \
                    (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def tolerates(toleration: dict, taint: dict) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(pod: dict, node: dict) -> dict | None:
    """The first NoSchedule/NoExecute taint of the node the pod does not tolerate."""
    tols = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tols):
            return taint
    return None


def _expression_matches(expr: dict, value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: dict, node: dict) -> bool:
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False                    # an empty term matches no node
    labels = (node.get("metadata") or {}).get("labels") or {}
    for e in exprs:
        if not _expression_matches(e, labels.get(e.get("key", ""))):
            return False
    for f in fields:
        value = node["metadata"].get("name") if f.get("key") == "metadata.name" else None
        if not _expression_matches(f, value):
            return False
    return True


def matches_node_affinity(pod: dict, node: dict) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def fit_resources(pod: dict, info: NodeInfo, request: dict | None = None) -> list[str]:
    """NodeResourcesFit: the Insufficient… reasons (empty if the pod fits)."""
    alloc = node_allocatable(info.node)
    reasons = []
    if len(info.pods) + 1 > alloc.get("pods", 0):
        reasons.append(TOO_MANY_PODS)
    request = pod_requests(pod) if request is None else request
    if not any(v for k, v in request.items() if k != "pods"):
        return reasons
    used = info.requested()
    ordered = ["cpu", "memory", "ephemeral-storage"] + \
        sorted(k for k in request if k not in ("cpu", "memory", "ephemeral-storage", "pods"))
    for name in ordered:
        want = request.get(name, 0)
        if want and want > alloc.get(name, 0) - used.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


def filter_node(pod: dict, info: NodeInfo) -> tuple[str, list[str]] | None:
    """Run the filters in order; (status code, reasons) of the first failure, or None."""
    node = info.node
    spec = node.get("spec") or {}
    tols = (pod.get("spec") or {}).get("tolerations") or []
    if spec.get("unschedulable") and not any(
            tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in tols):
        return UNRESOLVABLE, [UNSCHEDULABLE_NODE]
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return UNRESOLVABLE, [f"node(s) had untolerated taint {{{taint.get('key', '')}: "
                              f"{taint.get('value', '')}}}"]
    if not matches_node_affinity(pod, node):
        return UNRESOLVABLE, [AFFINITY_MISMATCH]
    want_ports = pod_host_ports(pod)
    if want_ports and _ports_clash(want_ports, info.used_ports()):
        return UNSCHEDULABLE, [PORTS_CONFLICT]
    reasons = fit_resources(pod, info)
    if reasons:
        return UNSCHEDULABLE, reasons
    return None


def _histogram(reasons_per_node: list[list[str]]) -> str:
    counts: dict[str, int] = {}
    for reasons in reasons_per_node:
        for r in reasons:
            counts[r] = counts.get(r, 0) + 1
    return ", ".join(sorted(f"{n} {r}" for r, n in counts.items()))


def fit_error(pod: dict, num_nodes: int, failures: dict[str, tuple[str, list[str]]]) -> str:
    """FitError.Error() plus the default preemption PostFilter's message."""
    msg = f"0/{num_nodes} nodes are available:"
    hist = _histogram([r for _, r in failures.values()])
    if hist:
        msg += f" {hist}."
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        post = PREEMPT_NEVER
    else:
        outcome = [[NOT_HELPFUL] if code == UNRESOLVABLE else [NO_VICTIMS]
                   for code, _ in failures.values()]
        post = f"0/{len(failures)} nodes are available: {_histogram(outcome)}."
    return msg + f" preemption: {post}."


def score(pod_request: dict, info: NodeInfo) -> float:
    """LeastAllocated over cpu and memory (requests default to 100m / 200Mi for scoring)."""
    alloc = node_allocatable(info.node)
    used: dict = {}
    for p in info.pods + [None]:
        r = pod_request if p is None else pod_requests(p)
        used["cpu"] = used.get("cpu", 0) + (r.get("cpu") or DEFAULT_MILLI_CPU)
        used["memory"] = used.get("memory", 0) + (r.get("memory") or DEFAULT_MEMORY)
    total = 0.0
    for name in ("cpu", "memory"):
        cap = alloc.get(name, 0)
        total += 0.0 if cap <= 0 or used[name] > cap else (cap - used[name]) * 100.0 / cap
    return total / 2


def schedule_one(pod: dict, infos: list[NodeInfo],
                 rng: random.Random | None = None) -> tuple[str | None, str]:
    """(chosen node, "") or (None, the failure message)."""
    if not infos:
        return None, NO_NODES
    failures: dict[str, tuple[str, list[str]]] = {}
    feasible = []
    for info in infos:
        res = filter_node(pod, info)
        if res is None:
            feasible.append(info)
        else:
            failures[info.name] = res
    if not feasible:
        return None, fit_error(pod, len(infos), failures)
    request = pod_requests(pod)
    scored = [(score(request, i), i.name) for i in feasible]
    best = max(s for s, _ in scored)
    winners = [n for s, n in scored if s == best]
    return (rng or random).choice(winners), ""


def wants_scheduling(pod: dict, scheduler_name: str = SCHEDULER_NAME) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and
            (spec.get("schedulerName") or SCHEDULER_NAME) == scheduler_name and
            not (pod.get("metadata") or {}).get("deletionTimestamp") and
            not spec.get("schedulingGates") and not is_terminal(pod))


def _node_view(node: dict) -> tuple:
    """What about a node can change a scheduling decision."""
    st = node.get("status") or {}
    return (node["metadata"].get("labels"), node.get("spec", {}).get("taints"),
            node.get("spec", {}).get("unschedulable"), st.get("allocatable"))


def _rfc3339(t: float) -> str:
    import datetime as _dt
    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the controller ---------------------------------------------------------------------

@dataclass
class _Waiting:
    attempts: int = 0
    not_before: float = 0.0          # monotonic time of the earliest retry
    parked_at: float = 0.0


class Scheduler:
    def __init__(self, client: Client, *, name: str = SCHEDULER_NAME,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.client = client
        self.name = name
        self.clock = clock
        self.wall = wall
        self.recorder = EventRecorder(client, name, clock=wall)
        self.nodes = client.reflector("nodes")
        self.pods = client.reflector("pods")
        self.assumed: dict[str, str] = {}        # pod key -> node bound but not yet seen
        self.waiting: dict[str, _Waiting] = {}   # unschedulable pods
        self.active: set[str] = set()
        self._wake = asyncio.Event()
        self.bound = 0

    # ---- cache views ----
    def node_infos(self) -> list[NodeInfo]:
        infos = {name: NodeInfo(n) for name, n in self.nodes.cache.items()}
        for key, p in self.pods.cache.items():
            node = (p.get("spec") or {}).get("nodeName") or self.assumed.get(key)
            if node in infos and not is_terminal(p):
                infos[node].pods.append(p)
        return list(infos.values())

    # ---- events ----
    def _on_pod(self, ev: WatchEvent) -> None:
        key, pod = object_key(ev.object), ev.object
        frees = bool((pod.get("spec") or {}).get("nodeName")) and \
            (ev.type == "DELETED" or is_terminal(pod))
        if ev.type == "DELETED":
            self._forget(key)
        elif wants_scheduling(pod, self.name):
            if key not in self.waiting:
                self.active.add(key)
        else:
            self._forget(key)
        if frees:                                # a bound pod's resources were freed
            self._retry_waiting()
        self._wake.set()

    def _forget(self, key: str) -> None:
        self.assumed.pop(key, None)
        self.waiting.pop(key, None)
        self.active.discard(key)

    def _on_node(self, ev: WatchEvent, old: dict | None) -> None:
        if ev.type == "DELETED":
            return
        if old is None or _node_view(old) != _node_view(ev.object):
            self._retry_waiting()
            self._wake.set()

    def _retry_waiting(self) -> None:
        for key in list(self.waiting):
            self.active.add(key)

    # ---- loops ----
    async def run(self) -> None:
        await asyncio.gather(self._watch_nodes(), self._watch_pods(), self._schedule_loop())

    async def _watch_nodes(self) -> None:
        prev: dict[str, dict] = {}
        async for ev in self.nodes:
            key = object_key(ev.object)
            self._on_node(ev, prev.get(key))
            if ev.type == "DELETED":
                prev.pop(key, None)
            else:
                prev[key] = ev.object

    async def _watch_pods(self) -> None:
        async for ev in self.pods:
            self._on_pod(ev)

    async def _schedule_loop(self) -> None:
        await self.nodes.synced.wait()
        await self.pods.synced.wait()
        while True:
            self._wake.clear()            # events from here on wake the next round
            now = self.clock()
            due = [k for k in self.active
                   if k not in self.waiting or self.waiting[k].not_before <= now]
            for k, w in self.waiting.items():
                if k not in self.active and now - w.parked_at >= MAX_UNSCHEDULABLE_WAIT:
                    due.append(k)
            for key in sorted(set(due), key=self._queue_order):
                self.active.discard(key)
                pod = self.pods.cache.get(key)
                if pod is None or not wants_scheduling(pod, self.name) or key in self.assumed:
                    self.waiting.pop(key, None)
                    continue
                try:
                    await self.schedule(key, pod)
                except (StatusError, ConnectionError) as e:
                    log.warning("scheduling %s: %s", key, e)
                    self._park(key)
            timeout = self._next_deadline()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _queue_order(self, key: str):
        """PrioritySort: higher priority first, then older pods."""
        pod = self.pods.cache.get(key) or {}
        return (-int((pod.get("spec") or {}).get("priority") or 0),
                (pod.get("metadata") or {}).get("creationTimestamp", ""), key)

    def _next_deadline(self) -> float:
        now = self.clock()
        if any(k not in self.waiting for k in self.active):
            return 0.0
        times = [w.not_before - now for k, w in self.waiting.items() if k in self.active]
        times += [w.parked_at + MAX_UNSCHEDULABLE_WAIT - now for w in self.waiting.values()]
        return max(0.0, min(times)) if times else 30.0

    def _park(self, key: str) -> None:
        w = self.waiting.setdefault(key, _Waiting())
        w.attempts += 1
        now = self.clock()
        w.not_before = now + min(BACKOFF_INITIAL * 2 ** (w.attempts - 1), BACKOFF_MAX)
        w.parked_at = now

    # ---- one pod ----
    async def schedule(self, key: str, pod: dict) -> str | None:
        node, message = schedule_one(pod, self.node_infos())
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if node is None:
            self._park(key)
            await self._record_failure(pod, message)
            return None
        self.assumed[key] = node
        try:
            await self.client.bind(ns, name, node, pod["metadata"].get("uid"))
        except StatusError as e:
            self.assumed.pop(key, None)
            if e.code in (404, 409):         # gone, or bound by someone else meanwhile
                self.waiting.pop(key, None)
                return None
            raise
        self.waiting.pop(key, None)
        self.bound += 1
        self.recorder.emit(pod, NORMAL, "Scheduled",
                           f"Successfully assigned {ns}/{name} to {node}")
        return node

    async def _record_failure(self, pod: dict, message: str) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.recorder.emit(pod, WARNING, "FailedScheduling", message)
        cond = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                "lastTransitionTime": _rfc3339(self.wall()), "reason": "Unschedulable",
                "message": message}
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled":
                if all(c.get(k) == cond[k] for k in ("status", "reason", "message")):
                    return
                if c.get("status") == "False" and c.get("lastTransitionTime"):
                    cond["lastTransitionTime"] = c["lastTransitionTime"]
        # guarded by the resourceVersion the decision was based on: if the pod changed
        # meanwhile (e.g. bound by someone else), the stale verdict is not written
        patch = {"metadata": {"resourceVersion": pod["metadata"].get("resourceVersion")},
                 "status": {"conditions": [cond]}}
        try:
            await self.client.patch("pods", name, patch, ns, subresource="status",
                                    type="strategic")
        except StatusError as e:
            if e.code not in (404, 409):
                raise


async def run(client: Client) -> None:
    await Scheduler(client).run()
