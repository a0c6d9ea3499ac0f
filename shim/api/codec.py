"""Request bodies in (JSON, YAML, Kubernetes protobuf) and responses out (JSON, Table,
PartialObjectMetadata), with the media-type rules of the real apiserver."""
from __future__ import annotations

import time

import orjson
import yaml

from . import errors

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MAX_BODY = 3 * 1024 * 1024

ACCEPTED_BODY_TYPES = [JSON, YAML, PROTOBUF]


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


class _StrictYAMLLoader(yaml.SafeLoader):
    pass


def _no_timestamps(loader, node):   # YAML 1.1 timestamps stay strings, as in sigs.k8s.io/yaml
    return loader.construct_scalar(node)


_StrictYAMLLoader.add_constructor("tag:yaml.org,2002:timestamp", _no_timestamps)


def decode_body(content_type: str, body: bytes, kind: str = "", version: str = "v1"):
    """Decode a create/update body into a dict (400 on malformed input)."""
    mt = media_type(content_type) if content_type else JSON
    if mt == PROTOBUF:
        from . import protobuf
        return protobuf.decode(body)
    if mt in (JSON, "application/json-patch+json", "application/merge-patch+json",
              "application/strategic-merge-patch+json", "*/*", ""):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise errors.bad_request(_decode_error(kind, version, str(e))) from None
    if mt in (YAML, "application/apply-patch+yaml", "text/yaml", "application/x-yaml"):
        try:
            return yaml.load(body, Loader=_StrictYAMLLoader)
        except yaml.YAMLError as e:
            raise errors.bad_request(_decode_error(kind, version, f"yaml: {e}")) from None
    raise errors.unsupported_media_type(content_type, ACCEPTED_BODY_TYPES)


def _decode_error(kind: str, version: str, why: str) -> str:
    if kind:
        return f'{kind} in version "{version}" cannot be handled as a {kind}: {why}'
    return f"the object provided is unrecognized: {why}"


# ---- Accept negotiation -----------------------------------------------------------------------

def parse_accept(accept: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in accept.split(","):
        part = part.strip()
        if not part:
            continue
        bits = [b.strip() for b in part.split(";")]
        params = {}
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                params[k.strip()] = v.strip()
        out.append((bits[0].lower(), params))
    return out


def wants(accept: str, as_kind: str) -> dict | None:
    """The first Accept clause asking for `as=<as_kind>` (Table, APIGroupDiscoveryList, ...)."""
    if not accept or "as=" not in accept:
        return None
    for mt, params in parse_accept(accept):
        if params.get("as") == as_kind and mt in (JSON, "application/*", "*/*"):
            return params
    return None


def check_acceptable(accept: str) -> None:
    """406 unless JSON (or a wildcard) is acceptable; protobuf-only clients must fall back."""
    if not accept:
        return
    for mt, params in parse_accept(accept):
        if mt in (JSON, "*/*", "application/*", YAML) and "as" not in params:
            return
        if mt in (JSON,) and params.get("as") in ("Table", "PartialObjectMetadata",
                                                   "PartialObjectMetadataList"):
            return
    raise errors.not_acceptable([JSON, YAML, PROTOBUF])


# ---- Table ------------------------------------------------------------------------------------

def table_version(params: dict) -> str:
    return "meta.k8s.io/v1beta1" if params.get("v") == "v1beta1" else "meta.k8s.io/v1"


def partial_metadata(obj: dict, api_version: str = "meta.k8s.io/v1") -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version,
            "metadata": obj.get("metadata", {})}


def table(kind: str, objs: list[dict], *, api_version: str, include: str,
          list_meta: dict | None = None, columns: bool = True) -> dict:
    from shim.resources import printers
    now = time.time()
    cols = printers.COLUMNS.get(kind) or printers.COLUMNS.get("__default__")
    rows = []
    for o in objs:
        row = {"cells": printers.cells(kind, o, now)}
        conds = printers.conditions(kind, o)
        if conds:
            row["conditions"] = conds
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = partial_metadata(o, api_version)
        rows.append(row)
    return {"kind": "Table", "apiVersion": api_version, "metadata": list_meta or {},
            "columnDefinitions": cols if columns else [], "rows": rows}


def include_object(query: dict) -> str:
    v = query.get("includeObject", "") or "Metadata"
    if v not in ("None", "Metadata", "Object"):
        raise errors.bad_request(f'unrecognized includeObject value: "{v}"')
    return v
