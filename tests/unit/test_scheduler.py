"""Scheduler filters, scoring and FitError messages (shim/controllers/scheduler.py), and the
node lifecycle controller's condition/taint rules (shim/controllers/nodelifecycle.py)."""
from __future__ import annotations

import random

from shim.controllers import nodelifecycle as nl
from shim.controllers import scheduler as s


def node(name, cpu="2", memory="4Gi", pods="110", labels=None, taints=None, unschedulable=False):
    n = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
         "spec": {}, "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods,
                                                "ephemeral-storage": "10Gi"}}}
    if taints:
        n["spec"]["taints"] = taints
    if unschedulable:
        n["spec"]["unschedulable"] = True
    return n


def pod(name="p", cpu=None, memory=None, **spec):
    req = {}
    if cpu:
        req["cpu"] = cpu
    if memory:
        req["memory"] = memory
    c = {"name": "c", "image": "x"}
    if req:
        c["resources"] = {"requests": req}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"containers": [c], **spec},
            "status": {"phase": "Pending"}}


def info(n, *pods):
    return s.NodeInfo(n, list(pods))


def test_pod_requests_with_init_and_sidecars():
    p = pod(cpu="500m", memory="100Mi")
    p["spec"]["initContainers"] = [
        {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "10Mi"}}},
        {"name": "side", "restartPolicy": "Always",
         "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}}}]
    p["spec"]["overhead"] = {"cpu": "10m"}
    r = s.pod_requests(p)
    # containers + sidecar = 600m/150Mi; init step i1 = 2000m/10Mi; max then + overhead
    assert r["cpu"] == 2010 and r["memory"] == 150 * 1024 * 1024


def test_insufficient_cpu_message():
    node_, msg = s.schedule_one(pod(cpu="3"), [info(node("n1"))])
    assert node_ is None
    assert msg == ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are "
                   "available: 1 No preemption victims found for incoming pod..")


def test_requests_count_bound_pods():
    n = node("n1", cpu="2")
    busy = pod("other", cpu="1500m")
    assert s.schedule_one(pod(cpu="600m"), [info(n, busy)])[0] is None
    assert s.schedule_one(pod(cpu="500m"), [info(n, busy)])[0] == "n1"


def test_histogram_sorted_and_unresolvable_preemption_message():
    nodes = [info(node("a", labels={"disk": "hdd"})),
             info(node("b", taints=[{"key": "node.kubernetes.io/unreachable",
                                     "effect": "NoSchedule"}]))]
    _, msg = s.schedule_one(pod(nodeSelector={"disk": "ssd"}), nodes)
    assert msg == ("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                   "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. "
                   "preemption: 0/2 nodes are available: 2 Preemption is not helpful for "
                   "scheduling..")


def test_several_resource_reasons_and_mixed_preemption():
    nodes = [info(node("a", cpu="1", memory="1Gi")), info(node("b", unschedulable=True))]
    _, msg = s.schedule_one(pod(cpu="2", memory="2Gi"), nodes)
    assert msg == ("0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, "
                   "1 node(s) were unschedulable. preemption: 0/2 nodes are available: "
                   "1 No preemption victims found for incoming pod, 1 Preemption is not helpful "
                   "for scheduling..")


def test_too_many_pods_and_preemption_never():
    n = node("a", pods="1")
    _, msg = s.schedule_one(pod(preemptionPolicy="Never"), [info(n, pod("x"))])
    assert msg == ("0/1 nodes are available: 1 Too many pods. preemption: not eligible due to "
                   "preemptionPolicy=Never..")


def test_no_nodes():
    assert s.schedule_one(pod(), []) == (None, "no nodes available to schedule pods")


def test_tolerations():
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    n = node("a", taints=[taint])
    assert s.filter_node(pod(), info(n)) == (s.UNRESOLVABLE, [
        "node(s) had untolerated taint {dedicated: gpu}"])
    for tol in ({"key": "dedicated", "operator": "Equal", "value": "gpu"},
                {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},
                {"operator": "Exists"}):
        assert s.filter_node(pod(tolerations=[tol]), info(n)) is None, tol
    for tol in ({"key": "dedicated", "value": "cpu"},
                {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}):
        assert s.filter_node(pod(tolerations=[tol]), info(n)) is not None, tol
    soft = node("b", taints=[{"key": "k", "effect": "PreferNoSchedule"}])
    assert s.filter_node(pod(), info(soft)) is None


def test_unschedulable_node_tolerated():
    n = node("a", unschedulable=True)
    tol = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
           "effect": "NoSchedule"}
    assert s.filter_node(pod(tolerations=[tol]), info(n)) is None


def _affinity(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}


def test_node_affinity_operators():
    n = node("n1", labels={"zone": "a", "cores": "8"})
    cases = [
        ({"key": "zone", "operator": "In", "values": ["a", "b"]}, True),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, False),
        ({"key": "gpu", "operator": "NotIn", "values": ["x"]}, True),
        ({"key": "zone", "operator": "Exists"}, True),
        ({"key": "zone", "operator": "DoesNotExist"}, False),
        ({"key": "cores", "operator": "Gt", "values": ["4"]}, True),
        ({"key": "cores", "operator": "Lt", "values": ["4"]}, False),
        ({"key": "zone", "operator": "Gt", "values": ["4"]}, False),
    ]
    for expr, want in cases:
        p = pod(affinity=_affinity({"matchExpressions": [expr]}))
        assert s.matches_node_affinity(p, n) is want, expr
    # terms are ORed, expressions ANDed; matchFields on metadata.name
    p = pod(affinity=_affinity(
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}))
    assert s.matches_node_affinity(p, n)
    assert not s.matches_node_affinity(pod(affinity=_affinity({})), n)


def test_host_ports_conflict():
    a = pod("a")
    a["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    b = pod("b")
    b["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080,
                                            "protocol": "TCP"}]
    assert s.filter_node(b, info(node("n"), a)) == (s.UNSCHEDULABLE, [s.PORTS_CONFLICT])
    b["spec"]["containers"][0]["ports"][0]["protocol"] = "UDP"
    assert s.filter_node(b, info(node("n"), a)) is None


def test_spreads_to_least_allocated_node():
    full = info(node("full", cpu="4"), pod("x", cpu="3"))
    empty = info(node("empty", cpu="4"))
    assert s.schedule_one(pod(cpu="100m"), [full, empty], random.Random(1))[0] == "empty"


def test_terminal_and_foreign_pods_are_not_scheduled():
    assert s.wants_scheduling(pod())
    assert not s.wants_scheduling(pod(nodeName="n1"))
    assert not s.wants_scheduling(pod(schedulerName="other"))
    assert s.wants_scheduling(pod(schedulerName="other"), "other")
    assert not s.wants_scheduling(pod(schedulingGates=[{"name": "g"}]))


# ---- node lifecycle ---------------------------------------------------------------------

def ready_node(**spec):
    return {"metadata": {"name": "n"}, "spec": spec, "status": {"conditions": [
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "lastHeartbeatTime": "2024-01-01T00:00:00Z"}]}}


def test_unknown_conditions():
    conds = nl.unknown_conditions(ready_node(), 1_700_000_000)
    by = {c["type"]: c for c in conds}
    assert by["Ready"]["status"] == "Unknown" and by["Ready"]["reason"] == "NodeStatusUnknown"
    assert by["Ready"]["message"] == "Kubelet stopped posting node status."
    assert by["Ready"]["lastHeartbeatTime"] == "2024-01-01T00:00:00Z"      # kept
    assert by["Ready"]["lastTransitionTime"] == "2023-11-14T22:13:20Z"
    assert by["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert by["DiskPressure"]["message"] == "Kubelet never posted node status."
    n = ready_node()
    n["status"]["conditions"] = conds
    assert nl.unknown_conditions(n, 1_700_000_100) is None


def test_taints_follow_conditions():
    n = ready_node()
    assert nl.desired_taints(n, 0) == []
    n["status"]["conditions"] = nl.unknown_conditions(n, 0)
    got = {(t["key"], t["effect"]) for t in nl.desired_taints(n, 0)}
    assert got == {("node.kubernetes.io/unreachable", "NoSchedule"),
                   ("node.kubernetes.io/unreachable", "NoExecute")}
    # back to Ready: controller taints go, user taints stay
    back = ready_node(taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                              {"key": "mine", "effect": "NoSchedule"}], unschedulable=True)
    assert nl.desired_taints(back, 0) == [
        {"key": "mine", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
         "timeAdded": "1970-01-01T00:00:00Z"}]
