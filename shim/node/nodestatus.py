"""The node's own API objects, kept by the node agent through the API client: the Node
(registration, labels, capacity/allocatable, addresses, nodeInfo, conditions,
daemonEndpoints) and its heartbeats — the coordination.k8s.io Lease in kube-node-lease,
renewed every 10 s, and the node status, posted when it changes and at least every
`status_report_interval` seconds (lastHeartbeatTime).

Host facts (cpu, /proc/meminfo, the data dir's filesystem, /etc/os-release, machine-id,
boot_id, kernel) are read by `host_facts()`; tests pass their own `HostFacts`.
Wording of conditions and reserved amounts follow pkg/kubelet/nodestatus/setters.go and
the kubelet's default eviction thresholds (memory.available<100Mi, nodefs.available<10%).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

from shim.api.errors import StatusError

log = logging.getLogger("shim.node.nodestatus")

KUBELET_VERSION = "v1.32.0"
KUBELET_PORT = 10250
NODE_LEASE_NAMESPACE = "kube-node-lease"
EVICTION_MEMORY = 100 * 1024 * 1024          # memory.available<100Mi
EVICTION_NODEFS_FRACTION = 0.10              # nodefs.available<10%

PRESSURE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available",
     "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
     "KubeletHasDiskPressure", "kubelet has disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available",
     "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
)
READY_MESSAGE = "kubelet is posting ready status"


def rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(t: float) -> str:
    """metav1.MicroTime as the apiserver writes it: 2024-01-01T00:00:00.000000Z."""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- host facts ----------------------------------------------------------------------------

@dataclass
class HostFacts:
    hostname: str
    cpus: int
    memory_kib: int
    fs_bytes: int
    internal_ip: str
    machine_id: str = ""
    system_uuid: str = ""
    boot_id: str = ""
    kernel_version: str = ""
    os_image: str = ""
    architecture: str = "amd64"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _meminfo_kib() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def primary_ip() -> str:
    """The address of the interface holding the default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def go_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x"}.get(m, m)


def host_facts(data_dir: str, node_ip: str | None = None) -> HostFacts:
    os.makedirs(data_dir, exist_ok=True)
    st = os.statvfs(data_dir)
    machine_id = _read("/etc/machine-id")
    return HostFacts(
        hostname=socket.gethostname().lower(), cpus=os.cpu_count() or 1,
        memory_kib=_meminfo_kib(), fs_bytes=st.f_blocks * st.f_frsize,
        internal_ip=node_ip or primary_ip(), machine_id=machine_id,
        system_uuid=_read("/sys/class/dmi/id/product_uuid").lower() or _uuid_of(machine_id),
        boot_id=_read("/proc/sys/kernel/random/boot_id"), kernel_version=platform.release(),
        os_image=_os_image(), architecture=go_arch())


def _uuid_of(hex32: str) -> str:
    h = (hex32 + "0" * 32)[:32]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# ---- the Node object -----------------------------------------------------------------------

def _bytes_quantity(n: int) -> str:
    """A BinarySI quantity the way the apiserver prints it: Ki when it divides, else bytes."""
    return f"{n // 1024}Ki" if n % 1024 == 0 else str(n)


def capacity(facts: HostFacts, max_pods: int) -> dict:
    return {"cpu": str(facts.cpus), "ephemeral-storage": _bytes_quantity(facts.fs_bytes),
            "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": f"{facts.memory_kib}Ki",
            "pods": str(max_pods)}


def allocatable(facts: HostFacts, max_pods: int) -> dict:
    """Capacity minus the default hard eviction thresholds (no kube/system reserved)."""
    mem = max(0, facts.memory_kib * 1024 - EVICTION_MEMORY)
    fs = int(facts.fs_bytes - facts.fs_bytes * EVICTION_NODEFS_FRACTION)
    return {"cpu": str(facts.cpus), "ephemeral-storage": str(fs), "hugepages-1Gi": "0",
            "hugepages-2Mi": "0", "memory": _bytes_quantity(mem), "pods": str(max_pods)}


@dataclass
class NodeConfig:
    name: str = ""                        # default: the lower-cased hostname
    runtime_version: str = "containerd://unknown"
    kubelet_version: str = KUBELET_VERSION
    kube_proxy_version: str = KUBELET_VERSION
    max_pods: int = 110
    labels: dict = field(default_factory=dict)         # extra labels (--node-labels)
    taints: list = field(default_factory=list)         # --register-with-taints
    lease_duration: int = 40
    lease_renew_interval: float = 10.0
    status_update_interval: float = 10.0
    status_report_interval: float = 60.0


class NodeStatus:
    """Builds and keeps this node's Node and Lease. `await ns.run()` registers and then
    heartbeats forever; the steps are public for the agent and for tests."""

    def __init__(self, client, config: NodeConfig, facts: HostFacts, *,
                 clock: Callable[[], float] = time.time,
                 runtime_error: Callable[[], str | None] = lambda: None):
        self.client = client
        self.config = config
        self.facts = facts
        self.name = config.name or facts.hostname
        self.clock = clock
        self.runtime_error = runtime_error   # why the node is not Ready (None: it is)
        self.node: dict | None = None         # last Node the server returned
        self.lease: dict | None = None
        self._last_report = 0.0

    # ---- building ----
    def labels(self) -> dict:
        arch = self.facts.architecture
        return {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "kubernetes.io/hostname": self.name,
                "kubernetes.io/os": "linux", **self.config.labels}

    def conditions(self, now: float, old: list[dict] | None = None) -> list[dict]:
        """The four kubelet conditions; lastTransitionTime kept while a status holds."""
        olds = {c.get("type"): c for c in old or []}
        ts = rfc3339(now)
        out = []
        for ctype, reason, message, _bad_reason, _bad_message in PRESSURE_CONDITIONS:
            out.append(_condition(ctype, "False", reason, message, ts, olds.get(ctype)))
        err = self.runtime_error()
        if err:
            out.append(_condition("Ready", "False", "KubeletNotReady", err, ts, olds.get("Ready")))
        else:
            out.append(_condition("Ready", "True", "KubeletReady", READY_MESSAGE, ts,
                                  olds.get("Ready")))
        return out

    def status(self, now: float, old: dict | None = None) -> dict:
        f, c = self.facts, self.config
        return {
            "capacity": capacity(f, c.max_pods),
            "allocatable": allocatable(f, c.max_pods),
            "conditions": self.conditions(now, (old or {}).get("conditions")),
            "addresses": [{"type": "InternalIP", "address": f.internal_ip},
                          {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
            "nodeInfo": {"machineID": f.machine_id, "systemUUID": f.system_uuid,
                         "bootID": f.boot_id, "kernelVersion": f.kernel_version,
                         "osImage": f.os_image, "containerRuntimeVersion": c.runtime_version,
                         "kubeletVersion": c.kubelet_version,
                         "kubeProxyVersion": c.kube_proxy_version,
                         "operatingSystem": "linux", "architecture": f.architecture},
        }

    def build_node(self, now: float | None = None) -> dict:
        now = self.clock() if now is None else now
        spec: dict = {}
        if self.config.taints:
            spec["taints"] = list(self.config.taints)
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": self.labels(), "annotations": {
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                "spec": spec, "status": self.status(now)}

    def build_lease(self, now: float) -> dict:
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.name, "namespace": NODE_LEASE_NAMESPACE},
                 "spec": {"holderIdentity": self.name,
                          "leaseDurationSeconds": self.config.lease_duration,
                          "renewTime": micro_time(now)}}
        if self.node and self.node["metadata"].get("uid"):
            lease["metadata"]["ownerReferences"] = [{
                "apiVersion": "v1", "kind": "Node", "name": self.name,
                "uid": self.node["metadata"]["uid"]}]
        return lease

    # ---- API steps ----
    async def register(self) -> dict:
        """Create the Node, or adopt the existing one (labels reconciled, status refreshed)."""
        node = self.build_node()
        try:
            self.node = await self.client.create("nodes", node)
        except StatusError as e:
            if e.code != 409:
                raise
            cur = await self.client.get("nodes", self.name)
            want = {k: v for k, v in self.labels().items()
                    if (cur["metadata"].get("labels") or {}).get(k) != v}
            if want:
                cur = await self.client.patch("nodes", self.name, {"metadata": {"labels": want}})
            self.node = cur
            await self.update_status(force=True)
        self._last_report = self.clock()
        return self.node

    async def renew_lease(self) -> dict:
        """Create or renew kube-node-lease/<node> (renewTime = now)."""
        now = self.clock()
        if self.lease is None:
            try:
                self.lease = await self.client.create("leases", self.build_lease(now),
                                                      NODE_LEASE_NAMESPACE,
                                                      group="coordination.k8s.io")
                return self.lease
            except StatusError as e:
                if e.code != 409:
                    raise
        self.lease = await self.client.patch(
            "leases", self.name, {"spec": {"holderIdentity": self.name,
                                           "leaseDurationSeconds": self.config.lease_duration,
                                           "renewTime": micro_time(now)}},
            NODE_LEASE_NAMESPACE, group="coordination.k8s.io")
        return self.lease

    async def update_status(self, force: bool = False) -> dict | None:
        """Post the node status when it changed or the report interval passed."""
        now = self.clock()
        cur = await self.client.get("nodes", self.name)
        old = cur.get("status") or {}
        new = self.status(now, old)
        changed = _material(new) != _material(old)
        if not (force or changed or now - self._last_report >= self.config.status_report_interval):
            self.node = cur
            return None
        self.node = await self.client.patch("nodes", self.name, {"status": new},
                                            subresource="status", type="strategic")
        self._last_report = now
        return self.node

    async def run(self) -> None:
        """Register (retrying until the API answers), then heartbeat forever."""
        delay = 0.2
        while True:
            try:
                await self.register()
                break
            except (StatusError, ConnectionError) as e:
                log.warning("registering node %s: %s", self.name, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 7.0)
        await asyncio.gather(self._loop(self.renew_lease, self.config.lease_renew_interval),
                             self._loop(self.update_status, self.config.status_update_interval))

    async def _loop(self, step, interval: float) -> None:
        while True:
            try:
                await step()
            except StatusError as e:
                if e.code == 404 and step == self.update_status:
                    await self.register()        # the Node was deleted: register again
                else:
                    log.warning("node %s heartbeat: %s", self.name, e.message)
            except ConnectionError as e:
                log.warning("node %s heartbeat: %s", self.name, e)
            await asyncio.sleep(interval)


def _condition(ctype, status, reason, message, ts, old) -> dict:
    transition = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {"type": ctype, "status": status, "lastHeartbeatTime": ts,
            "lastTransitionTime": transition or ts, "reason": reason, "message": message}


def _material(status: dict) -> dict:
    """A status without heartbeat times (what makes an update necessary)."""
    out = dict(status)
    out["conditions"] = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
                         for c in status.get("conditions") or []]
    return {k: out.get(k) for k in ("capacity", "allocatable", "conditions", "addresses",
                                    "nodeInfo", "daemonEndpoints")}
