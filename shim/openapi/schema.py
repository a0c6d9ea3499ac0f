"""The Kubernetes API schemas kubeshim knows, loaded from the `kubernetes-validate` package.

One source for known fields (strict field validation), merge keys (strategic merge
patch), list types (server-side apply), descriptions (OpenAPI documents, explain).
Definitions are the OpenAPI component schemas of the Kubernetes version kubeshim
reports, keyed by their full name (`io.k8s.api.core.v1.Pod`); `$ref`s inside point
at `#/$defs/<name>`.
"""
from __future__ import annotations

import functools
import os

import orjson

import shim

KUBE_VERSION = shim.KUBE_VERSION  # e.g. "1.32.0"


def _schema_dir() -> str:
    # located without importing the package (its __init__ imports jsonschema: ~0.3 s)
    import importlib.util
    spec = importlib.util.find_spec("kubernetes_validate")
    base = os.path.join(spec.submodule_search_locations[0], "kubernetes-json-schema")
    return os.path.join(base, f"v{KUBE_VERSION}-local")


@functools.cache
def definitions() -> dict[str, dict]:
    """All component schemas by name (cached; ~640 entries)."""
    with open(os.path.join(_schema_dir(), "_definitions.json"), "rb") as f:
        return orjson.loads(f.read())["$defs"]


def definition(name: str) -> dict:
    return definitions()[name]


def ref_name(schema: dict) -> str | None:
    """The definition name a `{"$ref": "#/$defs/<name>"}` schema points at, else None."""
    ref = schema.get("$ref")
    if not ref:
        return None
    return ref.rsplit("/", 1)[-1]


def resolve(schema: dict) -> dict:
    """Follow `$ref` (one level is all the definitions use) to the referenced schema."""
    name = ref_name(schema)
    return definitions()[name] if name else schema


@functools.cache
def gvk_index() -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> definition name, from `x-kubernetes-group-version-kind`."""
    out: dict[tuple[str, str, str], str] = {}
    for name, d in definitions().items():
        for gvk in d.get("x-kubernetes-group-version-kind", ()):
            out.setdefault((gvk.get("group", ""), gvk["version"], gvk["kind"]), name)
    return out


def kind_definition(group: str, version: str, kind: str) -> str | None:
    return gvk_index().get((group, version, kind))
