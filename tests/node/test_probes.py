"""Probes and lifecycle hooks: thresholds, gating and the probe kinds against local servers
(no containers), then end to end with one `kubeshim server` with its own containerd: a failing
liveness probe restarts the container (Unhealthy and Killing events), readiness keeps a pod out
of Ready until it passes (httpGet against busybox httpd, exec), tcpSocket liveness, postStart
and preStop hooks.
"""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from shim.node import probes as P
from tests.node.test_agent import (IMAGE, apply, get_pod, kc, node_server,  # noqa: F401
                                   ns, wait_for, wait_status)


# ---- pure ------------------------------------------------------------------------------------

class FakeManager:
    def __init__(self):
        self.changes = 0
        self.failures = []
        self.events = []
        self.pending = False

    def changed(self):
        self.changes += 1

    def failed(self, w):
        self.failures.append(w.kind)

    def startup_pending(self, name, cid):
        return self.pending

    def event(self, *a):
        self.events.append(a)


def worker(kind, **probe):
    m = FakeManager()
    c = {"name": "c", P.SPEC_KEYS[kind]: {"exec": {"command": ["x"]}, **probe}}
    return m, P.ProbeWorker(m, kind, c, "cid", 0.0)


def test_readiness_thresholds():
    m, w = worker(P.READINESS, successThreshold=2, failureThreshold=2)
    assert w.result is False                 # not ready until probed
    w.record(True)
    assert w.result is False
    w.record(True)
    assert w.result is True and m.changes == 1
    w.record(False)
    assert w.result is True                  # one failure below the threshold
    w.record(True)
    w.record(False)
    w.record(False)
    assert w.result is False and m.changes == 2 and m.failures == []


def test_liveness_failure_threshold_calls_for_a_kill_once():
    m, w = worker(P.LIVENESS, failureThreshold=3)
    assert w.result is True
    w.record(False)
    w.record(False)
    assert m.failures == [] and not w.on_hold
    w.record(False)
    assert m.failures == ["Liveness"] and w.on_hold and w.result is False


def test_timing_defaults():
    t = P.Timing.of({})
    assert (t.initial_delay, t.period, t.timeout, t.success_threshold, t.failure_threshold) == \
        (0, 10, 1, 1, 3)


def test_gated_probes_do_not_run_while_startup_pending():
    m, w = worker(P.READINESS)
    m.pending = True
    ran = []

    async def exec_fn(cid, argv, timeout):
        ran.append(argv)
        return 0, ""
    m.exec_fn = exec_fn
    m.pod_ip = lambda: "127.0.0.1"
    asyncio.run(w.once())
    assert ran == [] and w.result is False
    m.pending = False
    asyncio.run(w.once())
    assert ran == [["x"]] and w.result is True


def test_manager_maps_follow_the_current_instance():
    async def go():
        async def exec_fn(cid, argv, timeout):
            return 1, "nope"
        calls = []

        async def on_failure(*a):
            calls.append(a)
        m = P.ProbeManager(exec_fn=exec_fn, pod_ip=lambda: "127.0.0.1", on_change=lambda: None,
                           on_failure=on_failure, event=lambda *a: None)
        c = {"name": "c", "readinessProbe": {"exec": {"command": ["a"]}, "periodSeconds": 100},
             "startupProbe": {"exec": {"command": ["b"]}, "periodSeconds": 100}}
        m.sync([(c, "id1", 0.0)])
        assert m.readiness() == {"c": False} and m.startup() == {"c": False}
        m.workers[("id1", P.STARTUP)].record(True)
        m.workers[("id1", P.READINESS)].record(True)
        assert m.readiness() == {"c": True} and m.startup() == {"c": True}
        m.sync([(c, "id2", 0.0)])                 # restarted: fresh results
        assert set(m.workers) == {("id2", P.READINESS), ("id2", P.STARTUP)}
        assert m.readiness() == {"c": False}
        m.sync([])
        assert m.workers == {} and m.readiness() == {}
        m.stop_all()
    asyncio.run(go())


def test_http_tcp_and_exec_probe_kinds():
    async def handler(reader, writer):
        req = (await reader.readuntil(b"\r\n\r\n")).decode()
        code = "200 OK" if "X-Probe: yes" in req and req.startswith("GET /ok ") else "503 No"
        writer.write(f"HTTP/1.1 {code}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
                     .encode())
        await writer.drain()
        writer.close()

    async def go():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        c = {"name": "c", "ports": [{"name": "web", "containerPort": port}]}

        async def exec_fn(cid, argv, timeout):
            if argv == ["hang"]:
                raise asyncio.TimeoutError()
            return (0, "fine") if argv == ["good"] else (2, "bad output")
        ok = {"httpGet": {"path": "/ok", "port": "web",
                          "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}}
        bad = {"httpGet": {"path": "/other", "port": port}}
        results = [await P.run_probe(ok, c, "cid", "127.0.0.1", exec_fn),
                   await P.run_probe(bad, c, "cid", "127.0.0.1", exec_fn),
                   await P.run_probe({"tcpSocket": {"port": port}}, c, "cid", "127.0.0.1",
                                     exec_fn)]
        srv.close()
        await srv.wait_closed()
        results.append(await P.run_probe({"tcpSocket": {"port": port}}, c, "cid", "127.0.0.1",
                                         exec_fn))
        results.append(await P.run_probe({"exec": {"command": ["good"]}}, c, "cid", "", exec_fn))
        results.append(await P.run_probe({"exec": {"command": ["no"]}}, c, "cid", "", exec_fn))
        results.append(await P.run_probe({"exec": {"command": ["hang"]}}, c, "cid", "",
                                         exec_fn))
        return port, results
    port, r = asyncio.run(go())
    assert r[0] == (P.SUCCESS, "hi")
    assert r[1] == (P.FAILURE, "HTTP probe failed with statuscode: 503")
    assert r[2] == (P.SUCCESS, "")
    assert r[3] == (P.FAILURE, f"dial tcp 127.0.0.1:{port}: connect: connection refused")
    assert r[4] == (P.SUCCESS, "fine")
    assert r[5] == (P.FAILURE, "bad output")
    assert r[6] == (P.FAILURE, 'command "hang" timed out')
    assert P.http_url({"port": 80, "scheme": "HTTPS", "path": "healthz"}, {}, "10.0.0.1") == \
        "https://10.0.0.1:80/healthz"
    with pytest.raises(ValueError, match="couldn't find port: web in c"):
        P.resolve_port("web", {"name": "c"})


# ---- end to end ----------------------------------------------------------------------------

def _events(kc, ns, name, reason) -> list[str]:
    out = kc("get", "events", "-n", ns, "--field-selector",
             f"involvedObject.name={name},reason={reason}", "-o", "json")
    return [e["message"] for e in json.loads(out)["items"]]


def _ready(kc, ns, name) -> str:
    pod = get_pod(kc, ns, name)
    return next((c["status"] for c in pod["status"].get("conditions") or []
                 if c["type"] == "Ready"), "")


def test_liveness_failure_restarts_while_readiness_keeps_out_of_ready(kc, ns):
    script = "touch /tmp/alive; sleep 3; rm /tmp/alive; sleep 600"
    apply(kc, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sick"},
                   "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 1,
                            "containers": [{
                                "name": "c", "image": IMAGE, "command": ["sh", "-c", script],
                                "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]},
                                                  "periodSeconds": 1, "failureThreshold": 2},
                                "readinessProbe": {"exec": {"command": ["cat", "/tmp/nope"]},
                                                   "periodSeconds": 1}}]}})
    wait_status(kc, ns, "sick", "Running", 60)

    def restarted():
        st = get_pod(kc, ns, "sick")["status"]["containerStatuses"][0]
        return st["restartCount"] >= 1 and st
    st = wait_for(restarted, 60, interval=0.5, what="liveness restart")
    assert st["ready"] is False
    assert st["lastState"]["terminated"]["exitCode"] == 137
    assert _ready(kc, ns, "sick") == "False"
    killing = _events(kc, ns, "sick", "Killing")
    assert "Container c failed liveness probe, will be restarted" in killing
    unhealthy = _events(kc, ns, "sick", "Unhealthy")
    assert any(m.startswith("Liveness probe failed: cat: can't open '/tmp/alive'")
               for m in unhealthy), unhealthy
    assert any(m.startswith("Readiness probe failed: cat: can't open '/tmp/nope'")
               for m in unhealthy), unhealthy
    assert kc("get", "pod", "sick", "-n", ns, "--no-headers").split()[1] == "0/1"


def test_http_readiness_tcp_liveness_and_hooks(kc, node_server, ns):
    host_dir = os.path.join(node_server.data_dir, f"hooks-{ns}")
    os.makedirs(host_dir)
    script = "sleep 2; mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www"
    apply(kc, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                   "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 5,
                            "automountServiceAccountToken": False,
                            "containers": [{
                                "name": "c", "image": IMAGE, "command": ["sh", "-c", script],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "readinessProbe": {"httpGet": {"path": "/index.html",
                                                               "port": "http"},
                                                   "periodSeconds": 1},
                                "livenessProbe": {"tcpSocket": {"port": 8080},
                                                  "initialDelaySeconds": 5, "periodSeconds": 2},
                                "lifecycle": {
                                    "postStart": {"exec": {"command": [
                                        "sh", "-c", "echo started > /hooks/post"]}},
                                    "preStop": {"exec": {"command": [
                                        "sh", "-c", "echo stopping > /hooks/pre"]}}},
                                "volumeMounts": [{"name": "h", "mountPath": "/hooks"}]}],
                            "volumes": [{"name": "h", "hostPath": {"path": host_dir}}]}})
    wait_status(kc, ns, "web", "Running", 60)
    wait_for(lambda: _ready(kc, ns, "web") == "True", 30, what="web Ready")
    assert open(os.path.join(host_dir, "post")).read() == "started\n"
    assert get_pod(kc, ns, "web")["status"]["containerStatuses"][0]["ready"] is True
    kc("delete", "pod", "web", "-n", ns, "--wait=true", timeout=60)
    assert open(os.path.join(host_dir, "pre")).read() == "stopping\n"
    assert _events(kc, ns, "web", "Killing") == ["Stopping container c"]


# ---- resources and security context ----------------------------------------------------------

def test_oom_killed_and_security_context(kc, ns):
    apply(kc, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hog"},
                   "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                            "containers": [{
                                "name": "c", "image": IMAGE,
                                "command": ["sh", "-c", "x=$(head -c 100000000 /dev/zero | "
                                                        "tr '\\0' a); echo survived"],
                                "resources": {"limits": {"memory": "20Mi", "cpu": "200m"}}}]}})
    apply(kc, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "secure"},
                   "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                            "securityContext": {"runAsUser": 1234, "runAsGroup": 2345,
                                                "fsGroup": 3456},
                            "containers": [{
                                "name": "c", "image": IMAGE,
                                "command": ["sh", "-c", "id; touch /x 2>/dev/null || echo RO; "
                                            "echo hi > /data/f && ls -ln /data/f"],
                                "securityContext": {"readOnlyRootFilesystem": True,
                                                    "allowPrivilegeEscalation": False},
                                "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                            "volumes": [{"name": "d", "emptyDir": {}}]}})
    apply(kc, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rootful"},
                   "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                            "containers": [{"name": "c", "image": IMAGE, "command": ["true"],
                                            "securityContext": {"runAsNonRoot": True}}]}})
    wait_status(kc, ns, "hog", "OOMKilled", 60)
    term = get_pod(kc, ns, "hog")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
    assert get_pod(kc, ns, "hog")["status"]["qosClass"] == "Guaranteed"
    wait_status(kc, ns, "secure", "Completed", 60)
    out = kc("logs", "secure", "-n", ns).splitlines()
    assert out[0].startswith("uid=1234 gid=2345 groups=") and "3456" in out[0]
    assert out[1] == "RO"
    assert out[2].split()[2:4] == ["1234", "3456"]          # fsGroup owns the emptyDir
    wait_status(kc, ns, "rootful", "CreateContainerConfigError", 60)
    st = get_pod(kc, ns, "rootful")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert st["message"] == "container has runAsNonRoot and image will run as root " \
        f"(pod: \"rootful_{ns}({get_pod(kc, ns, 'rootful')['metadata']['uid']})\", container: c)"


def test_grpc_health_probe():
    import grpc

    async def go():
        state = {"svc": b"\x08\x01", "": b"\x08\x02"}

        def check(req, ctx):
            name = req[2:].decode() if req else ""
            return state.get(name, b"")
        handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(
                check, request_deserializer=lambda b: b, response_serializer=lambda b: b)})
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            ok = await P.run_probe({"grpc": {"port": port, "service": "svc"}}, {}, "", "127.0.0.1",
                                   None)
            bad = await P.run_probe({"grpc": {"port": port}}, {}, "", "127.0.0.1", None)
            unknown = await P.run_probe({"grpc": {"port": port, "service": "zz"}}, {}, "",
                                        "127.0.0.1", None)
        finally:
            await server.stop(0)
        return ok, bad, unknown
    ok, bad, unknown = asyncio.run(go())
    assert ok == (P.SUCCESS, "")
    assert bad == (P.FAILURE, 'service unhealthy (responded with "NOT_SERVING")')
    assert unknown == (P.FAILURE, 'service unhealthy (responded with "UNKNOWN")')
