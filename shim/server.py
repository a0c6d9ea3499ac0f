"""`kubeshim server`: wires store, kinds, REST, HTTP, controllers, and serves HTTPS with uvicorn."""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import ssl

from shim.config import Settings

log = logging.getLogger("shim.server")


class Server:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.ready = False
        self.tasks: list[asyncio.Task] = []

    async def build(self):
        from shim.api import subresources
        from shim.api.app import App
        from shim.api.discovery import Discovery
        from shim.api.rest import REST
        from shim.certs import PKI, write_kubeconfig
        from shim.resources.allocators import IPAllocator, PortAllocator
        from shim.resources.registry import build_registry
        from shim.resources.services import rebuild_allocations
        from shim.store.sqlite import SQLiteStore

        s = self.settings
        os.makedirs(s.data_dir, exist_ok=True)
        self.pki = PKI(s.data_dir)
        self.service_ips = IPAllocator(s.service_cidr)
        hosts = ["127.0.0.1", "localhost", "kubernetes", "kubernetes.default",
                 "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                 self.service_ips.first, socket.gethostname()]
        if s.bind_address not in ("0.0.0.0", "::", "127.0.0.1"):
            hosts.append(s.bind_address)
        hosts += s.tls_hosts
        self.pki.ensure(hosts)
        self.store = SQLiteStore(os.path.join(s.data_dir, "db", "state.db"),
                                 history=s.store_history, compact_interval=s.compact_interval)
        await self.store.start()
        self.registry = build_registry()
        field_check = _field_check()
        self.rest = REST(self.store, self.registry, field_check=field_check)
        self.rest.extras["service_ips"] = self.service_ips
        self.rest.extras["node_ports"] = PortAllocator(*s.node_ports)
        self.rest.extras["settings"] = s
        self.rest.extras["ca_pem"] = self.pki.ca_pem()
        from shim.api.admission import default_plugins   # NamespaceLifecycle, LimitRanger, ResourceQuota
        self.rest.admission.extend(default_plugins())
        svcs, _, _, _ = await self.store.list("/registry/services/")
        rebuild_allocations(svcs, self.service_ips, self.rest.extras["node_ports"])
        host = "127.0.0.1" if s.bind_address in ("0.0.0.0", "::") else s.bind_address
        self.url = f"https://{host}:{s.port}"
        self.discovery = Discovery(self.registry, f"{host}:{s.port}")
        self.app = App(self.rest, self.registry, self.discovery, openapi=_openapi_handler(self.registry),
                       ready=lambda: self.ready)
        subresources.install(self.app)
        from shim.node import streams     # pods/exec|attach|portforward WebSockets
        streams.install(self.app, self)
        from shim.api import apply, fieldmanager   # managedFields and server-side apply
        self.rest.field_manager = fieldmanager.FieldManager(self.rest.clock)
        apply.install(self.app)
        from shim.api import auth      # authn/authz hooks, reviews, default RBAC policy
        self.auth = await auth.install(self.app, self.rest, self.pki.dir, s)
        self.kubeconfig = os.path.join(s.data_dir, "kubeconfig.yaml")
        write_kubeconfig(self.kubeconfig, self.url, self.pki)
        from shim.controllers import bootstrap
        await bootstrap.ensure_cluster_objects(self.rest, host, s.port)
        return self

    def ssl_context_kwargs(self) -> dict:
        return dict(ssl_certfile=self.pki.serving_crt, ssl_keyfile=self.pki.serving_key,
                    ssl_ca_certs=self.pki.ca_crt, ssl_cert_reqs=ssl.CERT_OPTIONAL)

    async def run(self):
        import uvicorn

        from shim.api import wsstream
        from shim.api.auth.tls import TLSHttpToolsProtocol, TLSWebSocketProtocol
        await self.build()
        gc.collect()
        gc.freeze()      # what start-up loaded (the store's objects) is never collected
        s = self.settings
        config = uvicorn.Config(self.app, host=s.bind_address, port=s.port, loop="none",
                                http=TLSHttpToolsProtocol,
                                ws=wsstream.lenient_subprotocols(TLSWebSocketProtocol),
                                lifespan="off",
                                access_log=False, log_level="warning",
                                timeout_keep_alive=75, timeout_graceful_shutdown=2,
                                **self.ssl_context_kwargs())
        server = uvicorn.Server(config)
        from shim.controllers import start_controllers
        self.tasks = start_controllers(self.rest) + self.auth.tasks
        self.node = None
        if not s.no_node:      # the node agent on containerd (shim/node/agent.py)
            self.tasks.append(asyncio.create_task(self._start_node(), name="node-start"))
        if s.simulated_nodes:  # KWOK-like nodes without containers (shim/node/simulated.py)
            from shim.node.simulated import run_simulated
            self.tasks.append(asyncio.create_task(run_simulated(self), name="simulated-nodes"))

        async def mark_ready():
            while not server.started:
                await asyncio.sleep(0.01)
            self.ready = True
            print(f"kubeshim: serving on {self.url}\n"
                  f"kubeshim: admin kubeconfig written to {self.kubeconfig}\n"
                  f"kubeshim: export KUBECONFIG={self.kubeconfig}", flush=True)
        self.tasks.append(asyncio.create_task(mark_ready()))
        import signal
        # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler
        # that kills the process before the clean-up below (nft table, node) can run
        signal.signal(signal.SIGTERM, lambda *_: None)
        try:
            await server.serve()
        finally:
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if self.node is not None:
                await self.node.stop()     # containers keep running
            await self.store.close()

    async def _start_node(self):
        from shim.node.agent import NodeRuntime
        try:
            self.node = await NodeRuntime.start(self)
        except Exception:
            log.exception("the node agent could not start; serving the API without a node")


def _field_check():
    try:
        from shim.openapi import fieldvalidation
    except ImportError:
        return None
    return fieldvalidation.check


def _openapi_handler(registry):
    try:
        from shim.api import openapi_http
    except ImportError:
        return None
    return openapi_http.Handler(registry)


def run_server(settings: Settings) -> None:
    # Stored objects are long-lived dicts: with the default thresholds full collections walk
    # them all and stall requests for 50-200 ms. Collect young objects less often.
    gc.set_threshold(50_000, 20, 100)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(Server(settings).run())
