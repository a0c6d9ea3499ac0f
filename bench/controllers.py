"""Controller benchmark: scaling a ReplicationController 0 -> 100 -> 0 beside creating and
deleting the same 100 pods directly through the API, in one run.

Run: .venv/bin/python bench/controllers.py [--pods 100] [--rounds 3]

Method
- One `kubeshim server --no-node` on a fresh data dir (pods stay Pending; unscheduled pods
  are removed at once on delete, so both paths measure API + controller work only).
- Direct path: the benchmark process (aiohttp, admin client certificate) POSTs the 100 pods
  from the RC's template with 16 requests in flight, then DELETEs them the same way.
- RC path: PATCH the RC's scale subresource to 100 and poll the RC until status.replicas is
  100 and the pods exist, then scale to 0 and poll until status.replicas is 0 and no pod is
  left. The in-server controllers (kopf + the replication controller) do the work.
- Rounds alternate the two paths in a fresh namespace each; medians are reported.
Target: RC path <= 1.5x the direct path. The variant with real containers (node agent on
containerd) is not measured yet: the node agent does not run pods in this version.
This is a report, never an assertion: exit status is 0 whenever the run completed.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.conftest import ServerProcess  # noqa: E402

from shim.controllers.runtime import Api, ApiError, connection_from_kubeconfig  # noqa: E402

TEMPLATE = {"metadata": {"labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "main", "image": "nginx"}]}}
TARGET = 1.5


async def ensure_ns(api: Api, ns: str) -> None:
    await api.create("namespaces", None, {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": ns}})
    for _ in range(200):       # the service account the pods need
        try:
            await api.get("serviceaccounts", ns, "default")
            return
        except ApiError:
            await asyncio.sleep(0.01)


async def direct(api: Api, ns: str, n: int) -> float:
    sem = asyncio.Semaphore(16)

    async def create(i):
        async with sem:
            await api.create("pods", ns, {"apiVersion": "v1", "kind": "Pod",
                                          "metadata": {"name": f"d-{i}", **TEMPLATE["metadata"]},
                                          "spec": TEMPLATE["spec"]})

    async def delete(i):
        async with sem:
            await api.delete("pods", ns, f"d-{i}")
    t0 = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(n)))
    await asyncio.gather(*(delete(i) for i in range(n)))
    return time.perf_counter() - t0


async def rc_path(api: Api, ns: str, n: int) -> float:
    await api.create("replicationcontrollers", ns, {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "bench"},
        "spec": {"replicas": 0, "selector": {"app": "bench"}, "template": TEMPLATE}})
    await asyncio.sleep(0.2)

    async def scale_and_wait(replicas: int) -> None:
        await api.patch("replicationcontrollers", ns, "bench", {"spec": {"replicas": replicas}},
                        sub="scale")
        while True:
            rc = await api.get("replicationcontrollers", ns, "bench")
            if rc.get("status", {}).get("replicas") == replicas:
                pods = await api.list("pods", ns)
                if len(pods["items"]) == replicas:
                    return
            await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    await scale_and_wait(n)
    await scale_and_wait(0)
    return time.perf_counter() - t0


async def main_async(args) -> None:
    tmp = tempfile.mkdtemp(prefix="kubeshim-bench-ctl-")
    srv = ServerProcess(tmp).start()
    api = Api(connection_from_kubeconfig(srv.kubeconfig))
    try:
        d_times, r_times = [], []
        for r in range(args.rounds):
            ns_d, ns_r = f"bench-d{r}", f"bench-r{r}"
            await ensure_ns(api, ns_d)
            await ensure_ns(api, ns_r)
            d_times.append(await direct(api, ns_d, args.pods))
            r_times.append(await rc_path(api, ns_r, args.pods))
            print(f"round {r + 1}: direct {d_times[-1]:.3f} s   rc {r_times[-1]:.3f} s   "
                  f"ratio {r_times[-1] / d_times[-1]:.2f}", flush=True)
        d, rc = statistics.median(d_times), statistics.median(r_times)
        ratio = rc / d
        print(f"\n{args.pods} pods, API-only (--no-node), median of {args.rounds} rounds")
        print(f"  direct create+delete : {d:.3f} s")
        print(f"  RC scale 0->{args.pods}->0   : {rc:.3f} s")
        print(f"  ratio                : {ratio:.2f}x (target <= {TARGET}x) "
              f"{'OK' if ratio <= TARGET else 'MISSED'}")
        print("  real containers      : not measured (no node agent running pods yet)")
    finally:
        await api.close()
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
