"""/openapi/v2 and /openapi/v3[/<group-version>]: HTTP wiring of the documents in shim/openapi.

Documents are built on first request (not at start-up) from the registry's kinds.
"""
from __future__ import annotations

from shim.openapi import builder, v2

from . import errors


def api_resources(registry) -> list[builder.APIResource]:
    out = []
    for r in registry.resources:
        out.append(builder.APIResource(
            group=r.group, version=r.version, plural=r.plural, kind=r.kind, namespaced=r.namespaced,
            verbs=list(r.verbs),
            subresources={s.name: (s.kind, s.group, s.version, list(s.verbs)) for s in r.subresources},
            delete_returns_object=r.delete_returns_object))
    return out


class Handler:
    def __init__(self, registry):
        self.registry = registry
        self._resources = None
        self._v3 = None

    @property
    def resources(self):
        if self._resources is None:
            self._resources = api_resources(self.registry)
        return self._resources

    @property
    def v3(self) -> builder.V3Documents:
        if self._v3 is None:
            self._v3 = builder.build_v3(self.resources)
        return self._v3

    async def __call__(self, req, send, parts: list[str]):
        from .app import respond
        if req.method not in ("GET", "HEAD"):
            raise errors.StatusError(405, "MethodNotAllowed", "the server does not allow this method "
                                     "on the requested resource")
        accept = req.header("accept")
        if parts == ["v2"]:
            code, headers, body = v2.serve_v2(self.resources, accept)
        elif parts == ["v3"]:
            code, headers, body = 200, {"Content-Type": "application/json"}, self.v3.root()
        elif parts and parts[0] == "v3":
            code, headers, body = self.v3.serve_group_version("/".join(parts[1:]),
                                                              req.query.get("hash"), accept)
        else:
            raise errors.StatusError(404, "NotFound", "the server could not find the requested "
                                     "resource", {})
        ctype = headers.pop("Content-Type", "application/json").encode()
        await respond(send, code, body, content_type=ctype,
                      headers=[(k.lower().encode(), v.encode()) for k, v in headers.items()])
