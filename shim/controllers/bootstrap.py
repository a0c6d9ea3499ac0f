"""The objects every cluster has from its first start: the four system namespaces and the
`default/kubernetes` Service with its Endpoints pointing at this API server."""
from __future__ import annotations

from shim.api import errors
from shim.api.rest import REST, WriteOptions

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def ensure(rest: REST, plural: str, ns: str | None, obj: dict) -> None:
    res = rest.registry.get("", "v1", plural)
    try:
        await rest.create(res, ns, obj, WriteOptions(field_validation="Ignore"))
    except errors.StatusError as e:
        if e.code != 409:
            raise


async def ensure_cluster_objects(rest: REST, host: str, port: int) -> None:
    for ns in SYSTEM_NAMESPACES:
        await ensure(rest, "namespaces", None, {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": ns}})
    # per-namespace defaults (the namespace controller keeps them afterwards)
    from shim.controllers.namespaces import ensure_namespace_defaults
    for ns in SYSTEM_NAMESPACES:
        await ensure_namespace_defaults(rest, ns)
    ips = rest.extras["service_ips"]
    await ensure(rest, "services", "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ips.first, "clusterIPs": [ips.first],
                 "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}})
    # The apiserver's own endpoints reconciler writes these straight to storage (the address
    # may be loopback, which validation refuses for user-written Endpoints).
    ep_res = rest.registry.get("", "v1", "endpoints")
    key = ep_res.key("default", "kubernetes")
    subsets = [{"addresses": [{"ip": host}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
    cur = await rest.store.get(key)
    if cur is None:
        import uuid

        from shim.api.rest import now_rfc3339
        await rest.store.create(key, {
            "kind": "Endpoints", "apiVersion": "v1",
            "metadata": {"name": "kubernetes", "namespace": "default", "uid": str(uuid.uuid4()),
                         "creationTimestamp": now_rfc3339(),
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": subsets})
    elif cur.obj.get("subsets") != subsets:
        import orjson
        obj = orjson.loads(cur.raw)
        obj["subsets"] = subsets
        await rest.store.update(key, obj, cur.rev)
