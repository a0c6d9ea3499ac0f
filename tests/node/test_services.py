"""The Services dataplane end to end: a `kubeshim server` with its node (containerd, CNI),
busybox httpd pods behind Services, the Endpoints controller filling Endpoints and the
nftables table carrying ClusterIP and NodePort traffic. One server for the module, with its
own bridge, pod CIDR, service CIDR and nft table."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time

import pytest

from shim.node.network.services import render, service_link_env, table_name
from tests.conftest import Kubectl, ServerProcess
from tests.node.test_agent import _cleanup, _fetch, containerd_state, wait_for

IMAGE = "busybox:test"


@pytest.fixture(scope="module")
def svc_server(node_tmp, busybox_image):
    data = os.path.join(node_tmp, f"svc{random.randint(0, 9999)}")
    os.makedirs(os.path.join(data, "images"))
    os.link(busybox_image.path, os.path.join(data, "images", "busybox.tar"))
    third = random.randint(150, 249)
    s = ServerProcess(data, node=True, extra_args=[
        "--pod-cidr", f"10.42.{third}.0/24", "--cni-bridge", f"kss{third}",
        "--service-cidr", f"10.43.{third}.0/24", "--node-name", "node-s"])
    s.bridge = f"kss{third}"
    s.service_cidr = f"10.43.{third}.0/24"
    s.start()
    yield s
    if s.proc and s.proc.poll() is None:
        Kubectl(s, "1.32", os.path.join(data, "home")).run(
            "delete", "pods", "--all", "-A", "--grace-period=0", "--force", check=False)
        try:
            wait_for(lambda: not containerd_state(s)[0], 20, what="agent clean-up")
        except AssertionError:
            pass
    s.stop()
    _cleanup(s)


@pytest.fixture(scope="module")
def kc(svc_server):
    home = os.path.join(svc_server.data_dir, "home")
    os.makedirs(home, exist_ok=True)
    k = Kubectl(svc_server, "1.32", home)
    wait_for(lambda: "Ready" in k.run("get", "nodes", check=False).stdout, 30, what="node Ready")
    return k


def apply(kc, obj: dict) -> None:
    kc("apply", "-n", "default", "-f", "-", input=json.dumps(obj))


def httpd_pod(name: str, labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "web", "image": IMAGE,
                "ports": [{"name": "http", "containerPort": 8080}],
                "command": ["sh", "-c", f"mkdir -p /www && echo {name} > /www/index.html && "
                                        "exec busybox httpd -f -p 8080 -h /www"]}]}}


def service(name: str, selector: dict, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector,
                     "ports": [{"name": "web", "port": 80, "targetPort": "http"}], **spec}}


def get(kc, kind, name) -> dict:
    return json.loads(kc("get", kind, name, "-n", "default", "-o", "json"))


def ready_ips(kc, name) -> list[str]:
    ep = json.loads(kc.run("get", "endpoints", name, "-n", "default", "-o", "json",
                           check=False).stdout or "{}")
    return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])


@pytest.fixture(scope="module")
def backends(kc):
    """Two httpd pods behind service `web` (ClusterIP) and `webnp` (NodePort)."""
    for n in ("web-1", "web-2"):
        apply(kc, httpd_pod(n, {"app": "web"}))
    apply(kc, service("web", {"app": "web"}))
    apply(kc, service("webnp", {"app": "web"}, type="NodePort"))
    wait_for(lambda: len(ready_ips(kc, "web")) == 2, 60, what="2 ready endpoints")
    return get(kc, "service", "web")["spec"]["clusterIP"]


def test_clusterip_from_host_spreads_over_backends(kc, backends):
    ip = backends
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        body = _fetch(f"http://{ip}:80/")
        if body:
            seen[body.strip()] = seen.get(body.strip(), 0) + 1
    assert set(seen) == {"web-1", "web-2"}


def test_clusterip_from_another_pod(kc, backends):
    apply(kc, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
               "spec": {"restartPolicy": "Never", "containers": [{
                   "name": "c", "image": IMAGE,
                   "command": ["sh", "-c", f"timeout 10 wget -qO- http://{backends}/"]}]}})
    wait_for(lambda: get(kc, "pod", "client")["status"].get("phase") in ("Succeeded", "Failed"),
             40, what="client done")
    assert kc("logs", "client", "-n", "default").strip() in ("web-1", "web-2")


def test_service_without_endpoints_is_refused_at_once(kc, backends):
    apply(kc, service("nobody", {"app": "nobody"}))
    ip = get(kc, "service", "nobody")["spec"]["clusterIP"]
    time.sleep(1.5)                       # the dataplane follows within a second
    t0 = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ip, 80), timeout=5).close()
    assert time.monotonic() - t0 < 2


def test_nodeport_on_localhost(kc, backends):
    port = get(kc, "service", "webnp")["spec"]["ports"][0]["nodePort"]
    body = wait_for(lambda: _fetch(f"http://127.0.0.1:{port}/"), 15, what="nodeport")
    assert body.strip() in ("web-1", "web-2")


def test_service_link_env_in_a_container(kc, backends):
    apply(kc, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "envs"},
               "spec": {"restartPolicy": "Never", "containers": [{
                   "name": "c", "image": IMAGE, "command": ["sh", "-c", "env | sort"],
                   "env": [{"name": "WEB_SERVICE_PORT", "value": "mine"}]}]}})
    wait_for(lambda: get(kc, "pod", "envs")["status"].get("phase") in ("Succeeded", "Failed"),
             40, what="envs done")
    env = dict(line.split("=", 1) for line in kc("logs", "envs", "-n", "default").splitlines()
               if "=" in line)
    assert env["WEB_SERVICE_HOST"] == backends
    assert env["WEB_PORT_80_TCP"] == f"tcp://{backends}:80"
    assert env["WEB_SERVICE_PORT"] == "mine"                 # the container's env wins
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"


def test_client_ip_affinity_sticks_to_one_backend(kc, backends):
    apply(kc, service("sticky", {"app": "web"}, sessionAffinity="ClientIP"))
    ip = get(kc, "service", "sticky")["spec"]["clusterIP"]
    wait_for(lambda: len(ready_ips(kc, "sticky")) == 2, 20, what="sticky endpoints")
    first = wait_for(lambda: _fetch(f"http://{ip}:80/"), 15, what="sticky answers")
    bodies = {(_fetch(f"http://{ip}:80/") or "").strip() for _ in range(12)}
    assert bodies == {first.strip()}


def test_endpoint_change_reaches_the_dataplane(kc, backends):
    kc("delete", "pod", "web-2", "-n", "default", "--grace-period=0", "--force")
    wait_for(lambda: ready_ips(kc, "web") and len(ready_ips(kc, "web")) == 1, 30,
             what="1 endpoint")
    time.sleep(1.0)
    bodies = {(_fetch(f"http://{backends}:80/") or "").strip() for _ in range(10)}
    assert bodies == {"web-1"}


def test_rules_removed_on_stop(kc, svc_server, backends):
    table = table_name(svc_server.bridge)
    listing = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True,
                             text=True)
    assert listing.returncode == 0
    assert "dnat to" in listing.stdout
    kc.run("delete", "pods", "--all", "-A", "--grace-period=0", "--force", check=False)
    wait_for(lambda: not containerd_state(svc_server)[0], 20, what="agent clean-up")
    svc_server.stop()
    assert subprocess.run(["nft", "list", "table", "ip", table],
                          capture_output=True).returncode != 0
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert svc_server.service_cidr not in routes


def test_render_unit():
    """The script for a 2-backend ClientIP NodePort service and an endpoint-less one."""
    svcs = [{"metadata": {"name": "a", "namespace": "n"}, "spec": {
        "clusterIP": "10.43.0.5", "type": "NodePort", "sessionAffinity": "ClientIP",
        "ports": [{"name": "p", "port": 80, "protocol": "TCP", "nodePort": 30080}]}},
        {"metadata": {"name": "b", "namespace": "n"}, "spec": {
            "clusterIP": "10.43.0.6", "ports": [{"port": 81, "protocol": "UDP"}]}},
        {"metadata": {"name": "h", "namespace": "n"}, "spec": {
            "clusterIP": "None", "ports": [{"port": 80}]}}]
    eps = {"n/a": {"subsets": [{"addresses": [{"ip": "10.42.0.3"}, {"ip": "10.42.0.2"}],
                                "notReadyAddresses": [{"ip": "10.42.0.9"}],
                                "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}]}]}}
    script = render("t", svcs, eps)
    assert script.startswith("table ip t\ndelete table ip t\ntable ip t {")
    assert "numgen random mod 2 vmap" in script
    assert "dnat to 10.42.0.2:8080" in script and "dnat to 10.42.0.3:8080" in script
    assert "10.42.0.9" not in script
    assert "timeout 10800s" in script
    assert "tcp . 30080 : goto ext-" in script
    assert "10.43.0.6 . udp . 81 : goto reject-chain" in script
    assert subprocess.run(["nft", "-c", "-f", "-"], input=script, text=True,
                          capture_output=True).returncode == 0


def test_service_link_env_unit():
    svcs = [{"metadata": {"name": "my-db", "namespace": "a"}, "spec": {
        "clusterIP": "10.43.0.7", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"},
                                            {"port": 53, "protocol": "UDP"}]}},
        {"metadata": {"name": "kubernetes", "namespace": "default"}, "spec": {
            "clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443}]}},
        {"metadata": {"name": "other", "namespace": "b"}, "spec": {
            "clusterIP": "10.43.0.8", "ports": [{"port": 80}]}},
        {"metadata": {"name": "headless", "namespace": "a"}, "spec": {
            "clusterIP": "None", "ports": [{"port": 80}]}}]
    env = service_link_env(svcs, "a")
    assert env == {
        "MY_DB_SERVICE_HOST": "10.43.0.7", "MY_DB_SERVICE_PORT": "5432",
        "MY_DB_SERVICE_PORT_PG": "5432", "MY_DB_PORT": "tcp://10.43.0.7:5432",
        "MY_DB_PORT_5432_TCP": "tcp://10.43.0.7:5432", "MY_DB_PORT_5432_TCP_PROTO": "tcp",
        "MY_DB_PORT_5432_TCP_PORT": "5432", "MY_DB_PORT_5432_TCP_ADDR": "10.43.0.7",
        "MY_DB_PORT_53_UDP": "udp://10.43.0.7:53", "MY_DB_PORT_53_UDP_PROTO": "udp",
        "MY_DB_PORT_53_UDP_PORT": "53", "MY_DB_PORT_53_UDP_ADDR": "10.43.0.7",
        "KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.43.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.43.0.1:443", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.43.0.1"}
    assert set(service_link_env(svcs, "a", enable_links=False)) == \
        {k for k in env if k.startswith("KUBERNETES_")}
