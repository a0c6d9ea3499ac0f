"""Pod network namespaces and the standard CNI plugins (Debian's containernetworking-plugins).

Owns, per pod: a named network namespace (`ip netns add ks-<uid>`, bind-mounted under
/run/netns), the CNI ADD of the loopback network and of the pod network (bridge with
host-local IPAM on the node's pod CIDR, isGateway, no ipMasq, then portmap for hostPorts)
invoked per the CNI specification (CNI_COMMAND / CNI_CONTAINERID / CNI_NETNS / CNI_IFNAME /
CNI_PATH / CNI_ARGS in the environment, the network configuration as JSON on stdin), the
cached ADD result (so the pod IP survives a kubeshim restart), and the teardown: DEL in
reverse order (which releases the IP) and removal of the namespace. Every configuration
file lives under `<data-dir>/cni`. hostNetwork pods never come here.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import shutil
from dataclasses import dataclass, field

log = logging.getLogger("shim.node.network.cni")

CNI_VERSION = "1.0.0"
DEFAULT_CNI_PATH = "/usr/lib/cni"
NETNS_DIR = "/run/netns"
NETWORK_NAME = "kubeshim"
IFNAME = "eth0"


class CNIError(Exception):
    """A failed plugin call; `code`/`msg` come from the plugin's error result when it gave one."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


@dataclass
class PodNetwork:
    """What a pod got: its namespace path and IPs (first is the pod IP)."""
    uid: str
    netns: str
    ips: list[str] = field(default_factory=list)
    result: dict = field(default_factory=dict)


def netns_name(uid: str) -> str:
    return f"ks-{uid}"


def pod_subnet(cluster_cidr: str, index: int = 0, prefix: int = 24) -> str:
    """The `index`-th /`prefix` of the cluster CIDR (node 0 gets 10.42.0.0/24)."""
    net = ipaddress.ip_network(cluster_cidr, strict=False)
    if net.prefixlen >= prefix:
        return str(net)
    size = 1 << (net.max_prefixlen - prefix)
    return str(ipaddress.ip_network((int(net.network_address) + index * size, prefix)))


def bridge_config(*, bridge: str, subnet: str, ipam_dir: str, routes: list[str]) -> dict:
    """The bridge plugin's configuration (host-local IPAM, the host is the gateway)."""
    return {
        "type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
        "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                 "routes": [{"dst": r} for r in routes], "dataDir": ipam_dir},
    }


def network_list(*, bridge: str, subnet: str, ipam_dir: str, routes: list[str]) -> dict:
    """The pod network as a CNI configuration list: bridge, then portmap."""
    return {"cniVersion": CNI_VERSION, "name": NETWORK_NAME, "plugins": [
        bridge_config(bridge=bridge, subnet=subnet, ipam_dir=ipam_dir, routes=routes),
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ]}


def loopback_list() -> dict:
    return {"cniVersion": CNI_VERSION, "name": "cni-loopback", "plugins": [{"type": "loopback"}]}


def port_mappings(pod: dict) -> list[dict]:
    """runtimeConfig.portMappings of the pod's hostPorts (what portmap wants)."""
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append({"hostPort": int(p["hostPort"]), "containerPort": int(p["containerPort"]),
                            "protocol": (p.get("protocol") or "TCP").lower(),
                            **({"hostIP": p["hostIP"]} if p.get("hostIP") else {})})
    return out


def result_ips(result: dict) -> list[str]:
    """Pod IPs (without prefix length) from a CNI result, IPv4 first."""
    ips = [str(ipaddress.ip_interface(i["address"]).ip) for i in result.get("ips") or []
           if i.get("address")]
    return sorted(ips, key=lambda ip: ":" in ip)


def plugin_config(net: dict, plugin: dict, prev_result: dict | None,
                  runtime_config: dict | None) -> dict:
    """One plugin's stdin: the list's name/cniVersion, the plugin's keys, prevResult, and the
    runtimeConfig entries for the capabilities it declares."""
    conf = dict(plugin)
    conf["name"] = net["name"]
    conf["cniVersion"] = net["cniVersion"]
    caps = plugin.get("capabilities") or {}
    rc = {k: v for k, v in (runtime_config or {}).items() if caps.get(k)}
    if rc:
        conf["runtimeConfig"] = rc
    if prev_result is not None:
        conf["prevResult"] = prev_result
    return conf


class CNI:
    """Pod sandboxes' network for one node. `data_dir` is kubeshim's data dir."""

    def __init__(self, data_dir: str, *, subnet: str = "10.42.0.0/24", bridge: str = "kubeshim0",
                 routes: list[str] | None = None, cni_path: str = DEFAULT_CNI_PATH):
        self.dir = os.path.join(os.path.abspath(data_dir), "cni")
        self.subnet = subnet
        self.bridge = bridge
        self.routes = routes or []
        self.cni_path = cni_path
        self.ipam_dir = os.path.join(self.dir, "ipam")
        self.results_dir = os.path.join(self.dir, "results")
        self.net = network_list(bridge=bridge, subnet=subnet, ipam_dir=self.ipam_dir,
                                routes=self.routes)
        self.lo = loopback_list()
        self._locks: dict[str, asyncio.Lock] = {}

    def write_config(self) -> str:
        """Write the configuration lists under <data-dir>/cni; returns the pod network's file."""
        os.makedirs(self.results_dir, exist_ok=True)
        os.makedirs(self.ipam_dir, exist_ok=True)
        path = os.path.join(self.dir, "10-kubeshim.conflist")
        with open(path, "w") as f:
            json.dump(self.net, f, indent=2)
        with open(os.path.join(self.dir, "99-loopback.conflist"), "w") as f:
            json.dump(self.lo, f, indent=2)
        return path

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.subnet, strict=False).hosts()))

    # ---- plugin invocation ----
    async def _invoke(self, command: str, conf: dict, container_id: str, netns: str,
                      ifname: str, args: str) -> dict:
        binary = os.path.join(self.cni_path, conf["type"])
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
               "CNI_IFNAME": ifname, "CNI_PATH": self.cni_path, "CNI_ARGS": args,
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        proc = await asyncio.create_subprocess_exec(
            binary, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env)
        out, err = await proc.communicate(json.dumps(conf).encode())
        if proc.returncode != 0:
            try:
                e = json.loads(out)
                msg = e.get("msg", "") + (f": {e['details']}" if e.get("details") else "")
                code = int(e.get("code") or 0)
            except ValueError:
                msg, code = (err or out).decode(errors="replace").strip(), 0
            raise CNIError(f"plugin type=\"{conf['type']}\" failed ({command.lower()}): {msg}",
                           code)
        return json.loads(out) if out.strip() else {}

    async def _add_list(self, net: dict, container_id: str, netns: str, ifname: str, args: str,
                        runtime_config: dict | None) -> dict:
        prev = None
        for plugin in net["plugins"]:
            if plugin["type"] == "portmap" and not (runtime_config or {}).get("portMappings"):
                continue
            prev = await self._invoke("ADD", plugin_config(net, plugin, prev, runtime_config),
                                      container_id, netns, ifname, args) or prev
        return prev or {}

    async def _del_list(self, net: dict, container_id: str, netns: str, ifname: str, args: str,
                        prev: dict | None, runtime_config: dict | None) -> None:
        errors = []
        for plugin in reversed(net["plugins"]):
            if plugin["type"] == "portmap" and not (runtime_config or {}).get("portMappings"):
                continue
            try:
                await self._invoke("DEL", plugin_config(net, plugin, prev, runtime_config),
                                   container_id, netns, ifname, args)
            except CNIError as e:
                errors.append(str(e))
        if errors:
            raise CNIError("; ".join(errors))

    # ---- namespaces ----
    @staticmethod
    async def _ip(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        return proc.returncode, err.decode(errors="replace").strip()

    async def _ensure_netns(self, uid: str) -> str:
        path = os.path.join(NETNS_DIR, netns_name(uid))
        if os.path.exists(path):
            return path
        rc, err = await self._ip("netns", "add", netns_name(uid))
        if rc != 0 and not os.path.exists(path):
            raise CNIError(f"creating network namespace {netns_name(uid)}: {err}")
        return path

    # ---- the pod's network ----
    def _result_path(self, uid: str) -> str:
        return os.path.join(self.results_dir, f"{uid}.json")

    def cached(self, uid: str) -> PodNetwork | None:
        """The network a pod already has (after a restart), or None."""
        try:
            with open(self._result_path(uid)) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            return None
        if not os.path.exists(saved.get("netns", "")):
            return None
        return PodNetwork(uid, saved["netns"], result_ips(saved.get("result") or {}),
                          saved.get("result") or {})

    @staticmethod
    def cni_args(pod: dict) -> str:
        m = pod.get("metadata") or {}
        return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={m.get('namespace', '')};"
                f"K8S_POD_NAME={m.get('name', '')};K8S_POD_INFRA_CONTAINER_ID={m.get('uid', '')};"
                f"K8S_POD_UID={m.get('uid', '')}")

    async def setup(self, pod: dict) -> PodNetwork:
        """Create (or find) the pod's namespace and network; idempotent."""
        uid = pod["metadata"]["uid"]
        async with self._locks.setdefault(uid, asyncio.Lock()):
            have = self.cached(uid)
            if have is not None:
                return have
            netns = await self._ensure_netns(uid)
            args = self.cni_args(pod)
            rc = {"portMappings": port_mappings(pod)}
            try:
                await self._add_list(self.lo, uid, netns, "lo", args, None)
                result = await self._add_list(self.net, uid, netns, IFNAME, args, rc)
            except BaseException:
                await self._teardown(uid, pod, netns, None, rc)
                raise
            os.makedirs(self.results_dir, exist_ok=True)
            tmp = self._result_path(uid) + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"netns": netns, "result": result, "runtimeConfig": rc,
                           "args": args}, f)
            os.replace(tmp, self._result_path(uid))
            return PodNetwork(uid, netns, result_ips(result), result)

    async def teardown(self, uid: str, pod: dict | None = None) -> None:
        """DEL the pod network (releasing its IP), remove the namespace; idempotent."""
        async with self._locks.setdefault(uid, asyncio.Lock()):
            saved: dict = {}
            try:
                with open(self._result_path(uid)) as f:
                    saved = json.load(f)
            except (OSError, ValueError):
                pass
            netns = os.path.join(NETNS_DIR, netns_name(uid))
            await self._teardown(uid, pod, netns, saved.get("result"),
                                 saved.get("runtimeConfig"), saved.get("args"))
        self._locks.pop(uid, None)

    async def _teardown(self, uid: str, pod: dict | None, netns: str, result: dict | None,
                        runtime_config: dict | None, args: str | None = None) -> None:
        args = args or (self.cni_args(pod) if pod else "IgnoreUnknown=1")
        ns_path = netns if os.path.exists(netns) else ""
        try:
            await self._del_list(self.net, uid, ns_path, IFNAME, args, result, runtime_config)
        except CNIError as e:
            log.warning("CNI DEL of pod %s: %s", uid, e)
        if ns_path:
            try:
                await self._del_list(self.lo, uid, ns_path, "lo", args, None, None)
            except CNIError:
                pass
            await self._ip("netns", "delete", netns_name(uid))
        try:
            os.unlink(self._result_path(uid))
        except FileNotFoundError:
            pass

    def known_uids(self) -> set[str]:
        """Pods this node has a network for (cached results and ks-* namespaces)."""
        out = set()
        try:
            out |= {n[:-5] for n in os.listdir(self.results_dir) if n.endswith(".json")}
        except OSError:
            pass
        return out

    def allocated_ips(self) -> list[str]:
        """IPs host-local currently holds for this network (for leak checks)."""
        d = os.path.join(self.ipam_dir, NETWORK_NAME)
        try:
            return sorted(n for n in os.listdir(d) if n[0].isdigit() and "." in n)
        except OSError:
            return []

    def remove_all_state(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
