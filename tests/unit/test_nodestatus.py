"""Node object building (shim/node/nodestatus.py) and the event recorder's correlator
(shim/node/events.py) — the branches a real server cannot be made to take quickly."""
from __future__ import annotations

import asyncio

from shim.api.errors import StatusError
from shim.node import events as ev
from shim.node import nodestatus as nsm

FACTS = nsm.HostFacts(hostname="box", cpus=8, memory_kib=16303428, fs_bytes=107374182400 + 512,
                      internal_ip="192.168.1.9", machine_id="ab" * 16, system_uuid="sys-uuid",
                      boot_id="boot-id", kernel_version="6.1.0-18-amd64",
                      os_image="Debian GNU/Linux 12 (bookworm)")


def test_capacity_and_allocatable():
    cap = nsm.capacity(FACTS, 110)
    assert cap == {"cpu": "8", "ephemeral-storage": "107374182912", "hugepages-1Gi": "0",
                   "hugepages-2Mi": "0", "memory": "16303428Ki", "pods": "110"}
    alloc = nsm.allocatable(FACTS, 110)
    assert alloc["memory"] == f"{16303428 - 102400}Ki"
    assert alloc["ephemeral-storage"] == str(int(107374182912 * 0.9))
    assert nsm._bytes_quantity(2048) == "2Ki"


def test_node_object_and_conditions():
    clock = [1_700_000_000.0]
    s = nsm.NodeStatus(None, nsm.NodeConfig(runtime_version="containerd://1.7.24",
                                            labels={"role": "edge"},
                                            taints=[{"key": "k", "effect": "NoSchedule"}]),
                       FACTS, clock=lambda: clock[0])
    node = s.build_node()
    meta = node["metadata"]
    assert meta["name"] == "box"
    assert meta["labels"] == {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                              "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": "box",
                              "kubernetes.io/os": "linux", "role": "edge"}
    assert node["spec"]["taints"] == [{"key": "k", "effect": "NoSchedule"}]
    st = node["status"]
    assert st["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert st["nodeInfo"]["osImage"] == "Debian GNU/Linux 12 (bookworm)"
    assert st["nodeInfo"]["operatingSystem"] == "linux"
    assert st["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.7.24"
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["MemoryPressure"] == {
        "type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "2023-11-14T22:13:20Z",
        "lastTransitionTime": "2023-11-14T22:13:20Z", "reason": "KubeletHasSufficientMemory",
        "message": "kubelet has sufficient memory available"}
    assert conds["DiskPressure"]["reason"] == "KubeletHasNoDiskPressure"
    assert conds["PIDPressure"]["message"] == "kubelet has sufficient PID available"
    assert (conds["Ready"]["reason"], conds["Ready"]["message"]) == (
        "KubeletReady", "kubelet is posting ready status")
    # a later heartbeat keeps transition times, moves heartbeat times
    clock[0] += 60
    later = {c["type"]: c for c in s.conditions(clock[0], st["conditions"])}
    assert later["Ready"]["lastTransitionTime"] == "2023-11-14T22:13:20Z"
    assert later["Ready"]["lastHeartbeatTime"] == "2023-11-14T22:14:20Z"
    assert nsm._material(s.status(clock[0], st)) == nsm._material(st)
    # runtime down: NotReady with the reason
    s.runtime_error = lambda: "container runtime is down"
    down = {c["type"]: c for c in s.conditions(clock[0], st["conditions"])}["Ready"]
    assert (down["status"], down["reason"], down["message"]) == (
        "False", "KubeletNotReady", "container runtime is down")
    assert down["lastTransitionTime"] == "2023-11-14T22:14:20Z"


def test_lease_object():
    s = nsm.NodeStatus(None, nsm.NodeConfig(), FACTS)
    s.node = {"metadata": {"uid": "node-uid"}}
    lease = s.build_lease(1_700_000_000.25)
    assert lease["metadata"] == {"name": "box", "namespace": "kube-node-lease", "ownerReferences": [
        {"apiVersion": "v1", "kind": "Node", "name": "box", "uid": "node-uid"}]}
    assert lease["spec"] == {"holderIdentity": "box", "leaseDurationSeconds": 40,
                             "renewTime": "2023-11-14T22:13:20.250000Z"}


class FakeEvents:
    """Records what the recorder sends (a unit-test stand-in for the API client)."""

    def __init__(self, missing_on_patch=False):
        self.calls = []
        self.missing_on_patch = missing_on_patch

    async def create(self, plural, obj, namespace):
        self.calls.append(("create", obj))
        return {**obj, "metadata": {**obj["metadata"], "resourceVersion": "1"}}

    async def patch(self, plural, name, body, namespace, type):
        self.calls.append(("patch", name, body, type))
        if self.missing_on_patch:
            raise StatusError(404, "NotFound", f'events "{name}" not found')
        return {"metadata": {"name": name, "namespace": namespace}, "count": body["count"],
                "firstTimestamp": "x"}


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "uid": "u"}}


def test_repeats_are_patched_and_similar_ones_combined():
    async def go():
        api = FakeEvents()
        rec = ev.EventRecorder(api, "kubelet", "box", clock=lambda: 1000.0)
        await rec.record(POD, "Normal", "Pulled", "same")
        await rec.record(POD, "Normal", "Pulled", "same")
        for i in range(10):
            await rec.record(POD, "Warning", "Failed", f"error {i}")
        return api.calls
    calls = asyncio.run(go())
    assert calls[0][0] == "create" and calls[1][0] == "patch"
    assert calls[1][2] == {"count": 2, "lastTimestamp": "1970-01-01T00:16:40Z", "message": "same"}
    assert calls[1][3] == "strategic"
    assert calls[-1][0] == "create"
    assert calls[-1][1]["message"] == "(combined from similar events): error 9"
    assert calls[-2][1]["message"] == "error 8"


def test_vanished_event_is_recreated_with_its_count():
    async def go():
        api = FakeEvents(missing_on_patch=True)
        rec = ev.EventRecorder(api, "kubelet", "box", clock=lambda: 5.0)
        await rec.record(POD, "Normal", "Started", "Started container app")
        await rec.record(POD, "Normal", "Started", "Started container app")
        return api.calls
    calls = asyncio.run(go())
    assert [c[0] for c in calls] == ["create", "patch", "create"]
    assert calls[2][1]["count"] == 2


def test_spam_filter_burst():
    async def go():
        api = FakeEvents()
        t = [0.0]
        rec = ev.EventRecorder(api, "kubelet", "box", clock=lambda: t[0])
        results = [await rec.record(POD, "Normal", f"R{i}", "m") for i in range(30)]
        t[0] += 300                                   # one token back after 5 minutes
        results.append(await rec.record(POD, "Normal", "Later", "m"))
        return results
    results = asyncio.run(go())
    assert sum(r is not None for r in results[:30]) == 25
    assert results[30] is not None
