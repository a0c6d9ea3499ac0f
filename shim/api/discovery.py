"""Discovery documents: /version, /api, /api/v1, /apis, /apis/<g>/<v>, legacy and aggregated (v2).

Built once from the registry (they only change when the served kinds do) and served
as pre-encoded bytes.
"""
from __future__ import annotations

import hashlib
import platform

import orjson

import shim
from shim.resources.base import Registry, Resource

AGG_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGG_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def version_info() -> dict:
    major, minor, _ = shim.KUBE_VERSION.split(".")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {"major": major, "minor": minor, "gitVersion": f"v{shim.KUBE_VERSION}+kubeshim",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-11-25T00:00:00Z", "goVersion": f"python{platform.python_version()}",
            "compiler": "cpython", "platform": f"linux/{arch}"}


def _storage_hash(r: Resource) -> str:
    import base64
    h = hashlib.sha256(f"{r.group}/{r.version}/{r.kind}".encode()).digest()
    return base64.b64encode(h[:8]).decode()


def api_resource_list(registry: Registry, group: str, version: str) -> dict:
    resources = []
    for r in registry.in_group_version(group, version):
        entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entry["storageVersionHash"] = _storage_hash(r)
        resources.append(entry)
        for s in r.subresources:
            sub = {"name": f"{r.plural}/{s.name}", "singularName": "", "namespaced": r.namespaced,
                   "kind": s.kind, "verbs": list(s.verbs)}
            if (s.group, s.version) != (group, version):
                sub["group"] = s.group
                sub["version"] = s.version
            resources.append(sub)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _agg_resource(r: Resource) -> dict:
    d = {"resource": r.plural,
         "responseKind": {"group": "", "version": "", "kind": r.kind},
         "scope": "Namespaced" if r.namespaced else "Cluster",
         "singularResource": r.singular, "verbs": list(r.verbs)}
    if r.short_names:
        d["shortNames"] = list(r.short_names)
    if r.categories:
        d["categories"] = list(r.categories)
    if r.subresources:
        d["subresources"] = [{
            "subresource": s.name,
            "responseKind": {"group": s.group if (s.group, s.version) != (r.group, r.version) else "",
                             "version": s.version if (s.group, s.version) != (r.group, r.version)
                             else "", "kind": s.kind},
            "verbs": list(s.verbs)} for s in r.subresources]
    return d


def aggregated(registry: Registry, legacy: bool, api_version: str) -> dict:
    items = []
    for group, versions in registry.group_versions().items():
        if (group == "") != legacy:
            continue
        items.append({"metadata": {"name": group, "creationTimestamp": None},
                      "versions": [{"version": v, "freshness": "Current",
                                    "resources": [_agg_resource(r) for r in
                                                  registry.in_group_version(group, v)]}
                                   for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {},
            "items": items}


class Discovery:
    """Pre-encoded discovery bodies."""

    def __init__(self, registry: Registry, server_address: str):
        self.registry = registry
        self.version = orjson.dumps(version_info())
        self.api = orjson.dumps({"kind": "APIVersions", "versions": ["v1"],
                                 "serverAddressByClientCIDRs": [
                                     {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
        groups = []
        for group, versions in registry.group_versions().items():
            if not group:
                continue
            vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": vs, "preferredVersion": vs[0]})
        self.groups = {g["name"]: g for g in groups}
        self.apis = orjson.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        self.resource_lists: dict[tuple[str, str], bytes] = {}
        for group, versions in registry.group_versions().items():
            for v in versions:
                self.resource_lists[(group, v)] = orjson.dumps(api_resource_list(registry, group, v))
        self.agg: dict[tuple[bool, str], bytes] = {}
        for legacy in (True, False):
            for av in ("apidiscovery.k8s.io/v2", "apidiscovery.k8s.io/v2beta1"):
                self.agg[(legacy, av)] = orjson.dumps(aggregated(registry, legacy, av))

    def group(self, name: str) -> bytes | None:
        g = self.groups.get(name)
        if g is None:
            return None
        return orjson.dumps({"kind": "APIGroup", "apiVersion": "v1", **g})
