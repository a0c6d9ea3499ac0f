"""Simulated (KWOK-like) nodes: `kubeshim server --no-node --simulated-nodes 6` driven with
kubectl — nodes, an RC becoming READY on three of them, pod IPs per node, graceful and forced
deletion, the exit-code annotation, and 500 pods Running — plus the module's pure helpers."""
from __future__ import annotations

import ipaddress
import json
import time

import pytest

from shim.node import simulated
from tests.conftest import Kubectl, ServerProcess

NODES = 6


@pytest.fixture(scope="module")
def sim_server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("sim")),
                      extra_args=["--simulated-nodes", str(NODES)])
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def k(sim_server, tmp_path_factory):
    return Kubectl(sim_server, "1.32", str(tmp_path_factory.mktemp("home")))


_n = [0]


@pytest.fixture
def sns(k):
    _n[0] += 1
    name = f"sim-{_n[0]}"
    k("create", "namespace", name)
    return name


def wait_for(fn, timeout: float = 60.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out; last value: {last!r}")


def get_json(k: Kubectl, *args: str) -> dict:
    return json.loads(k("get", *args, "-o", "json"))


def rc_manifest(name: str, replicas: int, nodes: list[str] | None = None,
                grace: int | None = None) -> str:
    spec: dict = {"containers": [{"name": "app", "image": "busybox:1.36",
                                  "command": ["sleep", "infinity"]}]}
    if nodes:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": nodes}]}]}}}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return json.dumps({"apiVersion": "v1", "kind": "ReplicationController",
                       "metadata": {"name": name},
                       "spec": {"replicas": replicas, "selector": {"app": name},
                                "template": {"metadata": {"labels": {"app": name}},
                                             "spec": spec}}})


def pod_manifest(name: str, annotations: dict | None = None, restart: str = "Never") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "annotations": annotations or {}},
                       "spec": {"restartPolicy": restart, "containers": [
                           {"name": "c", "image": "busybox"}]}})


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()[1:]]


# ---- pure helpers ------------------------------------------------------------------------

def test_node_subnets_are_distinct_and_outside_the_real_node():
    assert simulated.node_subnet("10.42.0.0/16", 0) == "10.42.200.0/24"
    assert simulated.node_subnet("10.42.0.0/16", 3) == "10.42.203.0/24"
    with pytest.raises(ValueError):
        simulated.node_subnet("10.42.0.0/16", 56)          # 10.42.256.0 does not exist


def test_ip_pool_is_stable_per_key_and_reuses_released_ips():
    pool = simulated.IPPool("10.42.200.0/24")
    a, b = pool.allocate("a"), pool.allocate("b")
    assert (a, b) == ("10.42.200.2", "10.42.200.3")
    assert pool.allocate("a") == a
    pool.release("a")
    assert pool.claim("c", "10.42.200.2") and not pool.claim("d", "10.42.200.3")
    assert len(pool) == 2


def test_exit_plan_and_runtime_from_annotations():
    pod = {"metadata": {"uid": "u1", "annotations": {simulated.ANNOTATION_EXIT_CODE: "3",
                                                     simulated.ANNOTATION_EXIT_AFTER: "5"}},
           "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    assert simulated.exit_plan(pod) == (3, 5.0)
    early = simulated.pod_runtime(pod, started=100.0, now=104.0, pod_ip="10.42.200.9")
    assert early.containers[0].state == "running"
    late = simulated.pod_runtime(pod, started=100.0, now=105.0)
    c = late.containers[0]
    assert (c.state, c.exit_code, c.finished_at) == ("exited", 3, 105.0)
    assert c.container_id.startswith("simulated://")
    assert c.image == "docker.io/library/busybox:latest"


# ---- against a server --------------------------------------------------------------------

def test_nodes_registered_ready_with_pod_cidrs(k):
    def nodes():
        items = get_json(k, "nodes")["items"]
        return items if len(items) == NODES and all(
            (n.get("spec") or {}).get("podCIDR") for n in items) else None
    items = {n["metadata"]["name"]: n for n in wait_for(nodes, 30)}
    assert sorted(items) == simulated.node_names(NODES)
    n1 = items["kubeshim-sim-1"]
    assert n1["metadata"]["labels"]["type"] == "kwok"
    assert n1["metadata"]["labels"]["kubernetes.io/hostname"] == "kubeshim-sim-1"
    assert n1["spec"]["podCIDR"] == "10.42.201.0/24"
    assert n1["status"]["capacity"]["cpu"] == "32"
    assert n1["status"]["capacity"]["pods"] == "110"
    ready = [c for c in n1["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "True"
    lease = get_json(k, "lease", "kubeshim-sim-1", "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "kubeshim-sim-1"


def test_rc_of_20_becomes_ready_on_three_nodes(k, sns):
    three = simulated.node_names(3)
    k("apply", "-n", sns, "-f", "-", input=rc_manifest("web", 20, three))

    def ready():
        out = k("get", "rc", "web", "-n", sns)
        r = rows(out)[0]
        return out if r[1:4] == ["20", "20", "20"] else None
    out = wait_for(ready, 90)
    assert out.split()[:4] == ["NAME", "DESIRED", "CURRENT", "READY"]
    wide = rows(k("get", "pods", "-n", sns, "-o", "wide"))
    assert len(wide) == 20
    assert all(r[2] == "Running" and r[1] == "1/1" for r in wide)
    ips = [r[5] for r in wide]
    nodes = [r[6] for r in wide]
    assert len(set(ips)) == 20
    assert set(nodes) <= set(three) and len(set(nodes)) >= 2
    for ip, node in zip(ips, nodes):
        subnet = simulated.node_subnet("10.42.0.0/16", int(node.rsplit("-", 1)[1]))
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet)
    pod = get_json(k, "pods", "-n", sns)["items"][0]
    cs = pod["status"]["containerStatuses"][0]
    assert cs["containerID"].startswith("simulated://")
    assert cs["imageID"].startswith("docker.io/library/busybox@sha256:")
    assert "running" in cs["state"] and cs["ready"] is True
    events = get_json(k, "events", "-n", sns, "--field-selector",
                      f"involvedObject.name={pod['metadata']['name']}")["items"]
    assert {"Scheduled", "Pulled", "Created", "Started"} <= {e["reason"] for e in events}


def test_graceful_and_forced_deletion(k, sns):
    for name in ("slow", "fast"):
        k("apply", "-n", sns, "-f", "-", input=pod_manifest(name))
    wait_for(lambda: all(get_json(k, "pod", n, "-n", sns)["status"].get("phase") == "Running"
                         for n in ("slow", "fast")), 30)
    k("delete", "pod", "slow", "-n", sns, "--grace-period=3", "--wait=false")
    assert "Terminating" in k("get", "pod", "slow", "-n", sns)
    k("delete", "pod", "fast", "-n", sns, "--grace-period=0", "--force")
    assert k.run("get", "pod", "fast", "-n", sns, check=False).returncode != 0
    wait_for(lambda: k.run("get", "pod", "slow", "-n", sns, check=False).returncode != 0, 30)
    killing = [e for e in get_json(k, "events", "-n", sns)["items"]
               if e["reason"] == "Killing" and e["involvedObject"]["name"] == "slow"]
    assert killing and killing[0]["message"] == "Stopping container c"


def test_exit_code_annotation(k, sns):
    ann = simulated.ANNOTATION_EXIT_CODE
    k("apply", "-n", sns, "-f", "-", input=pod_manifest("ok", {ann: "0"}))
    k("apply", "-n", sns, "-f", "-", input=pod_manifest("bad", {ann: "2"}))
    k("apply", "-n", sns, "-f", "-", input=pod_manifest("loop", {ann: "1"}, restart="Always"))

    def statuses():
        got = {r[0]: r[2] for r in rows(k("get", "pods", "-n", sns))}
        return got if got == {"ok": "Completed", "bad": "Error",
                              "loop": "CrashLoopBackOff"} else None
    wait_for(statuses, 30)
    bad = get_json(k, "pod", "bad", "-n", sns)["status"]
    assert bad["phase"] == "Failed"
    assert bad["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
    assert get_json(k, "pod", "ok", "-n", sns)["status"]["phase"] == "Succeeded"


def test_500_pods_running(k, sns):
    t0 = time.monotonic()
    k("apply", "-n", sns, "-f", "-", input=rc_manifest("many", 500, grace=0))

    def ready():
        rc = get_json(k, "rc", "many", "-n", sns)
        return (rc.get("status") or {}).get("readyReplicas") == 500
    wait_for(ready, 240, interval=1.0)
    elapsed = time.monotonic() - t0
    print(f"\n500 simulated pods created, scheduled and Running in {elapsed:.1f}s")
    phases = [p["status"].get("phase") for p in get_json(k, "pods", "-n", sns)["items"]]
    assert phases.count("Running") == 500
    k("delete", "rc", "many", "-n", sns, "--wait=false")


def test_restart_adopts_running_pods(k, sim_server, sns):
    k("apply", "-n", sns, "-f", "-", input=pod_manifest("keep"))
    wait_for(lambda: get_json(k, "pod", "keep", "-n", sns)["status"].get("phase") == "Running", 30)
    before = get_json(k, "pod", "keep", "-n", sns)["status"]
    sim_server.stop()
    sim_server.start()
    k("apply", "-n", sns, "-f", "-", input=pod_manifest("fresh"))
    wait_for(lambda: get_json(k, "pod", "fresh", "-n", sns)["status"].get("phase") == "Running",
             30)
    after = get_json(k, "pod", "keep", "-n", sns)["status"]
    assert after["podIP"] == before["podIP"]
    assert after["containerStatuses"][0]["state"] == before["containerStatuses"][0]["state"]
    fresh = get_json(k, "pod", "fresh", "-n", sns)["status"]
    assert fresh["podIP"] != before["podIP"]
    started = [e for e in get_json(k, "events", "-n", sns)["items"]
               if e["reason"] == "Started" and e["involvedObject"]["name"] == "keep"]
    assert len(started) == 1 and started[0].get("count", 1) == 1


class FakeClient:
    """Records the simulator's writes; patch returns the pod with the patched status."""

    def __init__(self):
        self.patches: list[tuple] = []
        self.deletes: list[tuple] = []
        self.events: list[dict] = []

    async def patch(self, plural, name, body, namespace=None, **kw):
        self.patches.append((plural, name, body, kw.get("subresource")))
        return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": "0"},
                **body}

    async def delete(self, plural, name, namespace=None, **kw):
        self.deletes.append((plural, name, namespace, kw))
        return {}

    async def create(self, plural, obj, namespace=None, **kw):
        self.events.append(obj)
        return obj


def test_simulator_reconcile_with_a_fake_client():
    import asyncio
    from types import SimpleNamespace

    now = [1000.0]

    async def go():
        client = FakeClient()
        sim = simulated.Simulator(client, 2, clock=lambda: now[0])
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "namespace": "d", "uid": "u-1", "resourceVersion": "5"},
               "spec": {"nodeName": "kubeshim-sim-1",
                        "containers": [{"name": "c", "image": "busybox"}]},
               "status": {"phase": "Pending"}}
        sim.on_event(SimpleNamespace(type="ADDED", object=pod))
        await sim.reconcile_once()
        assert len(client.patches) == 1
        status = client.patches[0][2]["status"]
        assert client.patches[0][3] == "status"
        assert status["phase"] == "Running" and status["podIP"] == "10.42.201.2"
        assert status["hostIP"] == "10.42.201.1"
        assert status["containerStatuses"][0]["state"]["running"]["startedAt"] \
            == "1970-01-01T00:16:40Z"
        await sim.nodes["kubeshim-sim-1"].recorder.flush()
        assert [e["reason"] for e in client.events] == ["Pulled", "Created", "Started"]
        # graceful deletion: nothing until the deletionTimestamp, then DELETE with grace 0
        gone = dict(pod, metadata=dict(pod["metadata"], resourceVersion="7",
                                       deletionTimestamp="1970-01-01T00:17:10Z",
                                       deletionGracePeriodSeconds=30))
        sim.on_event(SimpleNamespace(type="MODIFIED", object=gone))
        await sim.reconcile_once()
        assert client.deletes == [] and sim._timers[0][0] == 1030.0
        now[0] = 1030.0
        await sim.reconcile_once()
        assert client.deletes == [("pods", "p", "d", {"grace_period_seconds": 0,
                                                      "preconditions": {"uid": "u-1"}})]
        sim.on_event(SimpleNamespace(type="DELETED", object=gone))
        assert not sim.pods and len(sim.nodes["kubeshim-sim-1"].pool) == 0
    asyncio.run(go())
