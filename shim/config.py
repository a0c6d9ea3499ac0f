"""One settings object for kubeshim (flags + KUBESHIM_* environment); nothing else reads os.environ."""
from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Settings:
    data_dir: str = "/var/lib/kubeshim"
    port: int = 6443
    bind_address: str = "127.0.0.1"
    no_node: bool = False
    node_name: str = ""
    service_cidr: str = "10.43.0.0/16"
    cluster_cidr: str = "10.42.0.0/16"
    node_port_range: str = "30000-32767"
    store_history: int = 100_000          # revisions of watch history kept before compaction
    compact_interval: float = 300.0       # seconds between compactions
    log_level: str = "info"
    tls_hosts: list[str] = field(default_factory=list)
    node_monitor_grace_period: float = 40.0   # node lifecycle: seconds without heartbeat
    # node agent (shim/node)
    containerd: str = ""                   # socket of an existing containerd; "" = managed child
    insecure_registries: list[str] = field(default_factory=list)   # host:port pulled over HTTP
    pod_cidr: str = ""                     # this node's pod CIDR; "" = first /24 of cluster_cidr
    cni_bridge: str = "kubeshim0"
    simulated_nodes: int = 0
    # authentication / authorization (shim/api/auth)
    anonymous_auth: bool = False
    token_auth_file: str = ""
    authorization_mode: str = "RBAC"       # comma list: AlwaysAllow, AlwaysDeny, ABAC, RBAC
    authorization_policy_file: str = ""    # ABAC JSON lines

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        s = cls()
        for f in s.__dataclass_fields__:
            env = os.environ.get("KUBESHIM_" + f.upper())
            if env is not None and f not in overrides:
                cur = getattr(s, f)
                if isinstance(cur, bool):
                    setattr(s, f, env.lower() in ("1", "true", "yes"))
                elif isinstance(cur, int):
                    setattr(s, f, int(env))
                elif isinstance(cur, float):
                    setattr(s, f, float(env))
                elif isinstance(cur, list):
                    setattr(s, f, [x for x in env.split(",") if x])
                else:
                    setattr(s, f, env)
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        return s

    @property
    def node_ports(self) -> tuple[int, int]:
        lo, hi = self.node_port_range.split("-")
        return int(lo), int(hi)
