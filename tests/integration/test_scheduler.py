"""The scheduler and the node lifecycle controller against a real server: fake Node objects
(API objects whose status the test sets), pods bound through pods/binding, FailedScheduling
messages and events, and nodes turning Unknown when their heartbeats stop."""
from __future__ import annotations

import asyncio
import time

import pytest

from shim.client import Client
from shim.node.nodestatus import HostFacts, NodeConfig, NodeStatus
from tests.conftest import Kubectl, ServerProcess

PREEMPT_NO_VICTIMS = "preemption: 0/1 nodes are available: 1 No preemption victims found for " \
                     "incoming pod.."


@pytest.fixture(scope="module")
def sched_server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("sched")),
                      extra_args=["--node-monitor-grace-period", "600"])
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def k(sched_server, tmp_path_factory):
    return Kubectl(sched_server, "1.32", str(tmp_path_factory.mktemp("home")))


def run(coro):
    return asyncio.run(coro)


async def _with_client(server: ServerProcess, fn):
    async with Client.from_kubeconfig(server.kubeconfig) as c:
        return await fn(c)


def api(server, fn):
    return run(_with_client(server, fn))


def fake_node(name: str, cpu="2", memory="4Gi", pods="110", labels=None, taints=None,
              ready="True") -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    res = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "10Gi"}
    spec = {"taints": taints} if taints else {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": spec,
            "status": {"capacity": res, "allocatable": res, "conditions": [
                {"type": "Ready", "status": ready, "reason": "KubeletReady",
                 "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                 "lastTransitionTime": now}]}}


def make_pod(name: str, cpu: str | None = None, **spec) -> dict:
    c = {"name": "c", "image": "busybox"}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [c], **spec}}


@pytest.fixture
def nodes(sched_server):
    """Creates fake nodes; deletes every node afterwards."""
    def create(*objs):
        async def go(c):
            for o in objs:
                await c.create("nodes", o)
        api(sched_server, go)

    yield create

    async def cleanup(c):
        for n in (await c.list("nodes"))["items"]:
            await c.delete("nodes", n["metadata"]["name"])
    api(sched_server, cleanup)


@pytest.fixture
def sns(k):
    name = f"s{int(time.monotonic() * 1000) % 10_000_000}"
    k("create", "namespace", name)
    wait_for(lambda: k.run("get", "sa", "default", "-n", name, check=False).returncode == 0,
             what="default service account")
    yield name
    k("delete", "namespace", name, "--wait=false")


def create_pod(server, ns, pod):
    return api(server, lambda c: c.create("pods", pod, ns))


def wait_for(fn, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def get_pod(server, ns, name):
    return api(server, lambda c: c.get("pods", name, ns))


def scheduled_condition(pod):
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == "PodScheduled":
            return c
    return None


def events_for(server, ns, name, reason):
    async def go(c):
        lst = await c.list("events", ns, field_selector=f"involvedObject.name={name},"
                                                        f"reason={reason}")
        return lst["items"]
    return api(server, go)


def unschedulable_message(server, ns, name):
    c = scheduled_condition(get_pod(server, ns, name))
    return c["message"] if c and c["status"] == "False" else None


def test_no_nodes_then_node_added(sched_server, k, nodes, sns):
    create_pod(sched_server, sns, make_pod("lonely"))
    msg = wait_for(lambda: unschedulable_message(sched_server, sns, "lonely"),
                   what="PodScheduled=False")
    assert msg == "no nodes available to schedule pods"
    cond = scheduled_condition(get_pod(sched_server, sns, "lonely"))
    assert cond["reason"] == "Unschedulable"
    ev = wait_for(lambda: events_for(sched_server, sns, "lonely", "FailedScheduling"))
    assert ev[0]["type"] == "Warning" and ev[0]["message"] == msg
    assert ev[0]["source"] == {"component": "default-scheduler"}
    assert ev[0]["involvedObject"]["kind"] == "Pod" and ev[0]["involvedObject"]["uid"]
    out = k("get", "pod", "lonely", "-n", sns)
    assert "Pending" in out

    nodes(fake_node("n1"))
    pod = wait_for(lambda: (p := get_pod(sched_server, sns, "lonely"))["spec"].get("nodeName")
                   and p, what="binding")
    assert pod["spec"]["nodeName"] == "n1"
    assert scheduled_condition(pod)["status"] == "True"
    ev = wait_for(lambda: events_for(sched_server, sns, "lonely", "Scheduled"))
    assert ev[0]["message"] == f"Successfully assigned {sns}/lonely to n1"
    assert ev[0]["type"] == "Normal"
    assert "Successfully assigned" in k("describe", "pod", "lonely", "-n", sns)


def test_insufficient_cpu_then_bigger_node(sched_server, k, nodes, sns):
    nodes(fake_node("small", cpu="2"))
    create_pod(sched_server, sns, make_pod("big", cpu="3"))
    msg = wait_for(lambda: unschedulable_message(sched_server, sns, "big"))
    assert msg == f"0/1 nodes are available: 1 Insufficient cpu. {PREEMPT_NO_VICTIMS}"
    described = k("describe", "pod", "big", "-n", sns)
    assert "FailedScheduling" in described and "default-scheduler" in described
    nodes(fake_node("large", cpu="4"))
    pod = wait_for(lambda: (p := get_pod(sched_server, sns, "big"))["spec"].get("nodeName")
                   and p)
    assert pod["spec"]["nodeName"] == "large"


def test_bound_pods_use_up_the_node(sched_server, nodes, sns):
    nodes(fake_node("one", cpu="1"))
    create_pod(sched_server, sns, make_pod("first", cpu="600m"))
    wait_for(lambda: get_pod(sched_server, sns, "first")["spec"].get("nodeName"))
    create_pod(sched_server, sns, make_pod("second", cpu="600m"))
    msg = wait_for(lambda: unschedulable_message(sched_server, sns, "second"))
    assert msg.startswith("0/1 nodes are available: 1 Insufficient cpu.")
    # freeing the first pod's resources reschedules the second
    api(sched_server, lambda c: c.delete("pods", "first", sns, grace_period_seconds=0))
    assert wait_for(lambda: get_pod(sched_server, sns, "second")["spec"].get("nodeName")) == "one"


def test_taints_selector_and_exact_message(sched_server, nodes, sns):
    nodes(fake_node("hdd", labels={"disk": "hdd"}),
          # (Ready Unknown, or the node lifecycle controller would lift the taint)
          fake_node("gone", labels={"disk": "ssd"}, ready="Unknown",
                    taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]))
    create_pod(sched_server, sns, make_pod("picky", nodeSelector={"disk": "ssd"}))
    msg = wait_for(lambda: unschedulable_message(sched_server, sns, "picky"))
    assert msg == ("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                   "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. "
                   "preemption: 0/2 nodes are available: 2 Preemption is not helpful for "
                   "scheduling..")
    # a tolerating pod with required node affinity goes to the tainted ssd node
    tol = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}]
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}
    create_pod(sched_server, sns, make_pod("tolerant", tolerations=tol, affinity=aff))
    assert wait_for(lambda: get_pod(sched_server, sns, "tolerant")["spec"].get("nodeName")) == "gone"
    # relabelling the hdd node makes room for the picky pod
    api(sched_server, lambda c: c.patch("nodes", "hdd", {"metadata": {"labels": {"disk": "ssd"}}}))
    assert wait_for(lambda: get_pod(sched_server, sns, "picky")["spec"].get("nodeName")) == "hdd"


def test_unschedulable_node_and_other_scheduler(sched_server, k, nodes, sns):
    nodes(fake_node("cordoned"))
    k("cordon", "cordoned")
    create_pod(sched_server, sns, make_pod("c1"))
    msg = wait_for(lambda: unschedulable_message(sched_server, sns, "c1"))
    assert msg.startswith("0/1 nodes are available: 1 node(s) were unschedulable.")
    create_pod(sched_server, sns, make_pod("mine", schedulerName="my-scheduler"))
    k("uncordon", "cordoned")
    assert wait_for(lambda: get_pod(sched_server, sns, "c1")["spec"].get("nodeName")) == "cordoned"
    time.sleep(0.5)
    p = get_pod(sched_server, sns, "mine")
    assert not p["spec"].get("nodeName") and scheduled_condition(p) is None


def test_spread_across_nodes(sched_server, nodes, sns):
    nodes(fake_node("a", cpu="4"), fake_node("b", cpu="4"))
    for i in range(4):
        create_pod(sched_server, sns, make_pod(f"w{i}", cpu="1"))
    placed = [wait_for(lambda i=i: get_pod(sched_server, sns, f"w{i}")["spec"].get("nodeName"))
              for i in range(4)]
    assert sorted(placed) == ["a", "a", "b", "b"]


# ---- heartbeats and the node lifecycle controller ----------------------------------------

@pytest.fixture(scope="module")
def grace_server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("grace")),
                      extra_args=["--node-monitor-grace-period", "3"])
    s.start()
    yield s
    s.stop()


FACTS = HostFacts(hostname="agent-1", cpus=4, memory_kib=8 * 1024 * 1024,
                  fs_bytes=100 * 1024 ** 3, internal_ip="10.1.2.3", machine_id="m" * 32,
                  system_uuid="uuid", boot_id="boot", kernel_version="6.1.0-test",
                  os_image="Debian GNU/Linux 12 (bookworm)")


def node_ready(server, name):
    n = api(server, lambda c: c.get("nodes", name))
    ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
    return ready, n


def test_node_agent_heartbeats_then_unknown(grace_server):
    cfg = NodeConfig(runtime_version="containerd://1.6.20", lease_renew_interval=0.5,
                     status_update_interval=0.5, status_report_interval=60)

    async def agent_for(seconds):
        async with Client.from_kubeconfig(grace_server.kubeconfig) as c:
            ns = NodeStatus(c, cfg, FACTS)
            task = asyncio.create_task(ns.run())
            await asyncio.sleep(seconds)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return ns

    agent = run(agent_for(5.0))        # longer than the 3 s grace period: stays Ready
    ready, node = node_ready(grace_server, "agent-1")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    assert ready["message"] == "kubelet is posting ready status"
    assert not node["spec"].get("taints")
    st = node["status"]
    assert st["capacity"]["cpu"] == "4" and st["capacity"]["pods"] == "110"
    assert st["capacity"]["memory"] == "8388608Ki"
    assert st["allocatable"]["memory"] == "8286208Ki"           # minus 100Mi eviction reserve
    assert st["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.6.20"
    assert st["nodeInfo"]["kubeletVersion"] == "v1.32.0"
    assert st["addresses"] == [{"type": "InternalIP", "address": "10.1.2.3"},
                               {"type": "Hostname", "address": "agent-1"}]
    assert [c["type"] for c in st["conditions"]] == ["MemoryPressure", "DiskPressure",
                                                     "PIDPressure", "Ready"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "agent-1"
    lease = api(grace_server, lambda c: c.get("leases", "agent-1", "kube-node-lease",
                                              group="coordination.k8s.io"))
    assert lease["spec"]["holderIdentity"] == "agent-1"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    renewed = time.mktime(time.strptime(lease["spec"]["renewTime"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(renewed - time.mktime(time.gmtime())) < 30
    assert agent.lease["spec"]["renewTime"] == lease["spec"]["renewTime"]

    # the agent is gone: after the grace period the node turns Unknown and is tainted
    ready, node = wait_for(lambda: (r := node_ready(grace_server, "agent-1"))[0]["status"]
                           == "Unknown" and r, timeout=20, what="Ready=Unknown")
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    node = wait_for(lambda: (n := api(grace_server, lambda c: c.get("nodes", "agent-1")))
                    ["spec"].get("taints") and n, what="taints")
    assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute")}
    k = Kubectl(grace_server)
    assert "NotReady" in k("get", "node", "agent-1")

    # the agent comes back: Ready again, taints removed
    run(agent_for(2.0))
    ready, _ = node_ready(grace_server, "agent-1")
    assert ready["status"] == "True"
    wait_for(lambda: not api(grace_server, lambda c: c.get("nodes", "agent-1"))["spec"]
             .get("taints"), what="taints removed")
