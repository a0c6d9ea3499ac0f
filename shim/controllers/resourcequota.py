"""ResourceQuota: the usage evaluators (pkg/quota/v1/evaluator/core, apiserver's generic
object-count evaluator) and the quota controller (pkg/controller/resourcequota).

Evaluators (pure functions, shared with the admission plugin in
shim/api/admission/resourcequota.py): which quota resource names a kind is charged for
(`pods`, `count/pods`, `cpu`/`requests.cpu`, `limits.memory`, ..., `services`,
`services.nodeports`, `services.loadbalancers`, the legacy object counts and
`count/<resource>`), an object's usage, quota scope matching (Terminating, NotTerminating,
BestEffort, NotBestEffort, PriorityClass, CrossNamespacePodAffinity, scopeSelector), the
"must specify" container constraints, and quantity sums with apimachinery's format rules.

Controller: keeps every quota's status.hard (= spec.hard) and status.used (recomputed from
the informer caches whenever a tracked object in its namespace changes, after deletions and
on start) exact.
"""
from __future__ import annotations

import logging
import time
from fractions import Fraction
from typing import Callable, Iterable

from shim.resources import quantity as q

log = logging.getLogger("shim.controllers.resourcequota")

POD_RESOURCES = ("count/pods", "cpu", "memory", "ephemeral-storage", "requests.cpu",
                 "requests.memory", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
                 "limits.ephemeral-storage", "pods")
VALIDATION_SET = frozenset(("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu",
                            "limits.memory"))
SERVICE_RESOURCES = ("services", "count/services", "services.nodeports", "services.loadbalancers")
LEGACY_COUNTS = {"services": "services", "replicationcontrollers": "replicationcontrollers",
                 "secrets": "secrets", "configmaps": "configmaps",
                 "resourcequotas": "resourcequotas", "persistentvolumeclaims": "persistentvolumeclaims"}
IGNORED = frozenset(("events",))
_NATIVE_PREFIXES = ("kubernetes.io/", "requests.", "limits.")
_STANDARD = frozenset(("cpu", "memory", "ephemeral-storage", "storage", "pods"))


# ---- quantities with Go's format rules ---------------------------------------------------

class Qty:
    """A sum of quantities: exact value plus the format apimachinery would print it in
    (a zero accumulator takes the format of the first value added, as Quantity.Add does)."""

    __slots__ = ("value", "fmt")

    def __init__(self, value: Fraction = Fraction(0), fmt: str = q.DECIMAL_SI):
        self.value = value
        self.fmt = fmt

    @classmethod
    def parse(cls, s) -> "Qty":
        p = q.parse(s)
        return cls(p.value, p.format)

    def add(self, other: "Qty") -> "Qty":
        fmt = other.fmt if self.value == 0 else self.fmt
        return Qty(self.value + other.value, fmt)

    def sub(self, other: "Qty") -> "Qty":
        fmt = other.fmt if self.value == 0 else self.fmt
        return Qty(self.value - other.value, fmt)

    def __str__(self) -> str:
        return q.format_quantity(self.value, self.fmt)

    def __repr__(self) -> str:
        return f"Qty({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Qty) and other.value == self.value


def add_lists(a: dict[str, Qty], b: dict[str, Qty]) -> dict[str, Qty]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k].add(v) if k in out else v
    return out


def pretty(usage: dict[str, Qty]) -> str:
    """prettyPrint of a ResourceList: `k=v` sorted by name, comma-separated."""
    return ",".join(f"{k}={usage[k]}" for k in sorted(usage))


def parse_list(rl: dict | None) -> dict[str, Qty]:
    out = {}
    for k, v in (rl or {}).items():
        try:
            out[k] = Qty.parse(v)
        except (q.QuantityError, TypeError):
            continue
    return out


# ---- pods ---------------------------------------------------------------------------------

def _containers(spec: dict, group: str) -> list[dict]:
    return [c for c in spec.get(group) or [] if isinstance(c, dict)]


def _max_into(acc: dict[str, Qty], other: dict[str, Qty]) -> None:
    for k, v in other.items():
        if k not in acc or v.value > acc[k].value:
            acc[k] = v


def pod_resources(pod: dict, which: str) -> dict[str, Qty]:
    """PodRequests / PodLimits: containers summed, init containers as a floor (sidecars
    add), plus spec.overhead."""
    spec = pod.get("spec") or {}
    total: dict[str, Qty] = {}
    for c in _containers(spec, "containers"):
        total = add_lists(total, parse_list((c.get("resources") or {}).get(which)))
    sidecars: dict[str, Qty] = {}
    init_max: dict[str, Qty] = {}
    for c in _containers(spec, "initContainers"):
        res = parse_list((c.get("resources") or {}).get(which))
        if c.get("restartPolicy") == "Always":
            total = add_lists(total, res)
            sidecars = add_lists(sidecars, res)
            _max_into(init_max, sidecars)
        else:
            _max_into(init_max, add_lists(res, sidecars))
    _max_into(total, init_max)
    if spec.get("overhead"):
        total = add_lists(total, parse_list(spec["overhead"]))
    return total


def _is_extended(name: str) -> bool:
    return "/" in name and not name.startswith("kubernetes.io/") and not name.startswith("requests.") \
        and not name.startswith("limits.")


def compute_usage(requests: dict[str, Qty], limits: dict[str, Qty]) -> dict[str, Qty]:
    """podComputeUsageHelper: the quota names charged for these requests and limits."""
    out = {"pods": Qty(Fraction(1))}
    for res in ("cpu", "memory", "ephemeral-storage"):
        if res in requests:
            out[res] = requests[res]
            out[f"requests.{res}"] = requests[res]
        if res in limits:
            out[f"limits.{res}"] = limits[res]
    for name, v in requests.items():
        if name.startswith("hugepages-"):
            out[name] = v
            out[f"requests.{name}"] = v
        elif _is_extended(name):
            out[f"requests.{name}"] = v
    return out


def pod_counts_compute(pod: dict, now: float) -> bool:
    """QuotaV1Pod: terminal pods and pods past their deletion grace are not charged."""
    if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
        return False
    m = pod.get("metadata") or {}
    if m.get("deletionTimestamp") and m.get("deletionGracePeriodSeconds") is not None:
        from shim.api.rest import parse_rfc3339
        if now > parse_rfc3339(m["deletionTimestamp"]) + m["deletionGracePeriodSeconds"]:
            return False
    return True


def pod_usage(pod: dict, now: float) -> dict[str, Qty]:
    out = {"count/pods": Qty(Fraction(1))}
    if not pod_counts_compute(pod, now):
        return out
    return add_lists(out, compute_usage(pod_resources(pod, "requests"), pod_resources(pod, "limits")))


def pod_constraints(required: Iterable[str], pod: dict) -> str | None:
    """The "must specify ..." error for containers lacking a request/limit a quota tracks."""
    req = set(required) & VALIDATION_SET
    if not req:
        return None
    missing: dict[str, set[str]] = {}
    spec = pod.get("spec") or {}
    for c in _containers(spec, "containers") + _containers(spec, "initContainers"):
        res = c.get("resources") or {}
        have = set(compute_usage(parse_list(res.get("requests")), parse_list(res.get("limits"))))
        for name in req - have:
            missing.setdefault(name, set()).add(c.get("name", ""))
    if not missing:
        return None
    return "must specify " + "; ".join(f"{r} for: {','.join(sorted(missing[r]))}"
                                        for r in sorted(missing))


def is_best_effort(pod: dict) -> bool:
    from shim.resources.defaults import qos_class
    return qos_class(pod) == "BestEffort"


def is_terminating(pod: dict) -> bool:
    ads = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return isinstance(ads, int) and ads >= 0


def _cross_ns_affinity(pod: dict) -> bool:
    aff = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        a = aff.get(kind) or {}
        terms = list(a.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [w.get("podAffinityTerm") or {} for w in
                  a.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def pod_matches_scope(scope: dict, pod: dict) -> bool:
    name = scope.get("scopeName")
    if name == "Terminating":
        return is_terminating(pod)
    if name == "NotTerminating":
        return not is_terminating(pod)
    if name == "BestEffort":
        return is_best_effort(pod)
    if name == "NotBestEffort":
        return not is_best_effort(pod)
    if name == "PriorityClass":
        pc = (pod.get("spec") or {}).get("priorityClassName") or ""
        op, values = scope.get("operator"), scope.get("values") or []
        if op == "Exists":
            return bool(pc)
        if op == "DoesNotExist":
            return not pc
        if op == "In":
            return bool(pc) and pc in values
        if op == "NotIn":
            return not pc or pc not in values
        return False
    if name == "CrossNamespacePodAffinity":
        return _cross_ns_affinity(pod)
    return False


# ---- services and object counts ----------------------------------------------------------

def service_usage(svc: dict) -> dict[str, Qty]:
    spec = svc.get("spec") or {}
    ports = len(spec.get("ports") or [])
    out = {"services": Qty(Fraction(1)), "count/services": Qty(Fraction(1))}
    t = spec.get("type") or "ClusterIP"
    if t == "NodePort":
        out["services.nodeports"] = Qty(Fraction(ports))
    elif t == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is False:
            n = sum(1 for p in spec.get("ports") or [] if p.get("nodePort"))
            out["services.nodeports"] = Qty(Fraction(n))
        else:
            out["services.nodeports"] = Qty(Fraction(ports))
        out["services.loadbalancers"] = Qty(Fraction(1))
    return out


def count_names(plural: str) -> tuple[str, ...]:
    names = [f"count/{plural}"]
    if plural in LEGACY_COUNTS:
        names.append(LEGACY_COUNTS[plural])
    return tuple(names)


def matching_resources(plural: str, names: Iterable[str]) -> set[str]:
    """Of these quota resource names, those this kind's evaluator is charged for."""
    names = set(names)
    if plural in IGNORED:
        return set()
    if plural == "pods":
        out = names & set(POD_RESOURCES)
        out |= {n for n in names if n.startswith("hugepages-") or n.startswith("requests.hugepages-")
                or (n.startswith("requests.") and _is_extended(n[len("requests."):]))}
        return out
    if plural == "services":
        return names & set(SERVICE_RESOURCES)
    return names & set(count_names(plural))


def usage(plural: str, obj: dict, now: float) -> dict[str, Qty]:
    if plural == "pods":
        return pod_usage(obj, now)
    if plural == "services":
        return service_usage(obj)
    return {n: Qty(Fraction(1)) for n in count_names(plural)}


def scope_selectors(quota: dict) -> list[dict]:
    spec = quota.get("spec") or {}
    out = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    out += list(((spec.get("scopeSelector") or {}).get("matchExpressions")) or [])
    return out


def matches_scopes(plural: str, obj: dict, quota: dict) -> bool:
    scopes = scope_selectors(quota)
    if not scopes:
        return True
    if plural != "pods":
        return False          # only pods have scopes (generic.MatchesNoScopeFunc)
    return all(pod_matches_scope(s, obj) for s in scopes)


def hard_of(quota: dict) -> dict[str, Qty]:
    return parse_list((quota.get("spec") or {}).get("hard"))


def quota_matches(quota: dict, plural: str, obj: dict) -> bool:
    return bool(matching_resources(plural, hard_of(quota))) and matches_scopes(plural, obj, quota)


def calculate_used(quota: dict, objects: dict[str, list[dict]], now: float) -> dict[str, Qty]:
    """status.used: for every hard name, the summed usage of the matching objects."""
    hard = set(hard_of(quota))
    used: dict[str, Qty] = {}
    for plural, objs in objects.items():
        names = matching_resources(plural, hard)
        if not names:
            continue
        for n in names:
            used.setdefault(n, Qty())
        for o in objs:
            if not matches_scopes(plural, o, quota):
                continue
            u = usage(plural, o, now)
            for n in names:
                if n in u:
                    used[n] = used[n].add(u[n])
    return used


def quota_status(quota: dict, used: dict[str, Qty]) -> dict:
    hard = {k: q.canonical(v) for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()
            if q.is_quantity(v)}
    return {"hard": hard, "used": {k: str(v) for k, v in sorted(used.items())}}


TRACKED = ("pods", "services", "replicationcontrollers", "secrets", "configmaps",
           "resourcequotas", "endpoints", "serviceaccounts", "limitranges")


# ---- the controller ---------------------------------------------------------------------

class QuotaController:
    def __init__(self, api, informers, *, workers: int = 3, clock: Callable[[], float] = time.time):
        from shim.controllers.runtime import WorkQueue
        self.api = api
        self.informers = informers
        self.quotas = informers.caches["resourcequotas"]
        self.clock = clock
        self.queue = WorkQueue("resourcequota", self.sync, workers, ready=informers.synced)
        informers.listen(self.on_change)

    async def run(self) -> None:
        await self.queue.run()

    def on_change(self, plural: str, etype: str, obj: dict, old: dict | None) -> None:
        if plural not in TRACKED:
            return
        m = obj.get("metadata") or {}
        ns = m.get("namespace")
        if plural == "resourcequotas" and etype != "DELETED":
            self.queue.add((ns, m["name"]))
        for quota in self.quotas.list(ns):
            if matching_resources(plural, (quota.get("spec") or {}).get("hard") or {}):
                self.queue.add((ns, quota["metadata"]["name"]))

    async def sync(self, key) -> None:
        from shim.controllers.runtime import ApiError
        ns, name = key
        quota = self.quotas.get(ns, name)
        if quota is None or (quota.get("metadata") or {}).get("deletionTimestamp"):
            return
        objects = {p: self.informers.caches[p].list(ns) for p in TRACKED}
        status = quota_status(quota, calculate_used(quota, objects, self.clock()))
        if status == (quota.get("status") or {}):
            return
        new = dict(quota)
        new["status"] = status
        try:
            out = await self.api.replace("resourcequotas", ns, name, new, sub="status")
        except ApiError as e:
            if e.code == 404:
                return
            raise
        self.informers.written("resourcequotas", out, quiet=True)
