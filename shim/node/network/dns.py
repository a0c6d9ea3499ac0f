"""Cluster DNS: a small asyncio DNS server (UDP and TCP) for the cluster domain, and the
/etc/resolv.conf pods get from their dnsPolicy.

It owns:
- the DNS wire format needed here (`parse_query`, `build_response`: one question, A / SRV
  answers, NXDOMAIN with the zone's SOA);
- `ClusterRecords.lookup`: `<svc>.<ns>.svc.<domain>` A (the ClusterIP; headless: the ready
  endpoint IPs), `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV for named ports,
  `<a-b-c-d>.<ns>.pod.<domain>` A, NXDOMAIN for other names in the domain, None (forward)
  for names outside it;
- `ClusterDNS`: the server bound on the pod bridge's gateway address (IP_FREEBIND: before
  the bridge exists), forwarding other names to the host's resolvers, plus the
  `kube-dns` Service in kube-system on the cluster DNS IP (10th address of the service
  CIDR, 10.43.0.10 by default) with hand-written Endpoints pointing at the gateway, so the
  nftables dataplane carries pod → 10.43.0.10:53 to it;
- `resolv_conf` / `write_resolv_conf`: what the kubelet writes for ClusterFirst,
  ClusterFirstWithHostNet, Default and None (+ dnsConfig).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct

from shim.api.errors import StatusError
from shim.client import Client

log = logging.getLogger("shim.node.network.dns")

DOMAIN = "cluster.local"
TTL = 30
TYPE_A, TYPE_NS, TYPE_SOA, TYPE_AAAA, TYPE_SRV, TYPE_ANY = 1, 2, 6, 28, 33, 255
NOERROR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 2, 3, 4
IP_FREEBIND = 15
HOST_RESOLV = "/etc/resolv.conf"


def cluster_dns_ip(service_cidr: str) -> str:
    """The 10th address of the service CIDR (10.43.0.10 for 10.43.0.0/16)."""
    return str(ipaddress.ip_network(service_cidr, strict=False).network_address + 10)


# ---- wire format ---------------------------------------------------------------------------

class Query:
    def __init__(self, id_: int, flags: int, name: str, qtype: int, qclass: int,
                 question: bytes):
        self.id, self.flags, self.name, self.qtype, self.qclass = id_, flags, name, qtype, qclass
        self.question = question          # the raw question section, echoed back


def _read_name(data: bytes, off: int) -> tuple[str, int]:
    labels = []
    while True:
        n = data[off]
        if n == 0:
            return ".".join(labels), off + 1
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(data[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def parse_query(data: bytes) -> Query:
    if len(data) < 12:
        raise ValueError("short message")
    id_, flags, qd = struct.unpack("!HHH", data[:6])
    if qd != 1:
        raise ValueError("exactly one question expected")
    name, off = _read_name(data, 12)
    qtype, qclass = struct.unpack("!HH", data[off:off + 4])
    return Query(id_, flags, name, qtype, qclass, data[12:off + 4])


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            b = label.encode()
            out += bytes([len(b)]) + b
    return out + b"\0"


def rr(name: str, rtype: int, rdata: bytes, ttl: int = TTL) -> bytes:
    return encode_name(name) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def a_record(name: str, ip: str) -> bytes:
    return rr(name, TYPE_A, socket.inet_aton(ip))


def srv_record(name: str, port: int, target: str, priority: int = 0, weight: int = 100) -> bytes:
    return rr(name, TYPE_SRV, struct.pack("!HHH", priority, weight, port) + encode_name(target))


def soa_record(domain: str = DOMAIN) -> bytes:
    rdata = encode_name(f"ns.dns.{domain}") + encode_name(f"hostmaster.{domain}") + \
        struct.pack("!IIIII", 1, 7200, 1800, 86400, TTL)
    return rr(domain, TYPE_SOA, rdata, TTL)


def build_response(q: Query, rcode: int, answers: list[bytes] = (),
                   authority: list[bytes] = (), additional: list[bytes] = ()) -> bytes:
    rd = q.flags & 0x0100
    flags = 0x8000 | 0x0400 | rd | 0x0080 | (rcode & 0xF)      # QR, AA, RD echoed, RA
    header = struct.pack("!HHHHHH", q.id, flags, 1, len(answers), len(authority),
                         len(additional))
    return header + q.question + b"".join(answers) + b"".join(authority) + b"".join(additional)


# ---- the records ---------------------------------------------------------------------------

def _ready(endpoints: dict | None) -> list[dict]:
    out = []
    for s in (endpoints or {}).get("subsets") or []:
        out += s.get("addresses") or []
    return out


class ClusterRecords:
    """Answers from the Services and Endpoints caches (namespace/name → object)."""

    def __init__(self, services: dict, endpoints: dict, domain: str = DOMAIN):
        self.services, self.endpoints, self.domain = services, endpoints, domain

    def lookup(self, name: str, qtype: int) -> tuple[int, list[bytes], list[bytes]] | None:
        """(rcode, answers, additional), or None when the name is outside the domain."""
        name = name.lower().rstrip(".")
        if name != self.domain and not name.endswith("." + self.domain):
            return None
        labels = name[:-len(self.domain)].rstrip(".").split(".") if name != self.domain else []
        if len(labels) >= 3 and labels[-1] == "svc":
            return self._service(name, labels[:-1], qtype)
        if len(labels) == 3 and labels[-1] == "pod":
            return self._pod(name, labels[0], qtype)
        if labels in ([], ["svc"], ["pod"]) or (len(labels) == 2 and labels[1] in ("svc", "pod")):
            return NOERROR, [], []          # existing interior names: no data
        return NXDOMAIN, [], []

    def _pod(self, name: str, dashed: str, qtype: int):
        try:
            ip = str(ipaddress.IPv4Address(dashed.replace("-", ".")))
        except ValueError:
            return NXDOMAIN, [], []
        return NOERROR, [a_record(name, ip)] if qtype in (TYPE_A, TYPE_ANY) else [], []

    def _service(self, name: str, labels: list[str], qtype: int):
        # <svc>.<ns> | <endpoint>.<svc>.<ns> | _<port>._<proto>.<svc>.<ns>
        svc_name, ns = labels[-2], labels[-1]
        svc = self.services.get(f"{ns}/{svc_name}")
        if svc is None:
            return NXDOMAIN, [], []
        spec = svc.get("spec") or {}
        base = f"{svc_name}.{ns}.svc.{self.domain}"
        headless = spec.get("clusterIP") == "None"
        eps = _ready(self.endpoints.get(f"{ns}/{svc_name}"))
        rest = labels[:-2]
        if not rest:
            if qtype not in (TYPE_A, TYPE_ANY):
                return NOERROR, [], []
            if spec.get("type") == "ExternalName":
                return NOERROR, [], []
            ips = [a["ip"] for a in eps] if headless else [spec.get("clusterIP")]
            return NOERROR, [a_record(name, ip) for ip in ips if ip], []
        if len(rest) == 2 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._srv(name, base, spec, rest[0][1:], rest[1][1:], headless, eps, qtype)
        if len(rest) == 1 and headless:           # an endpoint of a headless service
            for a in eps:
                if rest[0] in (a.get("hostname"), a["ip"].replace(".", "-")):
                    return NOERROR, [a_record(name, a["ip"])] if qtype in (TYPE_A, TYPE_ANY) \
                        else [], []
        return NXDOMAIN, [], []

    def _srv(self, name, base, spec, port_name, proto, headless, eps, qtype):
        for p in spec.get("ports") or []:
            if (p.get("name") or "") == port_name and \
                    (p.get("protocol") or "TCP").lower() == proto:
                break
        else:
            return NXDOMAIN, [], []
        if qtype not in (TYPE_SRV, TYPE_ANY):
            return NOERROR, [], []
        if not headless:
            return NOERROR, [srv_record(name, int(p["port"]), base)], \
                [a_record(base, spec["clusterIP"])]
        answers, extra = [], []
        for a in eps:
            target = f"{a.get('hostname') or a['ip'].replace('.', '-')}.{base}"
            answers.append(srv_record(name, int(p["port"]), target))
            extra.append(a_record(target, a["ip"]))
        return NOERROR, answers, extra


def answer(records: ClusterRecords, data: bytes) -> bytes | None:
    """The response to a query, or None when it must be forwarded."""
    try:
        q = parse_query(data)
    except (ValueError, IndexError, struct.error):
        return None if len(data) < 12 else _error(data, 1)        # FORMERR
    if q.qclass != 1:
        return build_response(q, NOTIMP)
    res = records.lookup(q.name, q.qtype)
    if res is None:
        return None
    rcode, answers, additional = res
    authority = [soa_record(records.domain)] if not answers else []
    return build_response(q, rcode, answers, authority, additional)


def _error(data: bytes, rcode: int) -> bytes:
    id_, flags = struct.unpack("!HH", data[:4])
    return struct.pack("!HHHHHH", id_, 0x8000 | (flags & 0x0100) | rcode, 0, 0, 0, 0)


def host_nameservers(path: str = HOST_RESOLV) -> list[str]:
    try:
        with open(path) as f:
            return [ln.split()[1] for ln in f if ln.startswith("nameserver") and
                    len(ln.split()) > 1]
    except OSError:
        return []


# ---- resolv.conf ---------------------------------------------------------------------------

def _host_resolv(path: str = HOST_RESOLV) -> tuple[list[str], list[str], list[str]]:
    ns, search, opts = [], [], []
    try:
        with open(path) as f:
            for ln in f:
                parts = ln.split()
                if not parts or parts[0].startswith(("#", ";")):
                    continue
                if parts[0] == "nameserver" and len(parts) > 1:
                    ns.append(parts[1])
                elif parts[0] in ("search", "domain"):
                    search = parts[1:]
                elif parts[0] == "options":
                    opts += parts[1:]
    except OSError:
        pass
    return ns, search, opts


def _merge_options(base: list[str], extra: list[dict]) -> list[str]:
    out: dict[str, str] = {}
    for o in base:
        k, _, v = o.partition(":")
        out[k] = o
    for o in extra:
        k = o.get("name", "")
        if k:
            out[k] = f"{k}:{o['value']}" if o.get("value") is not None else k
    return list(out.values())


def resolv_conf(pod: dict, cluster_dns: str, domain: str = DOMAIN,
                host_path: str = HOST_RESOLV) -> str:
    """The pod's /etc/resolv.conf text per its dnsPolicy and dnsConfig (a hostNetwork pod
    with ClusterFirst gets the node's resolvers, as with Default)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    ns_name = (pod.get("metadata") or {}).get("namespace") or "default"
    host_ns, host_search, host_opts = _host_resolv(host_path)
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns:
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        servers = [cluster_dns]
        search = [f"{ns_name}.svc.{domain}", f"svc.{domain}", domain] + host_search
        opts = ["ndots:5"]
    elif policy == "None":
        servers, search, opts = [], [], []
    else:                                               # Default: the node's resolvers
        servers, search, opts = host_ns, host_search, host_opts
    cfg = spec.get("dnsConfig") or {}
    servers = servers + [s for s in cfg.get("nameservers") or [] if s not in servers]
    search = search + [s for s in cfg.get("searches") or [] if s not in search]
    opts = _merge_options(opts, cfg.get("options") or [])
    lines = []
    if search:
        lines.append("search " + " ".join(search[:32]))
    lines += [f"nameserver {s}" for s in servers[:3]]
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"


def write_resolv_conf(directory: str, pod: dict, cluster_dns: str) -> str:
    """Writes <directory>/resolv.conf for the pod; returns its path."""
    text = resolv_conf(pod, cluster_dns)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "resolv.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


# ---- the server ----------------------------------------------------------------------------

def _freebind_socket(kind: int, ip: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    s.bind((ip, port))
    s.setblocking(False)
    return s


class _Forward(asyncio.DatagramProtocol):
    def __init__(self, fut: asyncio.Future):
        self.fut = fut

    def datagram_received(self, data, addr):
        if not self.fut.done():
            self.fut.set_result(data)

    def error_received(self, exc):
        if not self.fut.done():
            self.fut.set_exception(exc)


async def forward(data: bytes, upstreams: list[str], timeout: float = 2.0) -> bytes | None:
    loop = asyncio.get_running_loop()
    for up in upstreams:
        fut = loop.create_future()
        try:
            tr, _ = await loop.create_datagram_endpoint(lambda: _Forward(fut),
                                                        remote_addr=(up, 53))
        except OSError:
            continue
        try:
            tr.sendto(data)
            return await asyncio.wait_for(fut, timeout)
        except (asyncio.TimeoutError, OSError):
            continue
        finally:
            tr.close()
    return None


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: "ClusterDNS"):
        self.server = server
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        asyncio.ensure_future(self._reply(data, addr))

    async def _reply(self, data, addr):
        out = await self.server.resolve(data)
        if out is not None and self.transport is not None:
            if len(out) > 512:                          # truncated: the client retries on TCP
                flags = struct.unpack("!H", out[2:4])[0] | 0x0200
                out = out[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + \
                    parse_query(data).question
            self.transport.sendto(out, addr)


class ClusterDNS:
    """The DNS server for one node, fed by Services and Endpoints reflectors."""

    def __init__(self, client: Client, *, listen_ip: str, service_ip: str, port: int = 53,
                 domain: str = DOMAIN, upstreams: list[str] | None = None):
        self.client = client
        self.listen_ip, self.service_ip, self.port = listen_ip, service_ip, port
        self.services = client.reflector("services")
        self.endpoints = client.reflector("endpoints")
        self.records = ClusterRecords(self.services.cache, self.endpoints.cache, domain)
        self.upstreams = upstreams if upstreams is not None else host_nameservers()
        self._udp = None
        self._tcp = None

    async def resolve(self, data: bytes) -> bytes | None:
        self.records.services = self.services.cache       # reflectors replace on relist
        self.records.endpoints = self.endpoints.cache
        out = answer(self.records, data)
        if out is None and len(data) >= 12:
            out = await forward(data, self.upstreams)
            if out is None:
                out = _error(data, SERVFAIL)
        return out

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp = _freebind_socket(socket.SOCK_DGRAM, self.listen_ip, self.port)
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), sock=udp)
        tcp = _freebind_socket(socket.SOCK_STREAM, self.listen_ip, self.port)
        self._tcp = await asyncio.start_server(self._tcp_client, sock=tcp)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
                out = await self.resolve(await reader.readexactly(n))
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, struct.error):
            pass
        finally:
            writer.close()

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.gather(self._consume(self.services), self._consume(self.endpoints),
                                 self.publish())
        finally:
            self.close()

    @staticmethod
    async def _consume(reflector) -> None:
        async for _ in reflector:
            pass

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None

    async def publish(self) -> None:
        """The kube-dns Service on the cluster DNS IP and its Endpoints (the gateway)."""
        ports = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": self.port},
                 {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": self.port}]
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kube-dns", "namespace": "kube-system",
                            "labels": {"k8s-app": "kube-dns",
                                       "kubernetes.io/cluster-service": "true",
                                       "kubernetes.io/name": "KubeDNS"}},
               "spec": {"clusterIP": self.service_ip, "ports": ports}}
        ep = {"apiVersion": "v1", "kind": "Endpoints",
              "metadata": {"name": "kube-dns", "namespace": "kube-system",
                           "labels": {"k8s-app": "kube-dns"}},
              "subsets": [{"addresses": [{"ip": self.listen_ip}],
                           "ports": [{"name": "dns", "port": self.port, "protocol": "UDP"},
                                     {"name": "dns-tcp", "port": self.port, "protocol": "TCP"}]}]}
        delay = 0.2
        while True:
            try:
                await _create_or_keep(self.client, "services", svc)
                await _create_or_replace(self.client, "endpoints", ep)
                return
            except (StatusError, ConnectionError) as e:
                log.warning("publishing kube-dns: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


async def _create_or_keep(client: Client, plural: str, obj: dict) -> None:
    try:
        await client.create(plural, obj, obj["metadata"]["namespace"])
    except StatusError as e:
        if e.code != 409:
            raise


async def _create_or_replace(client: Client, plural: str, obj: dict) -> None:
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    try:
        await client.create(plural, obj, ns)
    except StatusError as e:
        if e.code != 409:
            raise
        cur = await client.get(plural, name, ns)
        obj = {**obj, "metadata": {**obj["metadata"],
                                   "resourceVersion": cur["metadata"]["resourceVersion"]}}
        await client.update(plural, obj, ns)
