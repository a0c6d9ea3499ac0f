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
    sub.add_parser("version", help="print the version")
    a = p.parse_args(argv)
    if a.cmd == "version":
        import shim
        print(f"kubeshim {shim.__version__} (Kubernetes v{shim.KUBE_VERSION})")
        return 0
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


if __name__ == "__main__":
    sys.exit(main())
