"""The controllers that run inside `kubeshim server`: clients of the API verbs."""
from __future__ import annotations

import asyncio


def start_controllers(rest) -> list[asyncio.Task]:
    tasks = _kopf_controllers(rest)
    return tasks + _api_client_controllers(rest)


def _kopf_controllers(rest) -> list[asyncio.Task]:
    """Replication, garbage collector, namespace and quota controllers: one kopf operator
    (shim/controllers/runtime.py) logged in with the admin kubeconfig."""
    import os

    from shim.controllers import runtime
    settings = rest.extras.get("settings")
    kubeconfig = os.path.join(settings.data_dir, "kubeconfig.yaml") if settings else ""
    if not os.path.exists(kubeconfig):
        return []
    async def run():
        # kopf (and the `kubernetes` package it pulls in) takes ~0.5 s to import: do it off the
        # event loop so the API answers /readyz and requests meanwhile
        import importlib
        await asyncio.to_thread(importlib.import_module, "kopf")
        await runtime.run_in_server(kubeconfig)
    return [asyncio.create_task(run(), name="kopf-controllers")]


def _api_client_controllers(rest) -> list[asyncio.Task]:
    """The scheduler and node lifecycle controller: HTTP API clients (shim/client.py) of
    this server, authenticated with the admin kubeconfig."""
    import os

    from shim.client import Client
    from shim.controllers import endpoints, nodelifecycle, scheduler
    settings = rest.extras.get("settings")
    kubeconfig = os.path.join(settings.data_dir, "kubeconfig.yaml") if settings else ""
    if not os.path.exists(kubeconfig):
        return []
    client = Client.from_kubeconfig(kubeconfig)
    lifecycle = nodelifecycle.NodeLifecycle(client, grace_period=settings.node_monitor_grace_period,
                                            monitor_period=min(5.0, settings.node_monitor_grace_period / 4))
    return [asyncio.create_task(scheduler.Scheduler(client).run(), name="scheduler"),
            asyncio.create_task(lifecycle.run(), name="node-lifecycle-controller"),
            asyncio.create_task(endpoints.run(client), name="endpoint-controller")]
