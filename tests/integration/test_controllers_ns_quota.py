"""Namespace deletion, ResourceQuota admission + controller, LimitRange admission, and the
absence of any kopf trace on the objects, against a real server."""
from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time

import pytest
from kubernetes.client.rest import ApiException

from tests.conftest import ROOT, Kubectl, ServerProcess
from tests.integration.test_controllers_rc import make_rc, rc_pods, wait_for


def pod(name, **resources):
    c = {"name": "main", "image": "nginx"}
    if resources:
        c["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [c]}}


def quota_status(core, ns, name="q1"):
    q = core.read_namespaced_resource_quota(name, ns)
    return (q.status.hard or {}), (q.status.used or {})


# ---- namespaces ---------------------------------------------------------------------------

def test_kubectl_delete_ns_empties_and_removes(kubectl, core, tmp_path):
    kubectl("create", "ns", "gone-1")
    make_rc(kubectl, "gone-1", "w", 3)
    kubectl("create", "secret", "generic", "s", "--from-literal=a=b", "-n", "gone-1")
    kubectl("create", "service", "clusterip", "svc", "--tcp=80:80", "-n", "gone-1")
    wait_for(lambda: len(rc_pods(core, "gone-1", "w")) == 3, what="pods")
    kubectl("delete", "ns", "gone-1", timeout=60)
    assert kubectl.run("get", "ns", "gone-1", check=False).returncode != 0
    assert core.list_namespaced_pod("gone-1").items == []
    assert core.list_namespaced_secret("gone-1").items == []


def test_namespace_conditions_while_content_remains(kubectl, raw):
    kubectl("create", "ns", "held-1")
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    assert raw("POST", "/api/v1/namespaces/held-1/configmaps", json.dumps(cm))[0] == 201
    kubectl("delete", "ns", "held-1", "--wait=false")

    def conds():
        o = raw("GET", "/api/v1/namespaces/held-1")[1]
        c = {x["type"]: x for x in (o.get("status") or {}).get("conditions") or []}
        return c if "NamespaceFinalizersRemaining" in c else None
    c = wait_for(conds, what="conditions")
    o = raw("GET", "/api/v1/namespaces/held-1")[1]
    assert o["status"]["phase"] == "Terminating"
    assert c["NamespaceContentRemaining"]["message"] == \
        "Some resources are remaining: configmaps. has 1 resource instances"
    assert c["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
    assert c["NamespaceFinalizersRemaining"]["message"] == \
        "Some finalizers are remaining: example.com/hold in 1 resource instances"
    assert c["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
    assert c["NamespaceDeletionContentFailure"]["message"] == \
        "All content successfully deleted, may be waiting on finalization"
    code, st, _, _ = raw("POST", "/api/v1/namespaces/held-1/configmaps",
                         json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "late"}}))
    assert code == 403
    raw("PATCH", "/api/v1/namespaces/held-1/configmaps/held",
        json.dumps({"metadata": {"finalizers": None}}),
        headers={"Content-Type": "application/merge-patch+json"})
    wait_for(lambda: raw("GET", "/api/v1/namespaces/held-1")[0] == 404, what="namespace gone")


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public", "kube-node-lease"])
def test_system_namespaces_cannot_be_deleted(kubectl, name):
    p = kubectl.run("delete", "ns", name, check=False)
    assert p.returncode != 0
    assert p.stderr.strip() == (f'Error from server (Forbidden): namespaces "{name}" is '
                                'forbidden: this namespace may not be deleted')
    assert "Active" in kubectl("get", "ns", name)


# ---- quota --------------------------------------------------------------------------------

def test_quota_exact_under_concurrent_creates(kubectl, core, ns):
    kubectl("create", "quota", "q1", "--hard=pods=5,count/configmaps=20", "-n", ns)
    wait_for(lambda: quota_status(core, ns)[1].get("pods") == "0", what="quota status")

    def create(i):
        try:
            core.create_namespaced_pod(ns, pod(f"race-{i}"))
            return "ok"
        except ApiException as e:
            return (e.status, json.loads(e.body)["message"])
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        results = list(ex.map(create, range(20)))
    ok = [r for r in results if r == "ok"]
    refused = [r for r in results if r != "ok"]
    assert len(ok) == 5 and len(refused) == 15
    for code, msg in refused:
        assert code == 403
        assert msg.endswith("is forbidden: exceeded quota: q1, requested: pods=1, used: pods=5, "
                            "limited: pods=5"), msg
    assert len(core.list_namespaced_pod(ns).items) == 5
    wait_for(lambda: quota_status(core, ns)[1].get("pods") == "5", what="used pods=5")
    hard, used = quota_status(core, ns)
    assert hard == {"pods": "5", "count/configmaps": "20"}
    assert used["count/configmaps"] == "1"          # kube-root-ca.crt
    core.delete_namespaced_pod("race-0", ns) if any(
        p.metadata.name == "race-0" for p in core.list_namespaced_pod(ns).items) else \
        core.delete_namespaced_pod(core.list_namespaced_pod(ns).items[0].metadata.name, ns)
    wait_for(lambda: quota_status(core, ns)[1].get("pods") == "4", what="used after delete")
    kubectl("create", "configmap", "c1", "--from-literal=a=b", "-n", ns)
    wait_for(lambda: quota_status(core, ns)[1].get("count/configmaps") == "2", what="cm count")


def test_quota_compute_resources_and_messages(kubectl, core, ns):
    kubectl("create", "quota", "q1", "--hard=requests.cpu=1,limits.memory=1Gi,memory=512Mi", "-n", ns)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(ns, pod("bare"))
    assert e.value.status == 403
    assert json.loads(e.value.body)["message"] == (
        'pods "bare" is forbidden: failed quota: q1: must specify limits.memory for: main; '
        'memory for: main; requests.cpu for: main')
    core.create_namespaced_pod(ns, pod("p1", requests={"cpu": "600m", "memory": "256Mi"},
                                       limits={"memory": "512Mi"}))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(ns, pod("p2", requests={"cpu": "500m", "memory": "128Mi"},
                                           limits={"memory": "256Mi"}))
    assert json.loads(e.value.body)["message"] == (
        'pods "p2" is forbidden: exceeded quota: q1, requested: requests.cpu=500m, '
        'used: requests.cpu=600m, limited: requests.cpu=1')
    core.create_namespaced_pod(ns, pod("p3", requests={"cpu": "400m", "memory": "128Mi"},
                                       limits={"memory": "256Mi"}))
    wait_for(lambda: quota_status(core, ns)[1] == {"requests.cpu": "1", "limits.memory": "768Mi",
                                                   "memory": "384Mi"}, what="compute usage")
    rows = {line.split()[0]: line.split()[1:] for line in
            kubectl("describe", "quota", "q1", "-n", ns).splitlines()[4:] if line.strip()}
    assert rows == {"limits.memory": ["768Mi", "1Gi"], "memory": ["384Mi", "512Mi"],
                    "requests.cpu": ["1", "1"]}


def test_quota_scopes(kubectl, core, ns):
    q = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "be"},
         "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}}
    core.create_namespaced_resource_quota(ns, q)
    core.create_namespaced_pod(ns, pod("be1"))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(ns, pod("be2"))
    assert "exceeded quota: be, requested: pods=1, used: pods=1, limited: pods=1" in \
        json.loads(e.value.body)["message"]
    core.create_namespaced_pod(ns, pod("bu1", requests={"cpu": "10m"}))   # NotBestEffort: free
    wait_for(lambda: quota_status(core, ns, "be")[1] == {"pods": "1"}, what="scoped usage")


def test_quota_services_and_object_counts(kubectl, core, ns):
    kubectl("create", "quota", "q1", "--hard=services=2,services.nodeports=1,secrets=1", "-n", ns)
    kubectl("create", "service", "nodeport", "np", "--tcp=80:80", "-n", ns)
    p = kubectl.run("create", "service", "nodeport", "np2", "--tcp=81:81", "-n", ns, check=False)
    assert "exceeded quota: q1, requested: services.nodeports=1, used: services.nodeports=1, " \
           "limited: services.nodeports=1" in p.stderr
    kubectl("create", "secret", "generic", "s1", "--from-literal=a=b", "-n", ns)
    p = kubectl.run("create", "secret", "generic", "s2", "--from-literal=a=b", "-n", ns, check=False)
    assert 'secrets "s2" is forbidden: exceeded quota: q1, requested: secrets=1, used: secrets=1, ' \
           'limited: secrets=1' in p.stderr
    wait_for(lambda: quota_status(core, ns)[1] == {"services": "1", "services.nodeports": "1",
                                                   "secrets": "1"}, what="usage")


def test_rc_reports_quota_refusal(kubectl, core, ns):
    kubectl("create", "quota", "q1", "--hard=pods=2", "-n", ns)
    wait_for(lambda: quota_status(core, ns)[1].get("pods") == "0", what="quota status")
    make_rc(kubectl, ns, "capped", 4)
    rc = wait_for(lambda: (lambda r: r if r.status.conditions else None)(
        core.read_namespaced_replication_controller("capped", ns)), what="ReplicaFailure")
    c = rc.status.conditions[0]
    assert (c.type, c.status, c.reason) == ("ReplicaFailure", "True", "FailedCreate")
    assert "exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2" in c.message
    assert len(rc_pods(core, ns, "capped")) == 2
    ev = kubectl("get", "events", "-n", ns, "--field-selector", "reason=FailedCreate", "-o",
                 "jsonpath={.items[0].message}")
    assert ev.startswith("Error creating: pods \"capped-") and "exceeded quota: q1" in ev
    kubectl("scale", "rc", "capped", "--replicas=2", "-n", ns)
    wait_for(lambda: not core.read_namespaced_replication_controller("capped", ns).status.conditions,
             what="condition removed")


def test_quota_status_survives_restart(tmp_path):
    srv = ServerProcess(str(tmp_path / "srv")).start()
    try:
        k = Kubectl(srv, "1.32", str(tmp_path))
        k("create", "ns", "rq")
        # pods need the namespace's default service account, which its controller adds
        wait_for(lambda: k.run("get", "sa", "default", "-n", "rq", check=False).returncode == 0,
                 what="default service account")
        k("create", "quota", "q1", "--hard=pods=10", "-n", "rq")
        for i in range(3):
            k("run", f"p{i}", "--image=nginx", "-n", "rq")
        used = lambda: k("get", "quota", "q1", "-n", "rq", "-o", "jsonpath={.status.used.pods}")
        wait_for(lambda: used() == "3", what="used 3")
        srv.stop()
        srv.start()
        k("delete", "pod", "p0", "-n", "rq")
        wait_for(lambda: used() == "2", what="used 2 after restart")
    finally:
        srv.stop()


# ---- limit ranges -------------------------------------------------------------------------

def test_limitrange_defaults_and_limits(kubectl, core, ns):
    lr = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
          "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                               "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"},
                               "min": {"memory": "64Mi"}, "maxLimitRequestRatio": {"cpu": "10"}}]}}
    core.create_namespaced_limit_range(ns, lr)
    kubectl("run", "d", "--image=nginx", "-n", ns)
    p = core.read_namespaced_pod("d", ns)
    res = p.spec.containers[0].resources
    assert res.limits == {"cpu": "500m", "memory": "256Mi"}
    assert res.requests == {"cpu": "100m", "memory": "256Mi"}
    assert p.metadata.annotations["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container d; "
        "cpu, memory limit for container d")
    assert p.status.qos_class == "Burstable"
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(ns, pod("big", limits={"cpu": "2"}))
    assert json.loads(e.value.body)["message"] == \
        'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(ns, pod("ratio", requests={"cpu": "10m"}, limits={"cpu": "500m"},))
    assert json.loads(e.value.body)["message"] == (
        'pods "ratio" is forbidden: cpu max limit to request ratio per Container is 10, '
        'but provided ratio is 50.000000')
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(ns, pod("small", requests={"memory": "32Mi"},
                                           limits={"memory": "32Mi"}))
    assert json.loads(e.value.body)["message"] == (
        'pods "small" is forbidden: minimum memory usage per Container is 64Mi, but request is 32Mi')


# ---- no kopf traces -----------------------------------------------------------------------

def test_no_kopf_annotation_or_finalizer_anywhere(raw):
    """Runs after the scenarios above (same server): nothing the controllers touched carries
    kopf's annotations, finalizers or status fields."""
    for plural in ("pods", "replicationcontrollers", "services", "endpoints", "secrets",
                   "configmaps", "serviceaccounts", "resourcequotas", "limitranges", "events",
                   "namespaces", "nodes"):
        code, lst, _, _ = raw("GET", f"/api/v1/{plural}")
        assert code == 200
        for item in lst["items"]:
            m = item["metadata"]
            assert not any("kopf" in k for k in (m.get("annotations") or {})), (plural, m)
            assert not any("kopf" in f for f in (m.get("finalizers") or [])), (plural, m)
            assert "kopf" not in json.dumps(item.get("status") or {}), (plural, m)


def test_standalone_controllers_command(server, tmp_path):
    """`kubeshim controllers --kubeconfig FILE` connects, syncs and keeps running."""
    log = open(tmp_path / "ctl.log", "wb")
    p = subprocess.Popen([sys.executable, "-m", "shim.cli", "controllers", "--kubeconfig",
                          server.kubeconfig], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        time.sleep(3)
        assert p.poll() is None, (tmp_path / "ctl.log").read_text()
    finally:
        p.terminate()
        p.wait(10)
    text = (tmp_path / "ctl.log").read_text()
    assert "Traceback" not in text, text
    assert os.path.exists(server.kubeconfig)
