"""Pod benchmark: create -> Running latency through kubeshim beside the same container started
directly through containerd, kubeshim's RSS with 0 and 100 running pods, pods/s to Running,
and the same create -> Running numbers for 1000 pods on simulated nodes.

Run: sudo .venv/bin/python bench/pods.py   (root: containerd, runc and CNI need it)

Method
- The busybox test image (tests/node/images.py) is built and dropped into <data>/images, so
  the node imports it at start: every measurement has the image present.
- Real node: one `kubeshim server` with its node agent and managed containerd.
  * direct: the benchmark's own containerd client (shim/node/containerd/client.py) creates
    the container (snapshot + record) and starts its task — `sleep 1000`, no API, no
    sandbox. 1 container x 5 sequential runs, then 30 at once.
  * kubeshim: POST a pod (image present, imagePullPolicy Never, `sleep 1000`) and time until
    the pod watch shows phase Running. 1 pod x 5 sequential runs, then 30 at once.
  * RSS of the kubeshim process (VmRSS; containerd and shims are separate processes) before
    any pod and with 100 pods Running; pods/s = 100 / (first POST -> last Running).
- Simulated: a second `kubeshim server --no-node --simulated-nodes 10`; 1000 pods POSTed
  with 32 requests in flight, create -> Running per pod from the watch.
Targets (issue 4): p50 <= 1.3x direct, p99 (30 pods) <= 2x direct, >= 20 pods/s,
RSS with 100 pods <= 150 MB. This is a report, never an assertion.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.conftest import ServerProcess  # noqa: E402
from tests.node.images import build_archive  # noqa: E402

from shim.api.errors import StatusError  # noqa: E402
from shim.client import Client  # noqa: E402
from shim.node import oci  # noqa: E402
from shim.node.containerd.managed import ManagedContainerd  # noqa: E402

IMAGE = "docker.io/library/busybox:test"
DIRECT_CGROUP = "/kubeshim-bench"
NS = "bench"


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                "command": ["sleep", "1000"]}]}}


class Watcher:
    """Records when each pod of the namespace is first seen Running (monotonic clock)."""

    def __init__(self, client: Client, namespace: str):
        self.client = client
        self.namespace = namespace
        self.running: dict[str, float] = {}
        self.bound: dict[str, float] = {}          # first seen with spec.nodeName
        self.changed = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.sched_lat: list[float] = []
        self.post_span = 0.0                     # seconds the last batch of POSTs took

    async def start(self) -> None:
        refl = self.client.reflector("pods", self.namespace)

        async def go():
            async for ev in refl:
                p = ev.object
                if ev.type != "DELETED" and (p.get("spec") or {}).get("nodeName"):
                    self.bound.setdefault(p["metadata"]["name"], time.monotonic())
                if ev.type != "DELETED" and (p.get("status") or {}).get("phase") == "Running":
                    self.running.setdefault(p["metadata"]["name"], time.monotonic())
                    self.changed.set()
        self.task = asyncio.create_task(go())
        await refl.synced.wait()

    async def wait(self, names: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not all(n in self.running for n in names):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass
        return True

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def ensure_namespace(c: Client, name: str) -> None:
    try:
        await c.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name}})
    except StatusError as e:
        if e.code != 409:
            raise
    for _ in range(500):
        try:
            await c.get("serviceaccounts", "default", name)
            return
        except StatusError:
            await asyncio.sleep(0.02)


async def create_pods(c: Client, w: Watcher, names: list[str], timeout: float,
                      in_flight: int = 32) -> tuple[list[float], float]:
    """POST the pods, wait until Running -> (per-pod latencies, seconds first POST -> last Running)."""
    sem = asyncio.Semaphore(in_flight)
    sent: dict[str, float] = {}

    async def one(n: str):
        async with sem:
            sent[n] = time.monotonic()
            await c.create("pods", pod(n), NS)
    t0 = time.monotonic()
    await asyncio.gather(*(one(n) for n in names))
    w.post_span = time.monotonic() - t0
    if not await w.wait(names, timeout):
        missing = [n for n in names if n not in w.running]
        print(f"  ! {len(missing)} of {len(names)} pods not Running within {timeout:.0f}s",
              flush=True)
    done = [n for n in names if n in w.running]
    lat = [w.running[n] - sent[n] for n in done]
    last = max((w.running[n] for n in done), default=time.monotonic())
    w.sched_lat = [w.bound[n] - sent[n] for n in done if n in w.bound]
    return lat, last - t0


async def delete_pods(c: Client, names: list[str]) -> None:
    sem = asyncio.Semaphore(32)

    async def one(n):
        async with sem:
            try:
                await c.delete("pods", n, NS, grace_period_seconds=0)
            except StatusError:
                pass
    await asyncio.gather(*(one(n) for n in names))


# ---- direct containerd -------------------------------------------------------------------

async def direct_start(cd, cid: str) -> float:
    spec = oci.build_spec(["sleep", "1000"], cgroups_path=f"{DIRECT_CGROUP}/{cid}", hostname=cid)
    t0 = time.monotonic()
    await cd.create_container(cid, IMAGE, spec)
    await cd.start_task(cid)
    return time.monotonic() - t0


async def direct_cleanup(cd, ids: list[str]) -> None:
    for cid in ids:
        try:
            await cd.delete(cid)
        except Exception as e:
            print(f"  ! direct clean-up of {cid}: {e}")
        oci.remove_cgroup(f"{DIRECT_CGROUP}/{cid}")


async def direct_runs(data_dir: str, singles: int, batch: int) -> tuple[list[float], list[float]]:
    cd = ManagedContainerd(data_dir).client()
    try:
        one: list[float] = []
        for _ in range(singles):
            cid = f"bench-{uuid.uuid4().hex[:8]}"
            one.append(await direct_start(cd, cid))
            await direct_cleanup(cd, [cid])
        ids = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(batch)]
        many = list(await asyncio.gather(*(direct_start(cd, i) for i in ids)))
        await direct_cleanup(cd, ids)
        return one, many
    finally:
        await cd.close()


# ---- the runs ----------------------------------------------------------------------------

async def real_node(srv: ServerProcess, args) -> dict:
    out: dict = {}
    async with Client.from_kubeconfig(srv.kubeconfig) as c:
        # the node is registered and Ready (the image was imported before it registers)
        for _ in range(600):
            try:
                nodes = (await c.list("nodes")).get("items") or []
                if any(cond.get("type") == "Ready" and cond.get("status") == "True"
                       for n in nodes for cond in (n.get("status") or {}).get("conditions") or []):
                    break
            except (StatusError, ConnectionError):
                pass
            await asyncio.sleep(0.1)
        await ensure_namespace(c, NS)
        await asyncio.sleep(1.0)
        out["rss0"] = rss_mb(srv.proc.pid)
        out["direct1"], out["direct30"] = await direct_runs(srv.data_dir, args.singles, 30)
        w = Watcher(c, NS)
        await w.start()
        try:
            one = []
            for i in range(args.singles):
                lat, _ = await create_pods(c, w, [f"one-{i}"], 60)
                one += lat
                await delete_pods(c, [f"one-{i}"])
            out["pod1"] = one
            names = [f"b30-{i}" for i in range(30)]
            out["pod30"], _ = await create_pods(c, w, names, 90)
            await delete_pods(c, names)
            await asyncio.sleep(2.0)
            names = [f"c100-{i}" for i in range(args.many)]
            lat, span = await create_pods(c, w, names, 120)
            out["pods_per_s"] = len(lat) / span if span > 0 else 0.0
            out["rss100"] = rss_mb(srv.proc.pid)
            out["n100"] = len(lat)
            await delete_pods(c, names)
        finally:
            await w.stop()
        for _ in range(300):       # let the agent clean up before the server stops
            if not (await c.list("pods", NS)).get("items"):
                break
            await asyncio.sleep(0.2)
    return out


async def simulated(srv: ServerProcess, n: int) -> dict:
    async with Client.from_kubeconfig(srv.kubeconfig) as c:
        for _ in range(300):
            nodes = (await c.list("nodes")).get("items") or []
            if len(nodes) >= 10:
                break
            await asyncio.sleep(0.1)
        await ensure_namespace(c, NS)
        w = Watcher(c, NS)
        await w.start()
        try:
            lat, span = await create_pods(c, w, [f"s-{i}" for i in range(n)], 150)
        finally:
            await w.stop()
    return {"lat": lat, "sched": w.sched_lat, "post_span": w.post_span, "pods_per_s": len(lat) / span if span > 0 else 0.0, "n": len(lat),
            "rss": rss_mb(srv.proc.pid)}


def ms(v: float) -> str:
    return f"{v * 1000:.0f} ms"


def row(name: str, value: str, target: str, ok: bool | None) -> str:
    verdict = "" if ok is None else ("PASS" if ok else "MISS")
    return f"{name:<46} {value:>12}  {target:<22} {verdict}"


def report(real: dict, sim: dict | None) -> None:
    d1, d30 = statistics.median(real["direct1"]), pct(real["direct30"], 99)
    p1 = statistics.median(real["pod1"]) if real["pod1"] else float("nan")
    p30_50 = statistics.median(real["pod30"]) if real["pod30"] else float("nan")
    p30_99 = pct(real["pod30"], 99) if real["pod30"] else float("nan")
    lines = [row("metric", "value", "target", None), "-" * 88,
             row("direct containerd start, 1 (p50)", ms(d1), "", None),
             row("direct containerd start, 30 at once (p50)",
                 ms(statistics.median(real["direct30"])), "", None),
             row("direct containerd start, 30 at once (p99)", ms(d30), "", None),
             row("kubeshim create->Running, 1 pod (p50)", ms(p1), f"<= 1.3x direct ({ms(1.3 * d1)})",
                 p1 <= 1.3 * d1),
             row("kubeshim create->Running, 1 pod (p99)", ms(pct(real["pod1"], 99)), "", None),
             row("kubeshim create->Running, 30 pods (p50)", ms(p30_50), "", None),
             row("kubeshim create->Running, 30 pods (p99)", ms(p30_99),
                 f"<= 2x direct ({ms(2 * d30)})", p30_99 <= 2 * d30),
             row(f"pods/s to Running ({real['n100']} pods)", f"{real['pods_per_s']:.1f}", ">= 20",
                 real["pods_per_s"] >= 20),
             row("kubeshim RSS, 0 pods", f"{real['rss0']:.0f} MB", "", None),
             row(f"kubeshim RSS, {real['n100']} pods Running", f"{real['rss100']:.0f} MB",
                 "<= 150 MB", real["rss100"] <= 150)]
    if sim:
        lat = sim["lat"] or [float("nan")]
        lines += [row(f"simulated create->Running, {sim['n']} pods (p50)",
                      ms(statistics.median(lat)), "", None),
                  row(f"simulated create->Running, {sim['n']} pods (p99)", ms(pct(lat, 99)), "",
                      None),
                  row(f"simulated create->bound, {sim['n']} pods (p50)",
                      ms(statistics.median(sim["sched"] or [float("nan")])), "", None),
                  row(f"simulated: POSTing the {sim['n']} pods took", f"{sim['post_span']:.1f} s",
                      "", None),
                  row("simulated pods/s to Running", f"{sim['pods_per_s']:.1f}", "", None),
                  row(f"kubeshim RSS, {sim['n']} simulated pods", f"{sim['rss']:.0f} MB", "",
                      None)]
    print("\n".join(lines), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--singles", type=int, default=5, help="sequential single-pod runs")
    p.add_argument("--many", type=int, default=100, help="pods for RSS and pods/s")
    p.add_argument("--simulated", type=int, default=1000, help="pods on simulated nodes (0: skip)")
    args = p.parse_args()
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="kbp-", dir="/tmp")       # short: unix socket paths
    real: dict = {}
    sim = None
    try:
        data = os.path.join(tmp, "real")
        os.makedirs(os.path.join(data, "images"))
        build_archive(os.path.join(data, "images", "busybox.tar"), IMAGE)
        third = 150 + os.getpid() % 50
        srv = ServerProcess(data, node=True, extra_args=[
            "--pod-cidr", f"10.42.{third}.0/24", "--cni-bridge", f"kbp{third}",
            "--node-name", "bench-node"])
        srv.start(timeout=60)
        try:
            real = asyncio.run(real_node(srv, args))
        finally:
            srv.stop()
            _stop_containerd(data)
            subprocess.run(["ip", "link", "delete", f"kbp{third}"], capture_output=True)
        print(f"real node done in {time.monotonic() - t_start:.0f}s", flush=True)
        if args.simulated:
            sdata = os.path.join(tmp, "sim")
            ssrv = ServerProcess(sdata, extra_args=["--simulated-nodes", "10"])
            ssrv.start(timeout=60)
            try:
                sim = asyncio.run(simulated(ssrv, args.simulated))
            finally:
                ssrv.stop()
        print(f"\npods benchmark ({time.monotonic() - t_start:.0f}s)")
        report(real, sim)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _stop_containerd(data_dir: str) -> None:
    """The managed containerd outlives `kubeshim server` by design; stop the bench's one."""
    m = ManagedContainerd(data_dir)

    async def wipe():
        async with m.client() as cd:
            for info in await cd.list_containers():
                await cd.delete(info.id)
    try:
        m.start()            # reuses the running instance (reads its pid)
        asyncio.run(wipe())
    except Exception as e:
        print(f"  ! containerd clean-up: {e}")
    m.stop()


if __name__ == "__main__":
    sys.exit(main())
