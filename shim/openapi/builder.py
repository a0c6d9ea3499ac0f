"""The served OpenAPI v3 documents (`/openapi/v3` and `/openapi/v3/<group-version>`).

Owns: the `APIResource` description the lead builds from the resource registry,
the per-group-version OpenAPI 3.0 documents (paths and operations shaped like
kube-apiserver's: operationIds, tags, parameters, `x-kubernetes-action`,
`x-kubernetes-group-version-kind`, request bodies, responses, plus every
component schema reachable from the served kinds), their content hashes, the
discovery root, and the HTTP answer for a per-group-version request (hash
redirects, immutable caching headers, Accept negotiation).

kubectl's `--validate=strict` looks in `api/v1` for a PATCH operation tagged with
the object's GVK that declares the `fieldValidation` query parameter; when found it
relies on the server (see fieldvalidation.py) instead of validating client-side.
"""
from __future__ import annotations

import datetime
import email.utils
import hashlib
import os
from dataclasses import dataclass, field

import orjson

import shim
from shim.openapi import components, params as P, schema

JSON_TYPES = ("application/json", "application/vnd.kubernetes.protobuf", "application/yaml")
STREAM_TYPES = JSON_TYPES + ("application/json;stream=watch",
                             "application/vnd.kubernetes.protobuf;stream=watch")
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json")
V3_PROTOBUF_TYPES = ("application/com.github.proto-openapi.spec.v3@v1.0+protobuf",
                     "application/com.github.proto-openapi.spec.v3.v1.0+protobuf")

STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
WATCH_EVENT = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"
RESOURCE_LIST = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"

# Kinds whose DELETE answers with the deleted object rather than a Status.
_RETURNS_DELETED = frozenset({"Pod", "Service", "PersistentVolume", "PersistentVolumeClaim"})


@dataclass
class APIResource:
    """One served resource as the OpenAPI builder needs it.

    subresources: name -> (kind, group, version, verbs), e.g.
    {"status": ("Pod", "", "v1", ["get", "patch", "update"]),
     "scale": ("Scale", "autoscaling", "v1", ["get", "patch", "update"]),
     "exec": ("PodExecOptions", "", "v1", ["create", "get"])}.
    Kinds ending in "Options" are connect subresources (exec, attach, portforward, proxy).
    """
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: list[str] = field(default_factory=list)
    subresources: dict[str, tuple] = field(default_factory=dict)
    delete_returns_object: bool | None = None  # None: the apiserver's choice for the kind


# ---- naming -------------------------------------------------------------------------------

def gv_path(group: str, version: str) -> str:
    """`api/v1` for the core group, `apis/<group>/<version>` otherwise."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _group_words(group: str) -> list[str]:
    if not group:
        return ["core"]
    name = group[: -len(".k8s.io")] if group.endswith(".k8s.io") else group
    return [w for w in name.replace("-", ".").split(".") if w]


def gv_camel(group: str, version: str) -> str:
    """The group-version part of operationIds: CoreV1, AutoscalingV1, RbacAuthorizationV1."""
    return "".join(w[:1].upper() + w[1:] for w in _group_words(group)) + version[:1].upper() + version[1:]


def gv_tag(group: str, version: str) -> str:
    """Operation tag: core_v1, autoscaling_v1, rbacAuthorization_v1."""
    words = _group_words(group)
    head = words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])
    return f"{head}_{version}"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# ---- operation pieces -----------------------------------------------------------------------

def _schema_ref(definition: str | None) -> dict:
    if definition is None:
        return {"type": "object"}
    return {"$ref": components.V3_REF_PREFIX + definition}


def _content(schema_obj: dict, types) -> dict:
    return {t: {"schema": dict(schema_obj)} for t in types}


def _responses(codes: dict[str, tuple[str, dict, tuple]]) -> dict:
    out = {code: {"content": _content(sch, types), "description": desc}
           for code, (desc, sch, types) in codes.items()}
    out["401"] = {"description": "Unauthorized"}
    return out


def _gvk(group: str, version: str, kind: str) -> dict:
    return {"group": group, "kind": kind, "version": version}


class _Ctx:
    """Everything the operation builders need about one resource."""

    def __init__(self, r: APIResource):
        self.r = r
        self.prefix = "/" + gv_path(r.group, r.version)
        self.gv = gv_camel(r.group, r.version)
        self.tag = gv_tag(r.group, r.version)
        self.scope = "Namespaced" if r.namespaced else ""
        self.definition = schema.kind_definition(r.group, r.version, r.kind)
        self.list_definition = schema.kind_definition(r.group, r.version, r.kind + "List")
        self.gvk = _gvk(r.group, r.version, r.kind)

    def op(self, description: str, op_id: str, action: str, responses: dict, gvk: dict | None = None,
           parameters: list | None = None, body: dict | None = None) -> dict:
        out: dict = {"description": description, "operationId": op_id}
        if parameters:
            out["parameters"] = parameters
        if body is not None:
            out["requestBody"] = body
        out["responses"] = responses
        out["tags"] = [self.tag]
        out["x-kubernetes-action"] = action
        out["x-kubernetes-group-version-kind"] = dict(gvk or self.gvk)
        return out


def _object_responses(sch: dict, created: bool = False, accepted: bool = False) -> dict:
    codes = {"200": ("OK", sch, JSON_TYPES)}
    if created:
        codes["201"] = ("Created", sch, JSON_TYPES)
    if accepted:
        codes["202"] = ("Accepted", sch, JSON_TYPES)
    return _responses(codes)


def _body(sch: dict, types=("*/*",), required: bool = True) -> dict:
    out: dict = {"content": _content(sch, types)}
    if required:
        out["required"] = True
    return out


# ---- paths for one resource -----------------------------------------------------------------

def _collection_path(c: _Ctx) -> dict:
    r, kind = c.r, c.r.kind
    item, lst = _schema_ref(c.definition), _schema_ref(c.list_definition)
    path: dict = {}
    if "deletecollection" in r.verbs:
        path["delete"] = c.op(
            f"delete collection of {kind}", f"delete{c.gv}Collection{c.scope}{kind}",
            "deletecollection", _object_responses(_schema_ref(STATUS)),
            parameters=P.params(P.DELETE_COLLECTION), body=_body(_schema_ref(DELETE_OPTIONS), required=False))
    if "list" in r.verbs:
        path["get"] = c.op(
            f"list or watch objects of kind {kind}", f"list{c.gv}{c.scope}{kind}", "list",
            _responses({"200": ("OK", lst, STREAM_TYPES)}), parameters=P.params(P.LIST))
    if "create" in r.verbs:
        path["post"] = c.op(
            f"create a {kind}", f"create{c.gv}{c.scope}{kind}", "post",
            _object_responses(item, created=True, accepted=True),
            parameters=P.params(P.CREATE), body=_body(item))
    if path:
        path["parameters"] = P.params(("namespace", "pretty") if r.namespaced else ("pretty",))
    return path


def _returns_deleted(r: APIResource) -> bool:
    if r.delete_returns_object is not None:
        return r.delete_returns_object
    return r.kind in _RETURNS_DELETED


def _item_path(c: _Ctx) -> dict:
    r, kind = c.r, c.r.kind
    item = _schema_ref(c.definition)
    path: dict = {}
    if "delete" in r.verbs:
        deleted = item if _returns_deleted(r) else _schema_ref(STATUS)
        path["delete"] = c.op(
            f"delete a {kind}", f"delete{c.gv}{c.scope}{kind}", "delete",
            _object_responses(deleted, accepted=True), parameters=P.params(P.DELETE),
            body=_body(_schema_ref(DELETE_OPTIONS), required=False))
    if "get" in r.verbs:
        path["get"] = c.op(f"read the specified {kind}", f"read{c.gv}{c.scope}{kind}", "get",
                           _object_responses(item))
    if "patch" in r.verbs:
        path["patch"] = c.op(
            f"partially update the specified {kind}", f"patch{c.gv}{c.scope}{kind}", "patch",
            _object_responses(item, created=True), parameters=P.params(P.PATCH),
            body=_body(_schema_ref(PATCH), PATCH_TYPES))
    if "update" in r.verbs:
        path["put"] = c.op(
            f"replace the specified {kind}", f"replace{c.gv}{c.scope}{kind}", "put",
            _object_responses(item, created=True), parameters=P.params(P.UPDATE), body=_body(item))
    if path:
        path["parameters"] = _item_params(c, kind)
    return path


def _item_params(c: _Ctx, kind: str, extra=()) -> list:
    keys = ["name", "pretty", *extra] + (["namespace"] if c.r.namespaced else [])
    return P.params(keys, kind)


def _all_namespaces_path(c: _Ctx) -> dict:
    kind = c.r.kind
    op = c.op(f"list or watch objects of kind {kind}", f"list{c.gv}{kind}ForAllNamespaces", "list",
              _responses({"200": ("OK", _schema_ref(c.list_definition), STREAM_TYPES)}))
    return {"get": op, "parameters": P.params(P.LIST + ("pretty",))}


def _watch_paths(c: _Ctx) -> dict[str, dict]:
    r, kind = c.r, c.r.kind
    event = _responses({"200": ("OK", _schema_ref(WATCH_EVENT), STREAM_TYPES)})
    list_desc = (f"watch individual changes to a list of {kind}. deprecated: use the 'watch' "
                 "parameter with a list operation instead.")
    item_desc = (f"watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter "
                 "with a list operation instead, filtered to a single item with the 'fieldSelector' "
                 "parameter.")
    base = f"{c.prefix}/watch"
    ns = "/namespaces/{namespace}" if r.namespaced else ""
    scope_params = ("namespace",) if r.namespaced else ()
    out = {
        f"{base}{ns}/{r.plural}": {
            "get": c.op(list_desc, f"watch{c.gv}{c.scope}{kind}List", "watchlist", event),
            "parameters": P.params(P.LIST + ("pretty",) + scope_params)},
        f"{base}{ns}/{r.plural}/{{name}}": {
            "get": c.op(item_desc, f"watch{c.gv}{c.scope}{kind}", "watch", event),
            "parameters": P.params(P.LIST + ("pretty", "name") + scope_params, kind)},
    }
    if r.namespaced:
        out[f"{base}/{r.plural}"] = {
            "get": c.op(list_desc, f"watch{c.gv}{kind}ListForAllNamespaces", "watchlist", event),
            "parameters": P.params(P.LIST + ("pretty",))}
    return out


def _subresource_path(c: _Ctx, sub: str, spec: tuple) -> dict:
    sub_kind, sub_group, sub_version, verbs = spec
    if sub_kind.endswith("Options"):
        return _connect_path(c, sub, sub_kind, sub_group, sub_version, verbs)
    kind, tail = c.r.kind, f"{c.r.kind}{_cap(sub)}"
    gvk = _gvk(sub_group, sub_version, sub_kind)
    definition = schema.kind_definition(sub_group, sub_version, sub_kind)
    sch = {"type": "string"} if sub == "log" else _schema_ref(definition)
    path: dict = {}
    if "get" in verbs:
        path["get"] = c.op(f"read {sub} of the specified {kind}", f"read{c.gv}{c.scope}{tail}", "get",
                           _object_responses(sch), gvk=gvk)
    if "patch" in verbs:
        path["patch"] = c.op(
            f"partially update {sub} of the specified {kind}", f"patch{c.gv}{c.scope}{tail}", "patch",
            _object_responses(sch, created=True), gvk=gvk, parameters=P.params(P.PATCH),
            body=_body(_schema_ref(PATCH), PATCH_TYPES))
    if "update" in verbs:
        path["put"] = c.op(
            f"replace {sub} of the specified {kind}", f"replace{c.gv}{c.scope}{tail}", "put",
            _object_responses(sch, created=True), gvk=gvk, parameters=P.params(P.UPDATE), body=_body(sch))
    if "create" in verbs:
        path["post"] = c.op(
            f"create {sub} of a {kind}", f"create{c.gv}{c.scope}{tail}", "post",
            _object_responses(sch, created=True, accepted=True), gvk=gvk,
            parameters=P.params(P.CREATE), body=_body(sch))
    if path:
        path["parameters"] = _item_params(c, sub_kind)
    return path


_CONNECT_METHODS = (("get", "get", "Get", "GET"), ("create", "post", "Post", "POST"),
                    ("update", "put", "Put", "PUT"), ("patch", "patch", "Patch", "PATCH"),
                    ("delete", "delete", "Delete", "DELETE"))


def _connect_path(c: _Ctx, sub: str, sub_kind: str, group: str, version: str, verbs) -> dict:
    gvk = _gvk(group, version, sub_kind)
    responses = _responses({"200": ("OK", {"type": "string"}, ("*/*",))})
    path: dict = {}
    for verb, method, word, upper in _CONNECT_METHODS:
        if verb in verbs:
            path[method] = c.op(f"connect {upper} requests to {sub} of {c.r.kind}",
                                f"connect{c.gv}{word}{c.scope}{c.r.kind}{_cap(sub)}", "connect",
                                responses, gvk=gvk)
    if path:
        path["parameters"] = _item_params(c, sub_kind)
    return path


def resource_paths(r: APIResource) -> dict[str, dict]:
    """Every OpenAPI path item for one resource, keyed by URL template."""
    c = _Ctx(r)
    ns = "/namespaces/{namespace}" if r.namespaced else ""
    coll = f"{c.prefix}{ns}/{r.plural}"
    candidates = {coll: _collection_path(c), coll + "/{name}": _item_path(c)}
    if r.namespaced and "list" in r.verbs:
        candidates[f"{c.prefix}/{r.plural}"] = _all_namespaces_path(c)
    if "watch" in r.verbs:
        candidates.update(_watch_paths(c))
    for sub, spec in r.subresources.items():
        candidates[f"{coll}/{{name}}/{sub}"] = _subresource_path(c, sub, spec)
    return {p: item for p, item in candidates.items() if item}


# ---- documents ------------------------------------------------------------------------------

def _resources_path(group: str, version: str) -> dict:
    op = {"description": "get available resources",
          "operationId": f"get{gv_camel(group, version)}APIResources",
          "responses": _responses({"200": ("OK", _schema_ref(RESOURCE_LIST), JSON_TYPES)}),
          "tags": [gv_tag(group, version)]}
    return {"get": op}


def _roots(resources: list[APIResource]) -> list[str]:
    roots = [STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT, RESOURCE_LIST]
    for r in resources:
        roots += [schema.kind_definition(r.group, r.version, r.kind),
                  schema.kind_definition(r.group, r.version, r.kind + "List")]
        roots += [schema.kind_definition(g, v, k) for k, g, v, _ in r.subresources.values()]
    return [n for n in roots if n]


def build_document(group: str, version: str, resources: list[APIResource]) -> dict:
    """The OpenAPI 3.0 document of one group-version (as a dict)."""
    paths = {f"/{gv_path(group, version)}/": _resources_path(group, version)}
    for r in resources:
        paths.update(resource_paths(r))
    schemas = {name: components.v3_schema(name) for name in components.reachable(_roots(resources))}
    return {
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"description": "Bearer Token authentication",
                                                "in": "header", "name": "authorization",
                                                "type": "apiKey"}},
        },
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "openapi": "3.0.0",
        "paths": paths,
    }


def content_hash(data: bytes) -> str:
    """Uppercase hex SHA-512 of the document bytes (the `hash` query value)."""
    return hashlib.sha512(data).hexdigest().upper()


def _http_date(when: datetime.datetime) -> str:
    return email.utils.format_datetime(when.astimezone(datetime.timezone.utc), usegmt=True)


def _wants_json(accept: str | None) -> bool:
    """True if Accept admits JSON (absent, */*, application/*, application/json)."""
    if not accept:
        return True
    for clause in accept.split(","):
        media = clause.split(";", 1)[0].strip().lower()
        if media in ("", "*/*", "application/*", "application/json"):
            return True
    return False


class V3Documents:
    """The built OpenAPI v3 documents: one JSON byte string (and hash) per group-version."""

    def __init__(self, documents: dict[str, bytes]):
        self._docs = {gv: (data, content_hash(data)) for gv, data in documents.items()}
        root = {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={h}"}
                          for gv, (_, h) in sorted(self._docs.items())}}
        self._root = orjson.dumps(root)

    def root(self) -> bytes:
        """The `/openapi/v3` discovery document."""
        return self._root

    def group_versions(self) -> list[str]:
        return sorted(self._docs)

    def group_version(self, path: str) -> tuple[bytes, str] | None:
        """(JSON bytes, hash) for "api/v1" or "apis/<group>/<version>" (leading "/openapi/v3/" ok)."""
        return self._docs.get(_normalise(path))

    def serve_group_version(self, path: str, query_hash: str | None,
                            accept: str | None) -> tuple[int, dict[str, str], bytes]:
        """The HTTP answer for GET /openapi/v3/<path>[?hash=...] as (status, headers, body)."""
        gv = _normalise(path)
        entry = self._docs.get(gv)
        if entry is None:
            return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"404 page not found\n"
        data, digest = entry
        if not _wants_json(accept):
            return 406, {"Content-Type": "text/plain; charset=utf-8"}, (
                b"only the following media types are accepted: application/json\n")
        if query_hash and query_hash != digest:
            location = f"/openapi/v3/{gv}?hash={digest}"
            return 301, {"Location": location, "Content-Type": "text/html; charset=utf-8"}, (
                f'<a href="{location}">Moved Permanently</a>.\n\n'.encode())
        headers = {"Content-Type": "application/json", "ETag": f'"{digest}"'}
        if query_hash:
            now = datetime.datetime.now(datetime.timezone.utc)
            headers.update({"Vary": "Accept", "Cache-Control": "public, immutable",
                            "Expires": _http_date(now.replace(year=now.year + 1)
                                                  if not (now.month == 2 and now.day == 29)
                                                  else now + datetime.timedelta(days=365))})
        return 200, headers, data


def _normalise(path: str) -> str:
    p = path.split("?", 1)[0].strip("/")
    if p.startswith("openapi/v3/"):
        p = p[len("openapi/v3/"):]
    return p


def _cache_key(resources: list[APIResource]) -> str:
    text = repr((shim.KUBE_VERSION, [vars(r) for r in resources]))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_v3(resources: list[APIResource], cache_dir: str | None = None) -> V3Documents:
    """Build (or load from `cache_dir`) the v3 documents for the served resources."""
    by_gv: dict[tuple[str, str], list[APIResource]] = {}
    for r in resources:
        by_gv.setdefault((r.group, r.version), []).append(r)
    cached = _load_cache(cache_dir, resources)
    if cached is not None:
        return V3Documents(cached)
    docs = {gv_path(g, v): orjson.dumps(build_document(g, v, rs), option=orjson.OPT_SORT_KEYS)
            for (g, v), rs in by_gv.items()}
    _store_cache(cache_dir, resources, docs)
    return V3Documents(docs)


def _cache_file(cache_dir: str, resources: list[APIResource]) -> str:
    return os.path.join(cache_dir, f"openapi-v3-{_cache_key(resources)}.json")


def _load_cache(cache_dir: str | None, resources: list[APIResource]) -> dict[str, bytes] | None:
    if not cache_dir:
        return None
    try:
        with open(_cache_file(cache_dir, resources), "rb") as f:
            raw = orjson.loads(f.read())
        return {gv: doc.encode() for gv, doc in raw.items()}
    except (OSError, ValueError):
        return None


def _store_cache(cache_dir: str | None, resources: list[APIResource], docs: dict[str, bytes]) -> None:
    if not cache_dir:
        return
    try:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = _cache_file(cache_dir, resources) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({gv: data.decode() for gv, data in docs.items()}))
        os.replace(tmp, _cache_file(cache_dir, resources))
    except OSError:
        pass
