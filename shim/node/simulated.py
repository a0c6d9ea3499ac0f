"""Simulated nodes (KWOK-like): `kubeshim server --simulated-nodes N`.

Owns N extra Node objects named `kubeshim-sim-0` .. `kubeshim-sim-<N-1>` (labels `type=kwok`,
`kubeshim.dev/simulated=true`, kubernetes.io/hostname; 32 CPUs, 256Gi memory, 110 pods; Ready,
heartbeats and Lease renewals through shim/node/nodestatus.py) and the lifecycle of the pods
bound to them — without any container:

- a bound pod "pulls" instantly and runs: Pulled / Created / Started events, init containers
  completed, app containers running (containerID `simulated://<hash>`, an imageID), a podIP
  from the node's own simulated /24 (the (200+i)-th /24 of the cluster CIDR, never the real
  node's bridge), the Ready conditions — the same status the real agent computes
  (shim/node/podstatus.py);
- annotation `kubeshim.dev/simulate-exit-code: "N"` makes the app containers exit with code
  N (after `kubeshim.dev/simulate-exit-after: "SECONDS"`, default 0): with restartPolicy Never
  (or OnFailure and N=0) the pod ends Succeeded/Completed or Failed/Error; a container the
  kubelet would restart is shown in CrashLoopBackOff (restarts are not simulated further);
- graceful deletion: Killing events, the pod stays Terminating until its deletionTimestamp,
  then the delete is finished (gracePeriodSeconds=0, uid precondition); grace 0 at once.

Cheap by the thousand: one pod reflector, one reconcile loop over every simulated node (a
dirty set plus a timer heap for exits and grace deadlines, no task per pod), status patches
written in concurrent batches. It is an API client (shim/client.py); it never touches the store.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import heapq
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Callable

from shim.api.errors import StatusError
from shim.node import images as refs
from shim.node import podstatus
from shim.node.events import NORMAL, EventRecorder, container_field_path
from shim.node.nodestatus import HostFacts, NodeConfig, NodeStatus

log = logging.getLogger("shim.node.simulated")

NODE_PREFIX = "kubeshim-sim-"
ANNOTATION_EXIT_CODE = "kubeshim.dev/simulate-exit-code"
ANNOTATION_EXIT_AFTER = "kubeshim.dev/simulate-exit-after"
RUNTIME = "simulated"
SUBNET_OFFSET = 200                     # node i gets the (200+i)-th /24 of the cluster CIDR
SIM_CPUS = 32
SIM_MEMORY_KIB = 256 * 1024 * 1024      # 256Gi
SIM_DISK_BYTES = 1 << 40                # 1Ti
MAX_PODS = 110
WRITE_CONCURRENCY = 32


# ---- pure helpers ------------------------------------------------------------------------

def node_names(n: int) -> list[str]:
    return [f"{NODE_PREFIX}{i}" for i in range(n)]


def node_subnet(cluster_cidr: str, index: int) -> str:
    """The simulated pod CIDR of node `index`: 10.42.200.0/24, 10.42.201.0/24, ... for the
    default cluster CIDR. ValueError when the cluster CIDR has no room for it."""
    net = ipaddress.ip_network(cluster_cidr, strict=False)
    if net.prefixlen > 24:
        raise ValueError(f"cluster CIDR {cluster_cidr} is too small for simulated nodes")
    size = 1 << (net.max_prefixlen - 24)
    sub = ipaddress.ip_network((int(net.network_address) + (SUBNET_OFFSET + index) * size, 24))
    if not sub.subnet_of(net):
        raise ValueError(f"cluster CIDR {cluster_cidr} has no room for simulated node {index}")
    return str(sub)


def node_facts(name: str, subnet: str) -> HostFacts:
    """A realistic, fixed machine; its InternalIP is the .1 of its simulated subnet."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    uuid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
    ip = str(next(ipaddress.ip_network(subnet).hosts()))
    return HostFacts(hostname=name, cpus=SIM_CPUS, memory_kib=SIM_MEMORY_KIB,
                     fs_bytes=SIM_DISK_BYTES, internal_ip=ip, machine_id=digest[32:64],
                     system_uuid=uuid, boot_id=uuid, kernel_version="6.1.0-simulated",
                     os_image="kubeshim simulated node", architecture="amd64")


def node_config(name: str) -> NodeConfig:
    import shim
    return NodeConfig(name=name, runtime_version=f"{RUNTIME}://{shim.__version__}",
                      max_pods=MAX_PODS,
                      labels={"type": "kwok", "kubeshim.dev/simulated": "true"})


def container_id(uid: str, name: str) -> str:
    return hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()


def image_refs(image: str) -> tuple[str, str]:
    """(the normalized reference, a stable digested imageID) for a spec image."""
    try:
        ref = refs.parse(image)
        name, repo = str(ref), ref.repository
    except ValueError:
        name = repo = image
    return name, f"{repo}@sha256:{hashlib.sha256(name.encode()).hexdigest()}"


def parse_time(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return _dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def exit_plan(pod: dict) -> tuple[int, float] | None:
    """(exit code, seconds of running before the exit) from the pod's annotations, or None."""
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    raw = ann.get(ANNOTATION_EXIT_CODE)
    if raw is None:
        return None
    try:
        code = int(raw)
    except ValueError:
        return None
    try:
        after = max(0.0, float(ann.get(ANNOTATION_EXIT_AFTER) or 0))
    except ValueError:
        after = 0.0
    return code, after


def adopted_start(pod: dict) -> float | None:
    """When a pod this module already ran started (from its status), None if never run."""
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        if not (st.get("containerID") or "").startswith(RUNTIME + "://"):
            continue
        for state in ("running", "terminated"):
            t = parse_time(((st.get("state") or {}).get(state) or {}).get("startedAt"))
            if t is not None:
                return t
        t = parse_time((((st.get("lastState") or {}).get("terminated")) or {}).get("startedAt"))
        if t is not None:
            return t
    return None


def pod_runtime(pod: dict, *, started: float, now: float, pod_ip: str = "") -> podstatus.PodRuntime:
    """What a container runtime would report for a simulated pod at `now`."""
    spec = pod.get("spec") or {}
    uid = (pod.get("metadata") or {}).get("uid", "")
    plan = exit_plan(pod)
    containers: list[podstatus.RuntimeContainer] = []
    for c in spec.get("initContainers") or []:
        image, image_id = image_refs(c.get("image", ""))
        sidecar = podstatus.is_sidecar(c)
        containers.append(podstatus.RuntimeContainer(
            name=c["name"], state="running" if sidecar else "exited",
            id=container_id(uid, c["name"]), image=image, image_id=image_id,
            created_at=started, started_at=started, finished_at=None if sidecar else started,
            exit_code=0, runtime=RUNTIME))
    reasons: dict[str, tuple[str, str]] = {}
    for c in spec.get("containers") or []:
        image, image_id = image_refs(c.get("image", ""))
        rc = podstatus.RuntimeContainer(
            name=c["name"], state="running", id=container_id(uid, c["name"]), image=image,
            image_id=image_id, created_at=started, started_at=started, runtime=RUNTIME)
        if plan is not None and now >= started + plan[1]:
            rc.state, rc.exit_code, rc.finished_at = "exited", plan[0], started + plan[1]
        containers.append(rc)
    rt = podstatus.PodRuntime(containers=containers, sandbox_ready=True,
                              pod_ips=[pod_ip] if pod_ip else [])
    for c in spec.get("containers") or []:
        rc = rt.latest(c["name"])
        if rc.state == "exited" and podstatus.should_restart(c, pod, rt):
            reasons[c["name"]] = (podstatus.CRASH_LOOP_BACK_OFF, podstatus.crash_loop_message(
                podstatus.BACKOFF_INITIAL, c["name"], pod))
    rt.reasons = reasons
    return rt


class IPPool:
    """Pod IPs of one simulated node's /24 (the .1 is the node's own address)."""

    def __init__(self, subnet: str):
        hosts = list(ipaddress.ip_network(subnet).hosts())[1:]
        self._free = [str(h) for h in reversed(hosts)]
        self._by_key: dict[str, str] = {}

    def allocate(self, key: str) -> str:
        """The key's IP (the same one on every call); "" when the subnet is exhausted."""
        if key in self._by_key:
            return self._by_key[key]
        if not self._free:
            return ""
        ip = self._free.pop()
        self._by_key[key] = ip
        return ip

    def claim(self, key: str, ip: str) -> bool:
        """Adopt an IP a pod already has (after a restart); False if it is not ours or taken."""
        if key in self._by_key:
            return self._by_key[key] == ip
        if ip not in self._free:
            return False
        self._free.remove(ip)
        self._by_key[key] = ip
        return True

    def release(self, key: str) -> None:
        ip = self._by_key.pop(key, None)
        if ip:
            self._free.append(ip)

    def __len__(self) -> int:
        return len(self._by_key)


# ---- the simulator -----------------------------------------------------------------------

@dataclass
class SimNode:
    name: str
    subnet: str
    status: NodeStatus
    pool: IPPool
    recorder: EventRecorder


@dataclass
class SimPod:
    uid: str
    node: str
    pod: dict
    started: float | None = None
    ip: str = ""
    killing: bool = False
    deleting: bool = False
    last_posted: dict | None = None


class Simulator:
    """`await Simulator(client, n, cluster_cidr).run()` registers the nodes and simulates
    their pods until cancelled. `nodes` maps node name → SimNode, `pods` uid → SimPod."""

    def __init__(self, client, n: int, cluster_cidr: str = "10.42.0.0/16", *,
                 clock: Callable[[], float] = time.time,
                 status_update_interval: float = 10.0):
        self.client = client
        self.clock = clock
        self.nodes: dict[str, SimNode] = {}
        for i, name in enumerate(node_names(n)):
            subnet = node_subnet(cluster_cidr, i)
            cfg = node_config(name)
            cfg.status_update_interval = status_update_interval
            ns = NodeStatus(client, cfg, node_facts(name, subnet), clock=clock)
            self.nodes[name] = SimNode(name, subnet, ns, IPPool(subnet),
                                       EventRecorder(client, "kubelet", name, clock=clock))
        self.pods: dict[str, SimPod] = {}
        self._dirty: set[str] = set()
        self._timers: list[tuple[float, str]] = []
        self._timer_at: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._sem = asyncio.Semaphore(WRITE_CONCURRENCY)

    # ---- running ----
    async def run(self) -> None:
        from shim.client import run_reflector
        tasks = []
        for node in self.nodes.values():
            tasks.append(asyncio.create_task(node.status.run(), name=f"sim-node-{node.name}"))
            tasks.append(asyncio.create_task(self._pod_cidr(node), name=f"sim-cidr-{node.name}"))
        tasks.append(asyncio.create_task(run_reflector(self.client.reflector("pods"),
                                                       self.on_event), name="sim-pods"))
        tasks.append(asyncio.create_task(self._loop(), name="sim-reconcile"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pod_cidr(self, node: SimNode) -> None:
        while node.status.node is None:
            await asyncio.sleep(0.1)
        if (node.status.node.get("spec") or {}).get("podCIDR"):
            return
        try:
            await self.client.patch("nodes", node.name,
                                    {"spec": {"podCIDR": node.subnet, "podCIDRs": [node.subnet]}})
        except (StatusError, ConnectionError) as e:
            log.warning("setting podCIDR of node %s: %s", node.name, e)

    def on_event(self, ev) -> None:
        """A pod watch event: track pods bound to a simulated node and mark them dirty."""
        pod = ev.object
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        node = (pod.get("spec") or {}).get("nodeName", "")
        if ev.type == "DELETED" or node not in self.nodes:
            sp = self.pods.pop(uid, None)
            self._timer_at.pop(uid, None)
            if sp is not None:
                self.nodes[sp.node].pool.release(uid)
            return
        sp = self.pods.get(uid)
        if sp is None:
            sp = self.pods[uid] = SimPod(uid, node, pod)
            if adopted_start(pod) is not None:      # ours before a restart: keep its IP now,
                self._start(sp, self.nodes[node], self.clock())   # before new pods ask
        elif int(_rv(pod) or 0) >= int(_rv(sp.pod) or 0):
            sp.pod = pod
        self.mark(uid)

    def mark(self, uid: str, at: float | None = None) -> None:
        if at is None:
            self._dirty.add(uid)
            self._wake.set()
        elif self._timer_at.get(uid) != at:         # one timer per pod and deadline
            self._timer_at[uid] = at
            heapq.heappush(self._timers, (at, uid))
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - self.clock())
            if not self._dirty:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
            self._wake.clear()
            await self.reconcile_once()

    async def reconcile_once(self) -> None:
        """Sync every dirty pod and every pod whose timer is due, writes in parallel."""
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            at, uid = heapq.heappop(self._timers)
            if self._timer_at.get(uid) == at:
                del self._timer_at[uid]
            self._dirty.add(uid)
        batch, self._dirty = self._dirty, set()
        if batch:
            await asyncio.gather(*(self._guarded(uid) for uid in batch))

    async def _guarded(self, uid: str) -> None:
        async with self._sem:
            try:
                await self.sync(uid)
            except (StatusError, ConnectionError) as e:
                log.warning("simulated pod %s: %s", uid, e)
                self.mark(uid, self.clock() + 1.0)
            except Exception:
                log.exception("simulated pod %s", uid)

    # ---- one pod ----
    async def sync(self, uid: str) -> None:
        sp = self.pods.get(uid)
        if sp is None or sp.deleting:
            return
        node = self.nodes[sp.node]
        meta = sp.pod.get("metadata") or {}
        now = self.clock()
        if meta.get("deletionTimestamp"):
            await self._terminate(sp, node, now)
            return
        if sp.started is None:
            self._start(sp, node, now)
        plan = exit_plan(sp.pod)
        if plan is not None and now < sp.started + plan[1]:
            self.mark(uid, sp.started + plan[1])
        await self._post_status(sp, node, now)

    def _start(self, sp: SimPod, node: SimNode, now: float) -> None:
        pod = sp.pod
        spec = pod.get("spec") or {}
        adopted = adopted_start(pod)
        if not spec.get("hostNetwork"):
            old_ip = (pod.get("status") or {}).get("podIP") or ""
            if not (adopted is not None and old_ip and node.pool.claim(sp.uid, old_ip)):
                sp.ip = node.pool.allocate(sp.uid)
            else:
                sp.ip = old_ip
        sp.started = adopted if adopted is not None else now
        if adopted is not None:
            return
        for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
            fp = container_field_path(pod, c["name"])
            node.recorder.emit(pod, NORMAL, "Pulled",
                               f'Container image "{c.get("image", "")}" already present on machine',
                               field_path=fp)
            node.recorder.emit(pod, NORMAL, "Created", f"Created container {c['name']}",
                               field_path=fp)
            node.recorder.emit(pod, NORMAL, "Started", f"Started container {c['name']}",
                               field_path=fp)

    def status_of(self, sp: SimPod, node: SimNode, now: float) -> dict:
        rt = pod_runtime(sp.pod, started=sp.started, now=now, pod_ip=sp.ip)
        return podstatus.generate_pod_status(sp.pod, rt, host_ips=[node.status.facts.internal_ip],
                                             now=now)

    async def _post_status(self, sp: SimPod, node: SimNode, now: float) -> None:
        old = sp.pod.get("status") or {}
        if old.get("phase") in podstatus.TERMINAL:
            return
        new = self.status_of(sp, node, now)
        if new == old or new == sp.last_posted:
            return
        patch = dict(new)
        for k in old:
            if k not in new:
                patch[k] = None
        meta = sp.pod["metadata"]
        try:
            pod = await self.client.patch("pods", meta["name"], {"status": patch},
                                          meta.get("namespace"), subresource="status", type="merge")
        except StatusError as e:
            if e.code == 404:
                return
            raise
        sp.last_posted = new
        if int(_rv(pod) or 0) >= int(_rv(sp.pod) or 0):
            sp.pod = pod

    async def _terminate(self, sp: SimPod, node: SimNode, now: float) -> None:
        meta = sp.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        deadline = parse_time(meta.get("deletionTimestamp")) or now
        if not sp.killing and sp.started is not None:
            sp.killing = True
            phase = (sp.pod.get("status") or {}).get("phase")
            if phase not in podstatus.TERMINAL:
                for c in (sp.pod.get("spec") or {}).get("containers") or []:
                    node.recorder.emit(sp.pod, NORMAL, "Killing", f"Stopping container {c['name']}",
                                       field_path=container_field_path(sp.pod, c["name"]))
        terminal = (sp.pod.get("status") or {}).get("phase") in podstatus.TERMINAL
        if grace and now < deadline and not terminal:
            self.mark(sp.uid, deadline)
            return
        sp.deleting = True
        try:
            await self.client.delete("pods", meta["name"], meta.get("namespace"),
                                     grace_period_seconds=0, preconditions={"uid": sp.uid})
        except StatusError as e:
            if e.code not in (404, 409):
                sp.deleting = False
                raise


def _rv(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")


# ---- wiring into `kubeshim server` -------------------------------------------------------

async def run_simulated(server) -> None:
    """Run `--simulated-nodes N` beside the API server (a task of `Server.run`)."""
    from shim.client import Client
    s = server.settings
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        await Simulator(client, s.simulated_nodes, s.cluster_cidr).run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("simulated nodes stopped")
    finally:
        await client.close()
