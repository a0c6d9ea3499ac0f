"""The `/openapi/v2` answers.

kubectl fetches `/openapi/v2` (always protobuf-decoded as a gnostic
openapi_v2.Document) only as a fallback, and — because the v3 verifier declares
`v1/List` unsupported — to validate `kind: List` files client-side. An empty
protobuf message is a valid, empty Document: kubectl then finds no schema for the
items and skips client-side validation ("resource is not present"), while the
server still applies fieldValidation to every item it receives. That is what
`v2_protobuf` serves for now (a real gnostic document is not built yet).

`v2_json` is the Swagger 2.0 form (definitions of the served kinds, no paths) for
clients asking `Accept: application/json`.
"""
from __future__ import annotations

import orjson

from shim.openapi import components
from shim.openapi.builder import APIResource, _roots

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTOBUF_V2_ALT = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def v2_protobuf(resources: list[APIResource]) -> bytes:
    """An empty gnostic openapi_v2.Document (zero-length protobuf message)."""
    del resources  # the empty document does not depend on what is served
    return b""


def v2_json(resources: list[APIResource]) -> bytes:
    """A Swagger 2.0 document carrying the definitions of the served kinds."""
    names = components.reachable(_roots(resources))
    doc = {
        "definitions": {n: components.v2_schema(n) for n in names},
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": {},
        "swagger": "2.0",
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def serve_v2(resources: list[APIResource], accept: str | None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) for GET /openapi/v2: protobuf when asked, else JSON."""
    if accept and ("proto-openapi.spec.v2" in accept):
        return 200, {"Content-Type": PROTOBUF_V2_ALT}, v2_protobuf(resources)
    return 200, {"Content-Type": "application/json"}, v2_json(resources)
