"""The `kubeshim` command: server | version."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kubeshim", description="A small Kubernetes-compatible server")
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("server", help="run the API server (and node agent)")
    sp.add_argument("--data-dir", default=None)
    sp.add_argument("--port", type=int, default=None)
    sp.add_argument("--bind-address", default=None)
    sp.add_argument("--no-node", action="store_true", default=None,
                    help="run the API and controllers without a node agent")
    sp.add_argument("--node-name", default=None)
    sp.add_argument("--service-cidr", default=None)
    sp.add_argument("--cluster-cidr", default=None)
    sp.add_argument("--service-node-port-range", dest="node_port_range", default=None)
    sp.add_argument("--store-history", type=int, default=None,
                    help="revisions of watch history kept before compaction")
    sp.add_argument("--compact-interval", type=float, default=None)
    sp.add_argument("--tls-san", dest="tls_hosts", action="append", default=None)
    sp.add_argument("--log-level", default=None)
    sp.add_argument("--node-monitor-grace-period", type=float, default=None,
                    help="seconds without node heartbeat before the node is marked Unknown")
    sp.add_argument("--containerd", default=None,
                    help="socket of a running containerd (default: start a private one)")
    sp.add_argument("--insecure-registry", dest="insecure_registries", action="append",
                    default=None, help="registry host:port to pull from over plain HTTP")
    sp.add_argument("--pod-cidr", default=None, help="this node's pod CIDR (default: the first "
                    "/24 of --cluster-cidr)")
    sp.add_argument("--cni-bridge", default=None, help="the pod network's bridge (kubeshim0)")
    sp.add_argument("--simulated-nodes", type=int, default=None,
                    help="add N simulated (KWOK-like) nodes whose pods run without containers")
    sp.add_argument("--anonymous-auth", dest="anonymous_auth", default=None,
                    type=lambda v: v.lower() in ("1", "true", "yes"), nargs="?", const=True,
                    help="allow anonymous requests (system:anonymous); default false")
    sp.add_argument("--token-auth-file", default=None,
                    help="static bearer tokens: CSV token,user,uid,\"group1,group2\"")
    sp.add_argument("--authorization-mode", default=None,
                    help="comma list of AlwaysAllow, AlwaysDeny, ABAC, RBAC (default RBAC)")
    sp.add_argument("--authorization-policy-file", default=None,
                    help="ABAC policy file (JSON lines)")
    sub.add_parser("version", help="print the version")
    ip = sub.add_parser("images", help="import and list the node's images")
    isub = ip.add_subparsers(dest="images_cmd", required=True)
    imp = isub.add_parser("import", help="import OCI / docker archives into containerd")
    imp.add_argument("--data-dir", default=None)
    imp.add_argument("--containerd", default=None)
    imp.add_argument("files", nargs="+")
    ils = isub.add_parser("ls", help="list the images containerd holds")
    ils.add_argument("--data-dir", default=None)
    ils.add_argument("--containerd", default=None)
    cp = sub.add_parser("controllers", help="run the controllers against an API server")
    cp.add_argument("--kubeconfig", required=True)
    cp.add_argument("--context", default=None)
    cp.add_argument("--log-level", default="info")
    a = p.parse_args(argv)
    if a.cmd == "version":
        import shim
        print(f"kubeshim {shim.__version__} (Kubernetes v{shim.KUBE_VERSION})")
        return 0
    if a.cmd == "controllers":
        return _controllers(a)
    if a.cmd == "images":
        return _images(a)
    from shim.config import Settings
    overrides = {k: v for k, v in vars(a).items() if k != "cmd"}
    settings = Settings.from_env(**overrides)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from shim.server import run_server
    try:
        run_server(settings)
    except KeyboardInterrupt:
        pass
    return 0


def _images(a) -> int:
    """`kubeshim images import|ls`: through the server's containerd (started if not running)."""
    import asyncio

    from shim.config import Settings
    settings = Settings.from_env(data_dir=a.data_dir, containerd=a.containerd)
    from shim.node.agent import images_command
    try:
        return asyncio.run(images_command(settings, a.images_cmd, getattr(a, "files", [])))
    except Exception as e:   # noqa: BLE001 - a CLI prints the error
        print(f"error: {e}", file=sys.stderr)
        return 1


def _controllers(a) -> int:
    """`kubeshim controllers --kubeconfig FILE`: replication, GC, namespace, quota (kopf)."""
    import asyncio
    logging.basicConfig(level=a.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from shim.controllers.runtime import run_standalone
    try:
        asyncio.run(run_standalone(a.kubeconfig, a.context))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
