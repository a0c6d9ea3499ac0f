"""Cluster DNS: the wire format and records (pure), resolv.conf per dnsPolicy, and end to end
on a server with its node: the kube-dns Service, A and SRV answers over UDP and TCP from the
host, and from inside a pod through its /etc/resolv.conf."""
from __future__ import annotations

import json
import os
import random
import socket
import struct

import pytest

from shim.node.network import dns
from tests.conftest import Kubectl, ServerProcess
from tests.node.test_agent import _cleanup, containerd_state, wait_for

IMAGE = "busybox:test"


def query(name: str, qtype: int = dns.TYPE_A, id_: int = 0x1234) -> bytes:
    return struct.pack("!HHHHHH", id_, 0x0100, 1, 0, 0, 0) + dns.encode_name(name) + \
        struct.pack("!HH", qtype, 1)


def decode(resp: bytes) -> tuple[int, list[tuple[int, object]]]:
    """(rcode, [(type, value)]) of the answer section: A → ip, SRV → (port, target)."""
    _, flags, qd, an = struct.unpack("!HHHH", resp[:8])
    off = 12
    for _ in range(qd):
        off = _skip_name(resp, off) + 4
    out = []
    for _ in range(an):
        off = _skip_name(resp, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", resp[off:off + 10])
        rdata = resp[off + 10:off + 10 + rdlen]
        if rtype == dns.TYPE_A:
            out.append((rtype, socket.inet_ntoa(rdata)))
        elif rtype == dns.TYPE_SRV:
            out.append((rtype, (struct.unpack("!H", rdata[4:6])[0], dns._read_name(rdata, 6)[0])))
        off += 10 + rdlen
    return flags & 0xF, out


def _skip_name(b: bytes, off: int) -> int:
    while b[off]:
        if b[off] & 0xC0:
            return off + 2
        off += 1 + b[off]
    return off + 1


SERVICES = {
    "default/web": {"metadata": {"name": "web", "namespace": "default"},
                    "spec": {"clusterIP": "10.43.0.20",
                             "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}},
    "default/db": {"metadata": {"name": "db", "namespace": "default"},
                   "spec": {"clusterIP": "None",
                            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}},
}
ENDPOINTS = {"default/db": {"subsets": [{"addresses": [{"ip": "10.42.0.7"}, {"ip": "10.42.0.8"}],
                                         "notReadyAddresses": [{"ip": "10.42.0.9"}]}]}}


def ask(name, qtype=dns.TYPE_A):
    r = dns.answer(dns.ClusterRecords(SERVICES, ENDPOINTS), query(name, qtype))
    return None if r is None else decode(r)


def test_records():
    assert ask("web.default.svc.cluster.local") == (0, [(1, "10.43.0.20")])
    assert ask("WEB.default.svc.cluster.local.") == (0, [(1, "10.43.0.20")])
    assert ask("db.default.svc.cluster.local") == (0, [(1, "10.42.0.7"), (1, "10.42.0.8")])
    assert ask("_http._tcp.web.default.svc.cluster.local", dns.TYPE_SRV) == \
        (0, [(33, (80, "web.default.svc.cluster.local"))])
    assert ask("_pg._tcp.db.default.svc.cluster.local", dns.TYPE_SRV) == \
        (0, [(33, (5432, "10-42-0-7.db.default.svc.cluster.local")),
             (33, (5432, "10-42-0-8.db.default.svc.cluster.local"))])
    assert ask("10-42-0-8.db.default.svc.cluster.local") == (0, [(1, "10.42.0.8")])
    assert ask("10-42-0-5.default.pod.cluster.local") == (0, [(1, "10.42.0.5")])
    assert ask("web.default.svc.cluster.local", dns.TYPE_AAAA) == (0, [])
    assert ask("nope.default.svc.cluster.local") == (3, [])
    assert ask("web.other.svc.cluster.local") == (3, [])
    assert ask("example.com") is None                       # forwarded


def test_resolv_conf_policies(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 10.255.255.53\nsearch corp.example\noptions edns0\n")
    pod = {"metadata": {"namespace": "team"}, "spec": {}}
    assert dns.resolv_conf(pod, "10.43.0.10", host_path=str(host)) == (
        "search team.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "nameserver 10.43.0.10\noptions ndots:5\n")
    pod["spec"] = {"dnsPolicy": "Default"}
    assert dns.resolv_conf(pod, "10.43.0.10", host_path=str(host)) == (
        "search corp.example\nnameserver 10.255.255.53\noptions edns0\n")
    pod["spec"] = {"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["1.2.3.4"], "searches": ["a.b"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}
    assert dns.resolv_conf(pod, "10.43.0.10", host_path=str(host)) == (
        "search a.b\nnameserver 1.2.3.4\noptions ndots:2 edns0\n")
    pod["spec"] = {"hostNetwork": True}
    assert dns.resolv_conf(pod, "10.43.0.10", host_path=str(host)) == (
        "search corp.example\nnameserver 10.255.255.53\noptions edns0\n")
    pod["spec"] = {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}
    assert "nameserver 10.43.0.10" in dns.resolv_conf(pod, "10.43.0.10", host_path=str(host))
    assert dns.cluster_dns_ip("10.43.0.0/16") == "10.43.0.10"


# ---- end to end ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dns_server(node_tmp, busybox_image):
    data = os.path.join(node_tmp, f"dns{random.randint(0, 9999)}")
    os.makedirs(os.path.join(data, "images"))
    os.link(busybox_image.path, os.path.join(data, "images", "busybox.tar"))
    third = random.randint(150, 249)
    s = ServerProcess(data, node=True, extra_args=[
        "--pod-cidr", f"10.42.{third}.0/24", "--cni-bridge", f"ksd{third}",
        "--service-cidr", f"10.43.{third}.0/24", "--node-name", "node-d"])
    s.bridge = f"ksd{third}"
    s.dns_ip = f"10.43.{third}.10"
    s.start()
    yield s
    Kubectl(s, "1.32", os.path.join(data, "home")).run(
        "delete", "pods", "--all", "-A", "--grace-period=0", "--force", check=False)
    try:
        wait_for(lambda: not containerd_state(s)[0], 20, what="agent clean-up")
    except AssertionError:
        pass
    s.stop()
    _cleanup(s)


@pytest.fixture(scope="module")
def kc(dns_server):
    home = os.path.join(dns_server.data_dir, "home")
    os.makedirs(home, exist_ok=True)
    k = Kubectl(dns_server, "1.32", home)
    wait_for(lambda: "Ready" in k.run("get", "nodes", check=False).stdout, 30, what="node Ready")
    return k


def apply(kc, obj: dict) -> None:
    kc("apply", "-n", "default", "-f", "-", input=json.dumps(obj))


@pytest.fixture(scope="module")
def web(kc):
    apply(kc, {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                   "name": "web", "image": IMAGE, "command": ["sh", "-c",
                   "mkdir -p /www && echo hello-dns > /www/index.html && "
                   "exec busybox httpd -f -p 8080 -h /www"]}]}})
    apply(kc, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    wait_for(lambda: "Running" in kc("get", "pod", "web", "-n", "default", "--no-headers"),
             60, what="web running")
    return json.loads(kc("get", "svc", "web", "-n", "default", "-o", "json"))["spec"]["clusterIP"]


def udp_ask(ip: str, name: str, qtype=dns.TYPE_A):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(query(name, qtype), (ip, 53))
        return decode(s.recv(4096))


def tcp_ask(ip: str, name: str, qtype=dns.TYPE_A):
    with socket.create_connection((ip, 53), timeout=2) as s:
        q = query(name, qtype)
        s.sendall(struct.pack("!H", len(q)) + q)
        n = struct.unpack("!H", s.recv(2))[0]
        buf = b""
        while len(buf) < n:
            buf += s.recv(n - len(buf))
        return decode(buf)


def test_kube_dns_service_answers_from_the_host(kc, dns_server, web):
    svc = json.loads(kc("get", "svc", "kube-dns", "-n", "kube-system", "-o", "json"))
    assert svc["spec"]["clusterIP"] == dns_server.dns_ip
    name = "web.default.svc.cluster.local"

    def answered():
        try:
            return udp_ask(dns_server.dns_ip, name)
        except OSError:
            return None
    assert wait_for(answered, 15, what="dns over udp") == (0, [(1, web)])
    assert tcp_ask(dns_server.dns_ip, name) == (0, [(1, web)])
    assert tcp_ask(dns_server.dns_ip, "_http._tcp." + name, dns.TYPE_SRV) == \
        (0, [(33, (80, name))])
    assert udp_ask(dns_server.dns_ip, "missing.default.svc.cluster.local")[0] == 3


def test_pod_resolves_through_its_resolv_conf(kc, dns_server, web):
    apply(kc, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
               "spec": {"restartPolicy": "Never", "containers": [{
                   "name": "c", "image": IMAGE, "command": ["sh", "-c",
                   "cat /etc/resolv.conf; nslookup web.default.svc.cluster.local; "
                   "nslookup -type=SRV _http._tcp.web.default.svc.cluster.local; "
                   "timeout 10 wget -qO- http://web/"]}]}})
    wait_for(lambda: json.loads(kc("get", "pod", "client", "-n", "default", "-o", "json"))
             ["status"].get("phase") in ("Succeeded", "Failed"), 40, what="client done")
    out = kc("logs", "client", "-n", "default")
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in out
    assert f"nameserver {dns_server.dns_ip}" in out and "options ndots:5" in out
    assert f"Address: {web}" in out
    assert "port = 80" in out or " 80 web.default.svc.cluster.local" in out, out
    assert out.rstrip().endswith("hello-dns"), out          # by short name, via search
