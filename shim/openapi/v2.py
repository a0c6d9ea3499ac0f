"""The `/openapi/v2` answers: a Swagger 2.0 document, as JSON and as gnostic protobuf.

Owns: the Swagger 2.0 rendering of what the v3 builder describes (the same
operations, parameters and component schemas, rewritten to Swagger 2.0 shapes:
body parameters, `consumes`/`produces`, `#/definitions/` references), its encoding
as a gnostic `openapi_v2.Document` protobuf message (shim/openapi/proto/
openapiv2.proto, our own subset of gnostic's OpenAPIv2.proto with its field
numbers), the content negotiation of GET /openapi/v2 and the per-process cache
(both renderings are built once per set of served resources).

kubectl reads v2 (always `proto.Unmarshal`, whatever the Content-Type) to
validate `kind: List` files client-side, for `explain --output=plaintext-openapiv2`,
and (kubectl <= 1.2x) to check that a PATCH operation of the object's GVK
declares the `dryRun` query parameter before `--dry-run=server`.

Regenerate the protobuf module after editing the .proto:
    cd shim/openapi/proto && python -m grpc_tools.protoc -I. --python_out=. openapiv2.proto
"""
from __future__ import annotations

import threading

import orjson

from shim.openapi import builder, components
from shim.openapi.builder import APIResource, _roots
from shim.openapi.proto import openapiv2_pb2 as pb

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTOBUF_V2_ALT = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_V3_REF = components.V3_REF_PREFIX
_V2_REF = "#/definitions/"


# ---- Swagger 2.0 document (dict) ------------------------------------------------------------

def _v2_ref_schema(node):
    """A schema object of a v3 operation rewritten for Swagger 2.0 (refs only)."""
    if isinstance(node, list):
        return [_v2_ref_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith(_V3_REF):
            out[key] = _V2_REF + value[len(_V3_REF):]
        else:
            out[key] = _v2_ref_schema(value)
    return out


def _v2_parameter(p: dict) -> dict:
    """v3 `{name, in, schema: {type, uniqueItems}}` -> v2 `{name, in, type, uniqueItems}`."""
    out = {k: v for k, v in p.items() if k != "schema"}
    out.update(p.get("schema", {}))
    return out


def _body_parameter(body: dict) -> dict:
    first = next(iter(body["content"].values()))
    out = {"in": "body", "name": "body", "schema": _v2_ref_schema(first["schema"])}
    if body.get("required"):
        out["required"] = True
    return out


def _v2_responses(responses: dict) -> tuple[dict, list[str]]:
    """(v2 responses, produces) from v3 responses."""
    out, produces = {}, []
    for code, resp in responses.items():
        entry = {"description": resp.get("description", "")}
        content = resp.get("content")
        if content:
            if not produces:
                produces = list(content)
            entry["schema"] = _v2_ref_schema(next(iter(content.values()))["schema"])
        out[code] = entry
    return out, produces


def _v2_operation(op: dict) -> dict:
    out: dict = {}
    params = []
    if "requestBody" in op:
        params.append(_body_parameter(op["requestBody"]))
        out["consumes"] = list(op["requestBody"]["content"])
    else:
        out["consumes"] = ["*/*"]
    params += [_v2_parameter(p) for p in op.get("parameters", [])]
    responses, produces = _v2_responses(op["responses"])
    out.update({"description": op.get("description", ""), "operationId": op.get("operationId", "")})
    if params:
        out["parameters"] = params
    out["produces"] = produces
    out["responses"] = responses
    out["schemes"] = ["https"]
    for key in ("tags", "x-kubernetes-action", "x-kubernetes-group-version-kind"):
        if key in op:
            out[key] = op[key]
    return out


def _v2_path(item: dict) -> dict:
    out = {m: _v2_operation(item[m]) for m in _METHODS if m in item}
    if item.get("parameters"):
        out["parameters"] = [_v2_parameter(p) for p in item["parameters"]]
    return out


def _group_versions(resources: list[APIResource]) -> dict[tuple[str, str], list[APIResource]]:
    out: dict[tuple[str, str], list[APIResource]] = {}
    for r in resources:
        out.setdefault((r.group, r.version), []).append(r)
    return out


def build_v2(resources: list[APIResource]) -> dict:
    """The Swagger 2.0 document (as a dict): paths of every served resource plus definitions."""
    paths: dict = {}
    for (group, version), rs in sorted(_group_versions(resources).items()):
        paths.update(builder.build_document(group, version, rs)["paths"])
    names = components.reachable(_roots(resources))
    return {
        "definitions": {n: components.v2_schema(n) for n in names},
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": {p: _v2_path(paths[p]) for p in sorted(paths)},
        "security": [{"BearerToken": []}],
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication",
                                                "in": "header", "name": "authorization",
                                                "type": "apiKey"}},
        "swagger": "2.0",
    }


# ---- gnostic protobuf encoding --------------------------------------------------------------

def _any(value) -> pb.Any:
    """gnostic keeps arbitrary values as YAML text; JSON is valid YAML."""
    return pb.Any(yaml=orjson.dumps(value).decode() + "\n")


def _extensions(d: dict) -> list[pb.NamedAny]:
    return [pb.NamedAny(name=k, value=_any(v)) for k, v in d.items() if k.startswith("x-")]


_SCHEMA_STR = {"$ref": "_ref", "format": "format", "title": "title", "description": "description",
               "pattern": "pattern", "discriminator": "discriminator"}
_SCHEMA_NUM = {"multipleOf": "multiple_of", "maximum": "maximum", "minimum": "minimum"}
_SCHEMA_INT = {"maxLength": "max_length", "minLength": "min_length", "maxItems": "max_items",
               "minItems": "min_items", "maxProperties": "max_properties",
               "minProperties": "min_properties"}
_SCHEMA_BOOL = {"exclusiveMaximum": "exclusive_maximum", "exclusiveMinimum": "exclusive_minimum",
                "uniqueItems": "unique_items", "readOnly": "read_only"}


def schema_pb(d: dict) -> pb.Schema:
    """One Swagger 2.0 schema object as a gnostic Schema message (unknown keywords dropped)."""
    s = pb.Schema()
    for key, value in d.items():
        if key in _SCHEMA_STR:
            setattr(s, _SCHEMA_STR[key], value)
        elif key in _SCHEMA_NUM:
            setattr(s, _SCHEMA_NUM[key], float(value))
        elif key in _SCHEMA_INT:
            setattr(s, _SCHEMA_INT[key], int(value))
        elif key in _SCHEMA_BOOL:
            setattr(s, _SCHEMA_BOOL[key], bool(value))
        elif key in ("default", "example"):
            getattr(s, key).CopyFrom(_any(value))
        elif key == "enum":
            s.enum.extend(_any(v) for v in value)
        elif key == "required":
            s.required.extend(value)
        elif key == "type":
            s.type.value.extend([value] if isinstance(value, str) else value)
        elif key == "items":
            s.items.schema.extend(schema_pb(x) for x in (value if isinstance(value, list) else [value]))
        elif key == "allOf":
            s.all_of.extend(schema_pb(x) for x in value)
        elif key == "properties":
            s.properties.SetInParent()
            s.properties.additional_properties.extend(
                pb.NamedSchema(name=n, value=schema_pb(v)) for n, v in value.items())
        elif key == "additionalProperties":
            if isinstance(value, bool):
                s.additional_properties.boolean = value
            else:
                s.additional_properties.schema.CopyFrom(schema_pb(value))
    s.vendor_extension.extend(_extensions(d))
    return s


def _parameter_pb(p: dict) -> pb.ParametersItem:
    item = pb.ParametersItem()
    if "$ref" in p:
        item.json_reference._ref = p["$ref"]
        return item
    if p["in"] == "body":
        body = item.parameter.body_parameter
        body.name, body.required = p["name"], bool(p.get("required"))
        body.description = p.get("description", "")
        setattr(body, "in", "body")
        body.schema.CopyFrom(schema_pb(p["schema"]))
        return item
    nb = item.parameter.non_body_parameter
    sub = {"query": nb.query_parameter_sub_schema, "path": nb.path_parameter_sub_schema,
           "header": nb.header_parameter_sub_schema}[p["in"]]
    sub.name, sub.description = p["name"], p.get("description", "")
    setattr(sub, "in", p["in"])
    sub.required = bool(p.get("required"))
    sub.type = p.get("type", "")
    sub.unique_items = bool(p.get("uniqueItems"))
    return item


def _operation_pb(op: dict) -> pb.Operation:
    out = pb.Operation(description=op.get("description", ""), operation_id=op.get("operationId", ""),
                       tags=op.get("tags", []), consumes=op.get("consumes", []),
                       produces=op.get("produces", []), schemes=op.get("schemes", []))
    out.parameters.extend(_parameter_pb(p) for p in op.get("parameters", []))
    for code, resp in op.get("responses", {}).items():
        r = pb.Response(description=resp.get("description", ""))
        if "schema" in resp:
            r.schema.schema.CopyFrom(schema_pb(resp["schema"]))
        out.responses.response_code.append(
            pb.NamedResponseValue(name=code, value=pb.ResponseValue(response=r)))
    out.vendor_extension.extend(_extensions(op))
    return out


def _path_item_pb(item: dict) -> pb.PathItem:
    out = pb.PathItem()
    for method in _METHODS:
        if method in item:
            getattr(out, method).CopyFrom(_operation_pb(item[method]))
    out.parameters.extend(_parameter_pb(p) for p in item.get("parameters", []))
    return out


def document_pb(doc: dict) -> pb.Document:
    """A Swagger 2.0 document (dict) as a gnostic openapi_v2.Document message."""
    out = pb.Document(swagger=doc["swagger"])
    out.info.title, out.info.version = doc["info"]["title"], doc["info"]["version"]
    out.paths.path.extend(pb.NamedPathItem(name=p, value=_path_item_pb(v))
                          for p, v in doc["paths"].items())
    out.definitions.additional_properties.extend(
        pb.NamedSchema(name=n, value=schema_pb(v)) for n, v in doc["definitions"].items())
    for name, sec in doc.get("securityDefinitions", {}).items():
        key = pb.ApiKeySecurity(type=sec["type"], name=sec["name"], description=sec["description"])
        setattr(key, "in", sec["in"])
        out.security_definitions.additional_properties.append(pb.NamedSecurityDefinitionsItem(
            name=name, value=pb.SecurityDefinitionsItem(api_key_security=key)))
    for req in doc.get("security", []):
        out.security.append(pb.SecurityRequirement(additional_properties=[
            pb.NamedStringArray(name=n, value=pb.StringArray(value=v)) for n, v in req.items()]))
    return out


# ---- cached renderings and HTTP answer ------------------------------------------------------

_cache: dict[tuple[str, str], bytes] = {}
_lock = threading.Lock()


def _cached(resources: list[APIResource], form: str) -> bytes:
    key = (builder._cache_key(resources), form)
    with _lock:
        if key not in _cache:
            doc = build_v2(resources)
            _cache[(key[0], "json")] = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            _cache[(key[0], "protobuf")] = document_pb(doc).SerializeToString(deterministic=True)
        return _cache[key]


def v2_protobuf(resources: list[APIResource]) -> bytes:
    """The serialized gnostic openapi_v2.Document of the served resources (built once)."""
    return _cached(resources, "protobuf")


def v2_json(resources: list[APIResource]) -> bytes:
    """The Swagger 2.0 JSON document of the served resources (built once)."""
    return _cached(resources, "json")


def serve_v2(resources: list[APIResource], accept: str | None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) for GET /openapi/v2: protobuf when asked, else JSON."""
    if accept and ("proto-openapi.spec.v2" in accept):
        # Go's mime parser rejects the "@" form, so the answer always names the dotted one.
        return 200, {"Content-Type": PROTOBUF_V2_ALT}, v2_protobuf(resources)
    return 200, {"Content-Type": "application/json"}, v2_json(resources)
