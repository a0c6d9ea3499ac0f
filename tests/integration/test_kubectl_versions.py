"""The same everyday commands with kubectl 1.20, 1.32 and 1.35; `get -w` sees writes from another
client as they happen."""
from __future__ import annotations

import json
import queue
import threading
import time

from kubernetes import client


def test_everyday_commands(any_kubectl, tmp_path):
    k = any_kubectl
    ns = f"v{k.version.replace('.', '')}"
    k("create", "namespace", ns)
    f = tmp_path / "pod.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: b}}\n"
                 "spec: {containers: [{name: c, image: busybox}]}\n")
    assert "created" in k("apply", "-f", str(f), "-n", ns)
    out = k("get", "pods", "-n", ns)
    assert out.splitlines()[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert out.splitlines()[1].split()[:4] == ["p", "0/1", "Pending", "0"]
    k("label", "pod", "p", "x=y", "-n", ns)
    assert json.loads(k("get", "pod", "p", "-n", ns, "-o", "json"))["metadata"]["labels"]["x"] == "y"
    k("create", "configmap", "cm", "--from-literal=a=1", "-n", ns)
    k("create", "secret", "generic", "sec", "--from-literal=a=1", "-n", ns)
    assert "cm" in k("get", "cm", "-n", ns)
    assert k("get", "secret", "sec", "-n", ns, "-o", "jsonpath={.data.a}") == "MQ=="
    assert "p" in k("describe", "pod", "p", "-n", ns)
    k("delete", "pod", "p", "-n", ns)
    k("delete", "namespace", ns)


def test_get_watch_sees_pod_created_by_another_client(kubectl, core, ns):
    proc = kubectl.popen("get", "pods", "-n", ns, "-w", "--output-watch-events")
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
    try:
        time.sleep(1.0)   # let kubectl list and open its watch
        t0 = time.monotonic()
        core.create_namespaced_pod(ns, client.V1Pod(
            metadata=client.V1ObjectMeta(name="watched"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")])))
        line = ""
        deadline = t0 + 10
        while "watched" not in line and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
        latency = time.monotonic() - t0
        assert "watched" in line and line.split()[0] == "ADDED", line
        print(f"create -> kubectl get -w: {latency * 1000:.1f} ms")
    finally:
        proc.kill()
        proc.wait()
