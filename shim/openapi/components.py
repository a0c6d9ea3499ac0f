"""OpenAPI component schemas as the apiserver publishes them, derived from schema.py.

The `kubernetes-validate` definitions are JSON-Schema flavoured (`type: ["string",
"null"]`, `enum` pinned on apiVersion/kind, `$ref` to `#/$defs/...` with sibling
keys). This module turns one definition into the OpenAPI 3.0 shape kube-apiserver
serves under `components.schemas` (plain `type`, `$ref` wrapped in `allOf` when it
carries a description, refs to `#/components/schemas/...`, IntOrString/Quantity as
`oneOf`) and computes the set of definitions reachable from a list of roots.
"""
from __future__ import annotations

import functools

from shim.openapi import schema

V3_REF_PREFIX = "#/components/schemas/"
V2_REF_PREFIX = "#/definitions/"

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _plain_type(t):
    """`["string", "null"]` -> `"string"`; anything else unchanged."""
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return rest[0] if len(rest) == 1 else rest
    return t


def _convert(node, prefix: str, strip_enum_keys: bool = False):
    """Recursively rewrite one schema node (never mutates the input)."""
    if isinstance(node, list):
        return [_convert(x, prefix) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict = {}
    for key, value in node.items():
        if key == "type":
            out["type"] = _plain_type(value)
        elif key == "$ref":
            out["$ref"] = prefix + value.rsplit("/", 1)[-1]
        elif key == "properties":
            out["properties"] = {
                name: _convert_property(name, sub, prefix, strip_enum_keys)
                for name, sub in value.items()}
        elif key in ("x-kubernetes-group-version-kind",):
            out[key] = value
        else:
            out[key] = _convert(value, prefix)
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}]
    return out


def _convert_property(name: str, sub, prefix: str, strip_enum: bool):
    conv = _convert(sub, prefix)
    if strip_enum and name in ("apiVersion", "kind") and isinstance(conv, dict):
        conv.pop("enum", None)
    return conv


def _special(name: str, src: dict) -> dict | None:
    """IntOrString and Quantity have a fixed v3 shape (oneOf without nulls)."""
    desc = {"description": src["description"]} if "description" in src else {}
    if name == INT_OR_STRING:
        return {**desc, "format": "int-or-string",
                "oneOf": [{"type": "integer"}, {"type": "string"}]}
    if name == QUANTITY:
        return {**desc, "oneOf": [{"type": "string"}, {"type": "number"}]}
    return None


@functools.cache
def v3_schema(name: str) -> dict:
    """The `components.schemas[name]` entry for definition `name` (cached; do not mutate)."""
    src = schema.definition(name)
    special = _special(name, src)
    if special is not None:
        return special
    return _convert(src, V3_REF_PREFIX, "x-kubernetes-group-version-kind" in src)


def _v2_node(node):
    """v3 component node -> Swagger 2.0 definition node (refs and oneOf)."""
    if isinstance(node, list):
        return [_v2_node(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref":
            out["$ref"] = V2_REF_PREFIX + value[len(V3_REF_PREFIX):]
        else:
            out[key] = _v2_node(value)
    if "allOf" in out and len(out["allOf"]) == 1 and "$ref" in out["allOf"][0]:
        # Swagger 2.0 documents of the apiserver put $ref next to description.
        out["$ref"] = out.pop("allOf")[0]["$ref"]
    return out


@functools.cache
def v2_schema(name: str) -> dict:
    """The Swagger 2.0 `definitions[name]` entry (cached; do not mutate)."""
    if name in (INT_OR_STRING, QUANTITY):
        src = schema.definition(name)
        out = {"type": "string"}
        if "description" in src:
            out["description"] = src["description"]
        if name == INT_OR_STRING:
            out["format"] = "int-or-string"
        return out
    return _v2_node(v3_schema(name))


def _refs(node, acc: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            acc.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _refs(value, acc)
    elif isinstance(node, list):
        for value in node:
            _refs(value, acc)


@functools.cache
def _direct_refs(name: str) -> frozenset[str]:
    acc: set[str] = set()
    _refs(schema.definition(name), acc)
    return frozenset(acc)


def reachable(roots) -> list[str]:
    """Every definition reachable from `roots` (roots included), sorted by name."""
    defs = schema.definitions()
    seen: set[str] = set()
    stack = [r for r in roots if r in defs]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(n for n in _direct_refs(name) if n not in seen and n in defs)
    return sorted(seen)
