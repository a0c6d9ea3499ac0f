"""The controllers that run inside `kubeshim server`: clients of the API verbs."""
from __future__ import annotations

import asyncio


def start_controllers(rest) -> list[asyncio.Task]:
    from shim.controllers import namespaces
    return [asyncio.create_task(namespaces.run(rest), name="namespace-controller")]
