"""The Endpoints controller: pure subset computation, and against a real --no-node server
(pods' IPs and readiness set through pods/status) that Endpoints follow pods coming, going
and changing readiness, that selector-less services are left alone and that the Endpoints
goes with its service."""
from __future__ import annotations

import asyncio
import time

import pytest

from shim.api.errors import StatusError
from shim.client import Client
from shim.controllers.endpoints import (CONTROLLER_NAME, LABEL_HEADLESS, LABEL_MANAGED_BY,
                                        TRIGGER_TIME, compute_subsets, resolve_target_port,
                                        truncate)
from tests.conftest import ServerProcess


def svc(name, selector=None, ports=None, **spec) -> dict:
    s = {"ports": ports if ports is not None else [{"port": 80, "targetPort": 8080}], **spec}
    if selector is not None:
        s["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": {"team": "a"}},
            "spec": s}


def pod(name, ip=None, ready=True, labels=None, ports=None, node="n1", phase="Running",
        uid=None) -> dict:
    c = {"name": "c", "image": "busybox"}
    if ports:
        c["ports"] = ports
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}",
                      "labels": labels if labels is not None else {"app": "web"}},
         "spec": {"containers": [c], "nodeName": node}, "status": {"phase": phase}}
    if ip:
        p["status"]["podIP"] = ip
        p["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return p


# ---- pure ------------------------------------------------------------------------------

def test_subsets_ready_not_ready_and_ref():
    s = svc("web", {"app": "web"})
    subsets = compute_subsets(s, [pod("b", "10.42.0.9"), pod("a", "10.42.0.10"),
                                  pod("c", "10.42.0.5", ready=False),
                                  pod("d"),                                  # no IP yet
                                  pod("e", "10.42.0.6", phase="Succeeded"),
                                  pod("f", "10.42.0.7", labels={"app": "other"})])
    assert subsets == [{
        "addresses": [
            {"ip": "10.42.0.9", "nodeName": "n1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}},
            {"ip": "10.42.0.10", "nodeName": "n1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
        "notReadyAddresses": [
            {"ip": "10.42.0.5", "nodeName": "n1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "c", "uid": "uid-c"}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]}]


def test_named_target_port_resolved_per_pod():
    s = svc("web", {"app": "web"}, ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    p1 = pod("a", "10.42.0.2", ports=[{"name": "web", "containerPort": 8080}])
    p2 = pod("b", "10.42.0.3", ports=[{"name": "web", "containerPort": 9090}])
    p3 = pod("c", "10.42.0.4")                                   # lacks the named port
    assert resolve_target_port(s["spec"]["ports"][0], p3) is None
    subsets = compute_subsets(s, [p1, p2, p3])
    assert [(sub["addresses"][0]["ip"], sub["ports"]) for sub in subsets] == [
        ("10.42.0.2", [{"name": "http", "port": 8080, "protocol": "TCP"}]),
        ("10.42.0.3", [{"name": "http", "port": 9090, "protocol": "TCP"}])]


def test_publish_not_ready_and_headless_without_ports():
    s = svc("web", {"app": "web"}, publishNotReadyAddresses=True)
    subsets = compute_subsets(s, [pod("a", "10.42.0.2", ready=False)])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.42.0.2"]
    h = svc("db", {"app": "web"}, ports=[], clusterIP="None")
    assert compute_subsets(h, [pod("a", "10.42.0.2")]) == [
        {"addresses": [{"ip": "10.42.0.2", "nodeName": "n1", "targetRef": {
            "kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}]}]
    assert compute_subsets(svc("x", {"app": "web"}), []) == []


# ---- against a server -------------------------------------------------------------------

@pytest.fixture(scope="module")
def ep_server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("endpoints")))
    s.start()
    yield s
    s.stop()


def api(server, fn):
    async def go():
        async with Client.from_kubeconfig(server.kubeconfig) as c:
            return await fn(c)
    return asyncio.run(go())


async def wait_for(fn, timeout=10.0):
    """Polls the async fn until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out; last value {last!r}")


async def make_pod(c, name, ip, ready=True, labels=None, ports=None):
    p = pod(name, labels=labels, ports=ports)
    p["metadata"].pop("uid")
    p.pop("status")
    created = await c.create("pods", p, "default")
    await set_status(c, name, ip, ready)
    return created


async def set_status(c, name, ip, ready):
    await c.patch("pods", name, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}},
        "default", subresource="status")


async def endpoints_of(c, name):
    try:
        return await c.get("endpoints", name, "default")
    except StatusError as e:
        if e.code == 404:
            return None
        raise


def ips(ep, field="addresses"):
    return sorted(a["ip"] for s in (ep or {}).get("subsets") or [] for a in s.get(field) or [])


def test_endpoints_follow_pods(ep_server):
    async def go(c):
        a = await make_pod(c, "web-a", "10.42.0.11",
                           ports=[{"name": "web", "containerPort": 8080}])
        await c.create("services", svc("web", {"app": "web"},
                                       ports=[{"name": "http", "port": 80, "targetPort": "web"}]),
                       "default")

        async def has_a():
            ep = await endpoints_of(c, "web")
            return ep if ips(ep) == ["10.42.0.11"] else None
        ep = await wait_for(has_a)
        meta = ep["metadata"]
        assert meta["labels"] == {"team": "a", LABEL_MANAGED_BY: CONTROLLER_NAME}
        assert meta["annotations"][TRIGGER_TIME].endswith("Z")
        addr = ep["subsets"][0]["addresses"][0]
        assert addr["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "web-a",
                                     "uid": a["metadata"]["uid"]}
        assert addr["nodeName"] == "n1"
        assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]

        # a second pod, not ready: notReadyAddresses; then ready; then a goes
        await make_pod(c, "web-b", "10.42.0.12", ready=False,
                       ports=[{"name": "web", "containerPort": 8080}])
        await wait_for(lambda: _check(c, ["10.42.0.11"], ["10.42.0.12"]))
        await set_status(c, "web-b", "10.42.0.12", True)
        await wait_for(lambda: _check(c, ["10.42.0.11", "10.42.0.12"], []))
        await c.delete("pods", "web-a", "default", grace_period_seconds=0)
        await wait_for(lambda: _check(c, ["10.42.0.12"], []))
        # relabelled away from the selector
        await c.patch("pods", "web-b", {"metadata": {"labels": {"app": "gone"}}}, "default")
        await wait_for(lambda: _check(c, [], []))
        ep = await endpoints_of(c, "web")
        assert "subsets" not in ep

        # the Endpoints goes with the service
        await c.delete("services", "web", "default")

        async def gone():
            return await endpoints_of(c, "web") is None
        await wait_for(gone)
    api(ep_server, go)


async def _check(c, ready, not_ready):
    ep = await endpoints_of(c, "web")
    return ep is not None and ips(ep) == ready and ips(ep, "notReadyAddresses") == not_ready


def test_selectorless_service_left_alone_and_headless_label(ep_server):
    async def go(c):
        await c.create("services", svc("manual"), "default")
        await c.create("endpoints", {
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "manual"},
            "subsets": [{"addresses": [{"ip": "192.0.2.50"}], "ports": [{"port": 8080}]}]},
            "default")
        await make_pod(c, "db-a", "10.42.0.21", labels={"app": "db"})
        await c.create("services", svc("db", {"app": "db"}, clusterIP="None"), "default")

        async def db_ready():
            ep = await endpoints_of(c, "db")
            return ep if ips(ep) == ["10.42.0.21"] else None
        ep = await wait_for(db_ready)
        assert ep["metadata"]["labels"][LABEL_HEADLESS] == ""
        manual = await endpoints_of(c, "manual")
        assert ips(manual) == ["192.0.2.50"]
        assert LABEL_MANAGED_BY not in (manual["metadata"].get("labels") or {})

        # an edit of a managed Endpoints by hand is reverted
        ep["subsets"][0]["addresses"][0]["ip"] = "10.42.0.99"
        await c.update("endpoints", ep, "default")

        async def reverted():
            return ips(await endpoints_of(c, "db")) == ["10.42.0.21"]
        await wait_for(reverted)
    api(ep_server, go)


def test_truncation_keeps_ready_first_and_shares_per_subset():
    def addrs(prefix, n):
        return [{"ip": f"{prefix}.{i}"} for i in range(n)]
    subsets = [{"addresses": addrs("10.1.0", 3), "notReadyAddresses": addrs("10.2.0", 6)},
               {"addresses": addrs("10.1.1", 2), "notReadyAddresses": addrs("10.2.1", 2)}]
    assert truncate(subsets, capacity=9) is True
    # 5 ready kept; 4 not-ready slots: ceil(6/8*4)=3 for the first, the rest (1) for the last
    assert [len(s["addresses"]) for s in subsets] == [3, 2]
    assert [len(s["notReadyAddresses"]) for s in subsets] == [3, 1]
    over = [{"addresses": addrs("10.1.0", 6), "notReadyAddresses": addrs("10.2.0", 1)},
            {"addresses": addrs("10.1.1", 4)}]
    assert truncate(over, capacity=5) is True
    assert [len(s["addresses"]) for s in over] == [3, 2]
    assert all("notReadyAddresses" not in s for s in over)
    small = [{"addresses": addrs("10.1.0", 2)}]
    assert truncate(small, capacity=5) is False and len(small[0]["addresses"]) == 2
