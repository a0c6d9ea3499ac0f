"""Pure logic of the controllers and admission plugins: RC deletion order, status, pod
template; namespace deletion conditions; quota evaluators; LimitRanger defaults and messages;
the informer cache's ordering rules."""
from __future__ import annotations

from fractions import Fraction

from shim.api.admission import limitranger as lr
from shim.controllers import namespaces as nsc
from shim.controllers import replication as rcc
from shim.controllers import resourcequota as ev
from shim.controllers.runtime import Cache


def pod(name, *, node="", phase="Pending", ready=None, created="2024-01-01T00:00:00Z",
        labels=None, owner=None, ready_since="2024-01-01T00:00:00Z", restarts=0, **spec):
    p = {"metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}",
                      "creationTimestamp": created, "labels": labels or {"app": "x"}},
         "spec": {"nodeName": node, **spec} if node else dict(spec),
         "status": {"phase": phase, "containerStatuses": [{"restartCount": restarts}]}}
    if ready is not None:
        p["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                      "lastTransitionTime": ready_since}]
    if owner:
        p["metadata"]["ownerReferences"] = [owner]
    return p


RC = {"apiVersion": "v1", "kind": "ReplicationController",
      "metadata": {"name": "web", "namespace": "ns", "uid": "rc-uid", "generation": 3},
      "spec": {"replicas": 2, "selector": {"app": "x"},
               "template": {"metadata": {"labels": {"app": "x", "tier": "fe"},
                                         "annotations": {"a": "b"}},
                            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


# ---- replication ----------------------------------------------------------------------------

def test_deletion_order_prefers_unscheduled_pending_unready_newest():
    pods = [pod("running-ready", node="n1", phase="Running", ready=True),
            pod("unscheduled", phase="Pending"),
            pod("running-unready", node="n1", phase="Running", ready=False),
            pod("pending-on-node", node="n2", phase="Pending"),
            pod("old-ready", node="n3", phase="Running", ready=True, created="2023-01-01T00:00:00Z"),
            pod("new-ready", node="n4", phase="Running", ready=True, created="2024-06-01T00:00:00Z")]
    order = [p["metadata"]["name"] for p in rcc.deletion_order(pods)]
    assert order[0] == "unscheduled"
    assert order[1] == "pending-on-node"
    assert order[2] == "running-unready"
    # among ready running pods: doubled-up node (n1 has two pods) first, then newest
    assert order[3] == "running-ready"
    assert order[4:] == ["new-ready", "old-ready"]


def test_pod_from_template_and_owner_reference():
    p = rcc.pod_from_template(RC)
    m = p["metadata"]
    assert m["generateName"] == "web-" and "name" not in m
    assert m["labels"] == {"app": "x", "tier": "fe"} and m["annotations"] == {"a": "b"}
    assert m["ownerReferences"] == [{"apiVersion": "v1", "kind": "ReplicationController",
                                     "name": "web", "uid": "rc-uid", "controller": True,
                                     "blockOwnerDeletion": True}]
    assert p["spec"] == RC["spec"]["template"]["spec"] and p["spec"] is not RC["spec"]["template"]["spec"]


def test_calculate_status_counts_and_failure_condition():
    pods = [pod("a", ready=True, labels={"app": "x", "tier": "fe"}),
            pod("b", ready=True, ready_since="2999-01-01T00:00:00Z"),
            pod("c", ready=False)]
    rc = dict(RC, spec=dict(RC["spec"], minReadySeconds=10, replicas=5))
    st = rcc.calculate_status(rc, pods, "pods is forbidden: quota", now=2e9, ltt="T")
    assert st["replicas"] == 3 and st["fullyLabeledReplicas"] == 1
    assert st["readyReplicas"] == 2 and st["availableReplicas"] == 1
    assert st["observedGeneration"] == 3
    assert st["conditions"] == [{"type": "ReplicaFailure", "status": "True",
                                 "lastTransitionTime": "T", "reason": "FailedCreate",
                                 "message": "pods is forbidden: quota"}]
    rc["status"] = st
    st2 = rcc.calculate_status(rc, pods, None, now=2e9, ltt="T2")
    assert "conditions" not in st2
    empty = rcc.calculate_status(dict(RC, status={}), [], None, now=0, ltt="T")
    assert empty == {"replicas": 0, "observedGeneration": 3}


def test_selector_and_activity():
    assert rcc.selector_matches({"app": "x"}, {"app": "x", "z": "1"})
    assert not rcc.selector_matches({"app": "x"}, {"app": "y"})
    assert not rcc.selector_matches({}, {"app": "x"})
    assert not rcc.is_active(pod("f", phase="Failed"))
    gone = pod("d")
    gone["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not rcc.is_active(gone) and rcc.is_active(pod("ok"))


# ---- namespace conditions -----------------------------------------------------------------

def test_namespace_conditions_wording_and_transitions():
    failing = nsc.content_conditions({"pods": 2, "secrets": 0}, {"foregroundDeletion": 1}, [])
    assert [c["message"] for c in failing] == [
        "Some resources are remaining: pods. has 2 resource instances",
        "Some finalizers are remaining: foregroundDeletion in 1 resource instances"]
    conds, changed = nsc.merge_conditions([], failing, "T1")
    assert changed and [c["type"] for c in conds] == list(nsc.CONDITION_TYPES)
    by = {c["type"]: c for c in conds}
    assert by["NamespaceContentRemaining"]["status"] == "True"
    assert by["NamespaceDeletionDiscoveryFailure"] == {
        "type": "NamespaceDeletionDiscoveryFailure", "status": "False", "lastTransitionTime": "T1",
        "reason": "ResourcesDiscovered", "message": "All resources successfully discovered"}
    again, changed = nsc.merge_conditions(conds, failing, "T2")
    assert not changed
    done, changed = nsc.merge_conditions(conds, [], "T3")
    by = {c["type"]: c for c in done}
    assert changed and by["NamespaceContentRemaining"]["status"] == "False"
    assert by["NamespaceContentRemaining"]["lastTransitionTime"] == "T3"
    assert by["NamespaceContentRemaining"]["message"] == "All content successfully removed"
    assert by["NamespaceDeletionDiscoveryFailure"]["lastTransitionTime"] == "T1"


# ---- quota evaluators ---------------------------------------------------------------------

def cpod(*containers, init=(), **spec):
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers),
                                                "initContainers": list(init), **spec},
            "status": {"phase": "Pending"}}


def c(name, requests=None, limits=None, **kw):
    return {"name": name, "resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v},
            **kw}


def test_pod_usage_sums_containers_and_init_floor():
    p = cpod(c("a", {"cpu": "100m", "memory": "128Mi"}, {"memory": "256Mi"}),
             c("b", {"cpu": "200m", "memory": "128Mi"}, {"memory": "256Mi"}),
             init=[c("i", {"cpu": "1", "memory": "64Mi"})])
    u = ev.pod_usage(p, 0)
    assert {k: str(v) for k, v in u.items()} == {
        "count/pods": "1", "pods": "1", "cpu": "1", "requests.cpu": "1",
        "memory": "256Mi", "requests.memory": "256Mi", "limits.memory": "512Mi"}
    p["status"]["phase"] = "Succeeded"
    assert {k: str(v) for k, v in ev.pod_usage(p, 0).items()} == {"count/pods": "1"}


def test_quantity_sums_take_first_format():
    total = ev.Qty().add(ev.Qty.parse("128Mi")).add(ev.Qty.parse("128Mi"))
    assert str(total) == "256Mi"
    assert str(ev.Qty().add(ev.Qty.parse("100m")).add(ev.Qty.parse("900m"))) == "1"
    assert ev.pretty({"pods": ev.Qty(Fraction(1)), "limits.cpu": ev.Qty.parse("500m")}) == \
        "limits.cpu=500m,pods=1"


def test_pod_constraints_message():
    p = cpod(c("main"), c("side", {"cpu": "1"}))
    assert ev.pod_constraints({"limits.cpu", "pods"}, p) == "must specify limits.cpu for: main,side"
    assert ev.pod_constraints({"cpu", "limits.memory"}, p) == \
        "must specify cpu for: main; limits.memory for: main,side"
    assert ev.pod_constraints({"pods", "count/pods"}, p) is None


def test_scopes_and_matching():
    be = cpod(c("main"))
    bu = cpod(c("main", {"cpu": "1"}), activeDeadlineSeconds=30)
    q = {"spec": {"hard": {"pods": "3"}, "scopes": ["BestEffort"]}}
    assert ev.quota_matches(q, "pods", be) and not ev.quota_matches(q, "pods", bu)
    q = {"spec": {"hard": {"pods": "3"}, "scopeSelector": {"matchExpressions": [
        {"scopeName": "Terminating", "operator": "Exists"}]}}}
    assert ev.quota_matches(q, "pods", bu) and not ev.quota_matches(q, "pods", be)
    assert not ev.quota_matches(q, "services", {"spec": {}})          # scoped: pods only
    pc = {"spec": {"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}
    assert ev.quota_matches(pc, "pods", cpod(c("m"), priorityClassName="high"))
    assert not ev.quota_matches(pc, "pods", cpod(c("m"), priorityClassName="low"))
    assert ev.matching_resources("secrets", {"secrets", "count/secrets", "pods"}) == \
        {"secrets", "count/secrets"}
    assert ev.matching_resources("events", {"count/events"}) == set()


def test_service_usage_and_calculate_used():
    np = {"spec": {"type": "NodePort", "ports": [{"port": 1}, {"port": 2}]}}
    lb = {"spec": {"type": "LoadBalancer", "ports": [{"port": 1, "nodePort": 30001}, {"port": 2}],
                   "allocateLoadBalancerNodePorts": False}}
    assert {k: str(v) for k, v in ev.service_usage(np).items()} == {
        "services": "1", "count/services": "1", "services.nodeports": "2"}
    assert str(ev.service_usage(lb)["services.nodeports"]) == "1"
    quota = {"spec": {"hard": {"services": "5", "services.loadbalancers": "1", "pods": "4",
                               "requests.memory": "1Gi"}}}
    used = ev.calculate_used(quota, {"services": [np, lb], "pods": [
        cpod(c("a", {"memory": "100Mi"})), cpod(c("b"))]}, 0)
    assert ev.quota_status(quota, used)["used"] == {
        "pods": "2", "requests.memory": "100Mi", "services": "2", "services.loadbalancers": "1"}
    assert ev.quota_status({"spec": {"hard": {"cpu": "1000m"}}}, {})["hard"] == {"cpu": "1"}


# ---- limit ranger -------------------------------------------------------------------------

LR = {"spec": {"limits": [
    {"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "250m"},
     "max": {"cpu": "1"}, "min": {"cpu": "100m"}},
    {"type": "Pod", "max": {"memory": "1Gi"}}]}}


def test_limitranger_mutates_only_missing_and_annotates():
    p = cpod(c("a"), c("b", {"cpu": "300m"}, {"cpu": "600m"}), init=[c("i")])
    p["metadata"] = {"name": "p"}
    lr.mutate(LR, p)
    assert p["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m"},
                                                       "requests": {"cpu": "250m"}}
    assert p["spec"]["containers"][1]["resources"] == {"requests": {"cpu": "300m"},
                                                       "limits": {"cpu": "600m"}}
    assert p["metadata"]["annotations"][lr.ANNOTATION] == (
        "LimitRanger plugin set: cpu request for container a; cpu limit for container a; "
        "cpu request for init container i; cpu limit for init container i")


def test_limitranger_messages():
    p = cpod(c("a", {"cpu": "50m", "memory": "1Gi"}, {"cpu": "2", "memory": "1Gi"}),
             c("b", {"memory": "512Mi"}, {"memory": "512Mi", "cpu": "500m"}))
    msgs = lr.validate(LR, p)
    assert msgs == ["minimum cpu usage per Container is 100m, but request is 50m",
                    "maximum cpu usage per Container is 1, but limit is 2",
                    "minimum cpu usage per Container is 100m.  No request is specified",
                    "maximum memory usage per Pod is 1Gi, but limit is 1536Mi"]
    assert lr.aggregate(msgs[:1]) == msgs[0]
    assert lr.aggregate(msgs[:2]) == "[" + ", ".join(msgs[:2]) + "]"
    ratio = {"spec": {"limits": [{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]}}
    assert lr.validate(ratio, cpod(c("a", {"cpu": "100m"}, {"cpu": "250m"}))) == [
        "cpu max limit to request ratio per Container is 2, but provided ratio is 2.500000"]
    assert lr.validate(ratio, cpod(c("a", None, {"cpu": "250m"}))) == [
        "cpu max limit to request ratio per Container is 2, but no request is specified or "
        "request is 0"]


# ---- cache ------------------------------------------------------------------------------

def test_cache_keeps_newest_and_remembers_deletions():
    cache = Cache("pods")
    v2 = {"metadata": {"name": "a", "namespace": "n", "uid": "u1", "resourceVersion": "20"}}
    v1 = {"metadata": {"name": "a", "namespace": "n", "uid": "u1", "resourceVersion": "10"}}
    assert cache.upsert(v2) == (None, True)
    assert cache.upsert(v1) == (v2, False) and cache.get("n", "a") is v2
    assert cache.remove(v2) is v2 and cache.get("n", "a") is None
    assert cache.upsert(v2) == (None, False) and cache.list("n") == []
    other = {"metadata": {"name": "a", "namespace": "n", "uid": "u2", "resourceVersion": "5"}}
    assert cache.upsert(other)[1] and cache.get("n", "a") is other
