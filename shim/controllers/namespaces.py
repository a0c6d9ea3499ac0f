"""Namespace controllers: every namespace has a `default` ServiceAccount and the
`kube-root-ca.crt` ConfigMap (recreated when deleted), and a deleted namespace is
emptied of its content, then finalized (the "kubernetes" finalizer removed).

Like kube-controller-manager's serviceaccounts, root-ca-cert-publisher and namespace
controllers, these are clients of the API verbs (shim/api/rest.py), not of the store.
"""
from __future__ import annotations

import asyncio
import logging

from shim.api import errors
from shim.api.rest import REST, DeleteOptions, ListOptions, WriteOptions
from shim.store.base import Compacted

log = logging.getLogger("shim.controllers.namespaces")


async def _ensure(rest: REST, plural: str, ns: str, obj: dict) -> None:
    res = rest.registry.get("", "v1", plural)
    if await rest.store.get(res.key(ns, obj["metadata"]["name"])) is not None:
        return
    try:
        await rest.create(res, ns, obj, WriteOptions(field_validation="Ignore"))
    except errors.StatusError as e:
        if e.code not in (403, 404, 409):   # namespace going away or already there
            raise


async def ensure_namespace_defaults(rest: REST, ns: str) -> None:
    await _ensure(rest, "serviceaccounts", ns, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                "metadata": {"name": "default", "namespace": ns}})
    await _ensure(rest, "configmaps", ns, {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                     "annotations": {"kubernetes.io/description": (
                         "Contains a CA bundle that can be used to verify the kube-apiserver when "
                         "using internal endpoints such as the internal service IP or "
                         "kubernetes.default.svc. No other usage is guaranteed across distributions "
                         "of Kubernetes clusters.")}},
        "data": {"ca.crt": rest.extras.get("ca_pem", "")}})


async def delete_namespace_content(rest: REST, ns: str) -> int:
    """Delete everything in the namespace; returns how many objects remain."""
    remaining = 0
    for res in rest.registry.resources:
        if not res.namespaced:
            continue
        entries, _, _, _ = await rest.list(res, ns, ListOptions())
        for e in entries:
            m = e.obj["metadata"]
            if m.get("deletionTimestamp"):
                continue          # already going: its finalizers or grace period hold it
            try:
                await rest.delete(res, ns, m["name"], DeleteOptions(propagation_policy="Background"))
            except errors.StatusError as err:
                if err.code != 404:
                    log.warning("deleting %s/%s in %s: %s", res.plural, m["name"], ns, err.message)
        left, _, _, _ = await rest.list(res, ns, ListOptions(limit=1))
        remaining += len(left)
    return remaining


async def finalize_if_empty(rest: REST, ns: str) -> bool:
    from shim.api.subresources import finalize_namespace
    nsres = rest.registry.get("", "v1", "namespaces")
    left = await delete_namespace_content(rest, ns)
    if left:
        return False
    cur = await rest.store.get(nsres.key(None, ns))
    if cur is None:
        return True
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
            "spec": {"finalizers": [f for f in (cur.obj.get("spec") or {}).get("finalizers") or []
                                    if f != "kubernetes"]}}
    await finalize_namespace(rest, nsres, ns, body)
    return True


async def _watch_kind(rest: REST, plural: str, handle) -> None:
    """List+watch a kind forever (relisting on 410), calling handle(type, obj)."""
    res = rest.registry.get("", "v1", plural)
    rv = ""
    while True:
        try:
            it = await rest.watch(res, None, ListOptions(resource_version=rv))
        except Compacted:
            rv = ""
            continue
        try:
            async for etype, entry, rev in it:
                rv = str(rev)
                try:
                    await handle(etype, entry.obj)
                except Exception:
                    log.exception("namespace controller handling %s %s", etype, plural)
        finally:
            it.close()
        await asyncio.sleep(0.1)


async def run(rest: REST) -> None:
    terminating: dict[str, asyncio.Task] = {}

    async def drain(ns: str):
        delay = 0.05
        try:
            while not await finalize_if_empty(rest, ns):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        finally:
            terminating.pop(ns, None)

    async def on_namespace(etype, obj):
        name = obj["metadata"]["name"]
        if etype == "DELETED":
            return
        if obj["metadata"].get("deletionTimestamp"):
            if name not in terminating:
                terminating[name] = asyncio.create_task(drain(name))
            return
        await ensure_namespace_defaults(rest, name)

    async def on_default_object(etype, obj):
        if etype != "DELETED":
            return
        ns = obj["metadata"].get("namespace")
        name = obj["metadata"]["name"]
        if (obj["kind"], name) in (("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")):
            await ensure_namespace_defaults(rest, ns)

    await asyncio.gather(_watch_kind(rest, "namespaces", on_namespace),
                         _watch_kind(rest, "serviceaccounts", on_default_object),
                         _watch_kind(rest, "configmaps", on_default_object))
