"""The Services dataplane: ClusterIP and NodePort services programmed into one nftables
table owned by kubeshim, as kube-proxy's nftables mode does — the kernel carries the
traffic, Python only writes rules.

It owns:
- `render(...)`: the whole table as one `nft -f` script from Services and Endpoints
  (pure; unit-tested): a verdict map (daddr . l4proto . dport) → a chain per service
  port, `numgen random mod N` → a chain per endpoint doing the DNAT, a map
  (l4proto . dport) for NodePorts on local addresses (127.0.0.1 included), reject
  (TCP reset) for service ports without a ready endpoint, ClientIP session affinity with
  per-endpoint timeout sets, masquerade of marked traffic (hairpin and NodePort);
  headless and ExternalName services get nothing;
- `ServiceProxy`: watches Services and Endpoints (shim/client.py reflectors), replaces
  the table atomically (delete + create in one transaction) shortly after each change,
  keeps a host route for the service CIDR via the pod bridge and route_localnet on the
  bridge (for NodePorts on 127.0.0.1), and removes all of it on shutdown.
"""
from __future__ import annotations

import asyncio
import atexit
import hashlib
import ipaddress
import logging
import os
import re
import subprocess
from dataclasses import dataclass, field

from shim.client import Client, object_key, run_reflector

log = logging.getLogger("shim.node.network.services")

MASQ_MARK = 0x4000
DEBOUNCE = 0.05                  # seconds to gather a burst of changes into one update
DEFAULT_AFFINITY_TIMEOUT = 10800


def table_name(bridge: str) -> str:
    """`kubeshim` for the default bridge; one table per bridge otherwise (tests run
    several servers on one machine)."""
    return "kubeshim" if bridge == "kubeshim0" else f"kubeshim-{bridge}"


@dataclass
class PortRule:
    """One service port as the dataplane sees it."""
    key: str                       # ns/name/proto/port
    cluster_ips: list[str]
    protocol: str                  # tcp | udp | sctp
    port: int
    node_port: int | None
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    affinity_timeout: int | None = None

    @property
    def chain_id(self) -> str:
        h = hashlib.sha256(self.key.encode()).hexdigest()[:8].upper()
        return f"{h}-{_safe(self.key)}"[:200]


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_./-]", "_", s)


def _ipv4(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def service_ports(service: dict, endpoints: dict | None) -> list[PortRule]:
    """The PortRules of one service (none for headless and ExternalName services)."""
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")])
           if ip and ip != "None" and _ipv4(ip)]
    if not ips:
        return []
    timeout = None
    if spec.get("sessionAffinity") == "ClientIP":
        timeout = (((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                   .get("timeoutSeconds")) or DEFAULT_AFFINITY_TIMEOUT
    out = []
    for sp in spec.get("ports") or []:
        proto = (sp.get("protocol") or "TCP").upper()
        rule = PortRule(key=f"{meta.get('namespace')}/{meta.get('name')}/{proto.lower()}/"
                            f"{sp.get('name') or sp['port']}",
                        cluster_ips=ips, protocol=proto.lower(), port=int(sp["port"]),
                        node_port=int(sp["nodePort"]) if sp.get("nodePort") and
                        spec.get("type") in ("NodePort", "LoadBalancer") else None,
                        endpoints=ready_endpoints(endpoints, sp.get("name") or "", proto),
                        affinity_timeout=timeout)
        out.append(rule)
    return out


def ready_endpoints(endpoints: dict | None, port_name: str, protocol: str) -> list[tuple[str, int]]:
    """(ip, port) of the ready addresses for the endpoint port of that name and protocol."""
    found = set()
    for subset in (endpoints or {}).get("subsets") or []:
        for p in subset.get("ports") or []:
            if (p.get("name") or "") != port_name or (p.get("protocol") or "TCP") != protocol:
                continue
            for a in subset.get("addresses") or []:
                if _ipv4(a.get("ip", "")):
                    found.add((a["ip"], int(p["port"])))
    return sorted(found, key=lambda e: (ipaddress.ip_address(e[0]), e[1]))


def render(table: str, services: list[dict], endpoints: dict[str, dict]) -> str:
    """The nft script replacing `table ip <table>` with the rules for these services
    (`endpoints` maps namespace/name to the Endpoints object)."""
    rules: list[PortRule] = []
    for svc in services:
        rules += service_ports(svc, endpoints.get(object_key(svc)))
    rules.sort(key=lambda r: r.key)
    lines = [f"table ip {table}", f"delete table ip {table}", f"table ip {table} {{"]
    lines += _base_chains()
    svc_map, np_map, reject_map, reject_np = [], [], [], []
    for r in rules:
        cid = r.chain_id
        if not r.endpoints:
            for ip in r.cluster_ips:
                reject_map.append(f"{ip} . {r.protocol} . {r.port} : goto reject-chain")
            if r.node_port:
                reject_np.append(f"{r.protocol} . {r.node_port} : goto reject-chain")
            continue
        for ip in r.cluster_ips:
            svc_map.append(f"{ip} . {r.protocol} . {r.port} : goto svc-{cid}")
        if r.node_port:
            np_map.append(f"{r.protocol} . {r.node_port} : goto ext-{cid}")
            lines += [f"  chain ext-{cid} {{", "    jump mark-for-masquerade",
                      f"    goto svc-{cid}", "  }"]
        lines += _service_chains(r)
    lines += _map("service-ips", "ipv4_addr . inet_proto . inet_service", svc_map)
    lines += _map("service-nodeports", "inet_proto . inet_service", np_map)
    lines += _map("no-endpoint-services", "ipv4_addr . inet_proto . inet_service", reject_map)
    lines += _map("no-endpoint-nodeports", "inet_proto . inet_service", reject_np)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _map(name: str, key_type: str, elements: list[str]) -> list[str]:
    out = [f"  map {name} {{", f"    type {key_type} : verdict"]
    if elements:
        out.append("    elements = { " + ",\n      ".join(elements) + " }")
    return out + ["  }"]


def _base_chains() -> list[str]:
    mark = f"0x{MASQ_MARK:x}"
    return [
        "  chain reject-chain {", "    meta l4proto tcp reject with tcp reset", "    reject",
        "  }",
        "  chain firewall-check {",
        "    ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
        "    fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports",
        "  }",
        "  chain filter-input {", "    type filter hook input priority -110; policy accept;",
        "    ct state new jump firewall-check", "  }",
        "  chain filter-forward {", "    type filter hook forward priority -110; policy accept;",
        "    ct state new jump firewall-check", "  }",
        "  chain filter-output {", "    type filter hook output priority -110; policy accept;",
        "    ct state new jump firewall-check", "  }",
        "  chain services {",
        "    ip daddr . meta l4proto . th dport vmap @service-ips",
        "    fib daddr type local meta l4proto . th dport vmap @service-nodeports",
        "  }",
        "  chain nat-prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
        "    jump services", "  }",
        "  chain nat-output {", "    type nat hook output priority -100; policy accept;",
        "    jump services", "  }",
        "  chain nat-postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        "    jump masquerading", "  }",
        "  chain masquerading {",
        f"    meta mark & {mark} == 0 return",
        f"    meta mark set meta mark ^ {mark}",
        "    masquerade fully-random", "  }",
        "  chain mark-for-masquerade {", f"    meta mark set meta mark | {mark}", "  }",
    ]


def _service_chains(r: PortRule) -> list[str]:
    cid = r.chain_id
    seps = [f"sep-{cid}-{i}" for i in range(len(r.endpoints))]
    out = []
    if r.affinity_timeout:
        for i in range(len(r.endpoints)):
            out += [f"  set aff-{cid}-{i} {{", "    type ipv4_addr",
                    "    flags dynamic,timeout", f"    timeout {int(r.affinity_timeout)}s", "  }"]
    out.append(f"  chain svc-{cid} {{")
    if r.affinity_timeout:
        for i, sep in enumerate(seps):
            out.append(f"    ip saddr @aff-{cid}-{i} goto {sep}")
    if len(seps) == 1:
        out.append(f"    goto {seps[0]}")
    else:
        vm = ", ".join(f"{i} : goto {sep}" for i, sep in enumerate(seps))
        out.append(f"    numgen random mod {len(seps)} vmap {{ {vm} }}")
    out.append("  }")
    for i, ((ip, port), sep) in enumerate(zip(r.endpoints, seps)):
        out += [f"  chain {sep} {{", f"    ip saddr {ip} jump mark-for-masquerade"]
        if r.affinity_timeout:
            out.append(f"    update @aff-{cid}-{i} {{ ip saddr }}")
        out += [f"    meta l4proto {r.protocol} dnat to {ip}:{port}", "  }"]
    return out


# ---- applying ------------------------------------------------------------------------------

async def run_cmd(*args: str, stdin: str | None = None) -> tuple[int, str]:
    p = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await p.communicate(stdin.encode() if stdin is not None else None)
    return p.returncode, out.decode(errors="replace")


class ServiceProxy:
    """Keeps the nftables table in step with Services and Endpoints."""

    def __init__(self, client: Client, *, bridge: str, service_cidr: str,
                 table: str | None = None, debounce: float = DEBOUNCE):
        self.client = client
        self.bridge = bridge
        self.service_cidr = service_cidr
        self.table = table or table_name(bridge)
        self.debounce = debounce
        self.services = client.reflector("services")
        self.endpoints = client.reflector("endpoints")
        self._changed = asyncio.Event()
        self.applied = 0                 # successful transactions
        self.last_script = ""
        self._route = False
        self._localnet_old: str | None = None
        # also on an exit that skips shutdown() (the server's task cancelled, an exception)
        atexit.register(self.cleanup_sync)

    def link_env(self, namespace: str, enable_links: bool) -> dict[str, str]:
        """Service link variables for a container starting now (from the cache)."""
        return service_link_env(list(self.services.cache.values()), namespace, enable_links)

    async def run(self) -> None:
        await asyncio.gather(run_reflector(self.services, self._on_event),
                             run_reflector(self.endpoints, self._on_event),
                             self._apply_loop())

    def _on_event(self, ev) -> None:
        self._changed.set()

    async def _apply_loop(self) -> None:
        await self.services.synced.wait()
        await self.endpoints.synced.wait()
        self._changed.set()
        while True:
            await self._changed.wait()
            await asyncio.sleep(self.debounce)
            self._changed.clear()
            try:
                await self.sync()
            except Exception:
                log.exception("programming services")
                await asyncio.sleep(1.0)
                self._changed.set()

    async def sync(self) -> None:
        script = render(self.table, list(self.services.cache.values()),
                        dict(self.endpoints.cache))
        await self._host_setup()
        if script == self.last_script:
            return
        rc, out = await run_cmd("nft", "-f", "-", stdin=script)
        if rc != 0:
            raise RuntimeError(f"nft -f failed: {out.strip()[:2000]}")
        self.last_script = script
        self.applied += 1

    async def _host_setup(self) -> None:
        """Route for the service CIDR and route_localnet, once the bridge exists."""
        if self._route or not os.path.isdir(f"/sys/class/net/{self.bridge}"):
            return
        path = f"/proc/sys/net/ipv4/conf/{self.bridge}/route_localnet"
        try:
            with open(path) as f:
                self._localnet_old = f.read().strip()
            with open(path, "w") as f:
                f.write("1")
        except OSError as e:
            log.warning("route_localnet on %s: %s", self.bridge, e)
        rc, out = await run_cmd("ip", "route", "replace", self.service_cidr, "dev", self.bridge)
        if rc != 0:
            log.warning("route %s via %s: %s", self.service_cidr, self.bridge, out.strip())
            return
        self._route = True

    async def shutdown(self) -> None:
        """Remove the table, the route and restore route_localnet."""
        await asyncio.to_thread(self.cleanup_sync)

    def cleanup_sync(self) -> None:
        subprocess.run(["nft", "delete", "table", "ip", self.table], capture_output=True)
        self.last_script = ""
        if self._route:
            subprocess.run(["ip", "route", "del", self.service_cidr, "dev", self.bridge],
                           capture_output=True)
            self._route = False
        if self._localnet_old is not None:
            try:
                with open(f"/proc/sys/net/ipv4/conf/{self.bridge}/route_localnet", "w") as f:
                    f.write(self._localnet_old)
            except OSError:
                pass
            self._localnet_old = None


# ---- service links (the kubelet's service environment variables) -------------------------

def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def service_link_env(services, namespace: str, enable_links: bool = True) -> dict[str, str]:
    """`<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT>]` and the docker-link variables
    for the services of the pod's namespace (with enableServiceLinks) and, always, the
    `kubernetes` service of the default namespace. Services without a cluster IP (headless,
    ExternalName) give none."""
    env: dict[str, str] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or spec.get("type") == "ExternalName" or \
                not spec.get("ports"):
            continue
        master = meta.get("namespace") == "default" and meta.get("name") == "kubernetes"
        if not master and not (enable_links and meta.get("namespace") == namespace):
            continue
        prefix = _env_name(meta.get("name", ""))
        ports = spec["ports"]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for i, p in enumerate(ports):
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p["port"])
            proto = (p.get("protocol") or "TCP")
            url = f"{proto.lower()}://{ip}:{p['port']}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            pp = f"{prefix}_PORT_{p['port']}_{proto.upper()}"
            env[pp] = url
            env[f"{pp}_PROTO"] = proto.lower()
            env[f"{pp}_PORT"] = str(p["port"])
            env[f"{pp}_ADDR"] = ip
    return env
