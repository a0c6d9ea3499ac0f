"""The HTTP face: a lean ASGI app that routes Kubernetes REST paths to the generic verbs.

No framework on the hot path (a FastAPI route costs ~3.8x a bare ASGI handler on
these machines): paths are split once, the kind's strategy is looked up in the
registry, and the verb in rest.py does the work. Every failure leaves as a
metav1.Status; no request can take the server down.
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qsl

import orjson

from shim.resources.base import Registry, Resource
from shim.store.base import Compacted

from . import codec, errors
from .discovery import AGG_V2, AGG_V2BETA1, Discovery
from .errors import StatusError
from .requestinfo import RequestInfo, UserInfo, resource_verb
from .rest import REST, DeleteOptions, ListOptions, WriteOptions, parse_bool, parse_rv

log = logging.getLogger("shim.api")

JSON_HDR = (b"content-type", b"application/json")
BOOKMARK_INTERVAL = 60.0


class Request:
    __slots__ = ("scope", "receive", "method", "path", "query", "headers", "_body", "user", "info")

    def __init__(self, scope, receive):
        self.scope = scope
        self.receive = receive
        self.method = scope["method"]
        self.path = scope["path"]
        qs = scope.get("query_string") or b""
        self.query: dict[str, str] = {}
        if qs:
            for k, v in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
                if k in self.query and k in ("command",):
                    self.query[k] += "\x00" + v
                else:
                    self.query.setdefault(k, v)
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self._body: bytes | None = None
        self.user: UserInfo | None = None      # set by the authenticator
        self.info: RequestInfo | None = None   # set by routing, read by the authorizer

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    async def body(self) -> bytes:
        if self._body is None:
            declared = self.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > codec.MAX_BODY:
                raise errors.too_large()
            chunks = []
            size = 0
            while True:
                msg = await self.receive()
                if msg["type"] == "http.disconnect":
                    break
                b = msg.get("body", b"")
                size += len(b)
                if size > codec.MAX_BODY:
                    raise errors.too_large()
                chunks.append(b)
                if not msg.get("more_body"):
                    break
            self._body = b"".join(chunks)
        return self._body


async def respond(send, code: int, body: bytes, content_type: bytes = b"application/json",
                  headers: list | None = None) -> None:
    hdrs = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        hdrs.extend(headers)
    await send({"type": "http.response.start", "status": code, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


def warning_headers(warnings: list[str]) -> list:
    out = []
    for w in warnings:
        out.append((b"warning", ('299 - "' + w.replace('"', '\\"') + '"').encode()))
    return out


class App:
    def __init__(self, rest: REST, registry: Registry, discovery: Discovery, *, openapi=None,
                 ready=lambda: True, extra_routes=None):
        self.rest = rest
        self.registry = registry
        self.discovery = discovery
        self.openapi = openapi
        self.ready = ready
        self.extra_routes = extra_routes or {}
        self.subresource_handlers: dict[tuple[str, str], object] = {}   # (plural, sub) -> handler
        # create-only kinds that are answered, not stored (access reviews): (group, plural) ->
        # async handler(app, req, send, res, ns)
        self.create_handlers: dict[tuple[str, str], object] = {}
        # authentication: async (req) -> UserInfo, raising StatusError 401; None = everyone is admin
        self.authenticator = None
        # authorization: async (user, RequestInfo) -> None, raising StatusError 403; None = allow
        self.authorizer = None

    # ---- ASGI entry ---------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        req = Request(scope, receive)
        try:
            await self.route(req, send)
        except StatusError as e:
            await self.send_status(send, e)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as e:  # never let a request take the server down
            log.exception("internal error serving %s %s", req.method, req.path)
            await self.send_status(send, errors.internal(f"{type(e).__name__}: {e}"))

    async def send_status(self, send, e: StatusError) -> None:
        hdrs = [(k.encode(), v.encode()) for k, v in e.headers.items()]
        try:
            await respond(send, e.code, orjson.dumps(e.status()), headers=hdrs)
        except Exception:   # response already started (a broken stream): nothing more to say
            pass

    async def websocket(self, scope, receive, send):
        handler = self.extra_routes.get("websocket")
        if handler is None:
            await send({"type": "websocket.close", "code": 1008})
            return
        await handler(scope, receive, send)

    # ---- routing ------------------------------------------------------------------------
    async def route(self, req: Request, send) -> None:
        path = req.path
        if self.authenticator is not None:
            req.user = await self.authenticator(req)
        parts = [p for p in path.split("/") if p]
        is_resource = len(parts) >= 3 and (parts[0] == "api" or (parts[0] == "apis" and len(parts) >= 4))
        if not is_resource and self.authorizer is not None:
            req.info = RequestInfo(False, path, req.method.lower())
            await self.authorizer(req.user, req.info)
        if not parts:
            return await self.root(req, send)
        head = parts[0]
        if head == "api":
            if len(parts) == 1:
                return await self.get_only(req, send, self.api_discovery, legacy=True)
            if parts[1] != "v1":
                raise self.no_route()
            if len(parts) == 2:
                return await self.get_only(req, send, self.resource_list, group="", version="v1")
            return await self.resource(req, send, "", "v1", parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return await self.get_only(req, send, self.api_discovery, legacy=False)
            group = parts[1]
            if group not in self.discovery.groups:
                raise self.no_route()
            if len(parts) == 2:
                body = self.discovery.group(group)
                return await self.get_only(req, send, lambda r: body)
            version = parts[2]
            if (group, version) not in self.discovery.resource_lists:
                raise self.no_route()
            if len(parts) == 3:
                return await self.get_only(req, send, self.resource_list, group=group, version=version)
            return await self.resource(req, send, group, version, parts[3:])
        if head in ("healthz", "livez", "readyz"):
            return await self.health(req, send, head, parts[1:])
        if head == "version" and len(parts) == 1:
            return await self.get_only(req, send, lambda r: self.discovery.version)
        if head == "openapi" and self.openapi is not None:
            return await self.openapi(req, send, parts[1:])
        handler = self.extra_routes.get(path)
        if handler is not None:
            return await handler(req, send)
        raise self.no_route()

    @staticmethod
    def no_route() -> StatusError:
        return StatusError(404, "NotFound", "the server could not find the requested resource", {})

    async def root(self, req, send):
        paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3",
                 "/readyz", "/version"] + [f"/apis/{g}" for g in self.discovery.groups]
        await respond(send, 200, orjson.dumps({"paths": sorted(paths)}))

    async def get_only(self, req, send, fn, **kw):
        if req.method not in ("GET", "HEAD"):
            raise StatusError(405, "MethodNotAllowed",
                              "the server does not allow this method on the requested resource")
        body = fn(req, **kw) if kw else fn(req)
        if isinstance(body, tuple):
            await respond(send, 200, body[0], content_type=body[1],
                          headers=[(b"vary", b"Accept")])
        else:
            await respond(send, 200, body)

    def api_discovery(self, req, legacy: bool):
        params = codec.wants(req.header("accept"), "APIGroupDiscoveryList")
        if params is not None and params.get("g") == "apidiscovery.k8s.io":
            if params.get("v") == "v2":
                return self.discovery.agg[(legacy, "apidiscovery.k8s.io/v2")], AGG_V2.encode()
            if params.get("v") == "v2beta1":
                return (self.discovery.agg[(legacy, "apidiscovery.k8s.io/v2beta1")],
                        AGG_V2BETA1.encode())
        return self.discovery.api if legacy else self.discovery.apis

    def resource_list(self, req, group: str, version: str):
        return self.discovery.resource_lists[(group, version)]

    async def health(self, req, send, which: str, rest: list[str]):
        ok = which != "readyz" or self.ready()
        if rest and rest[0] not in ("ping", "log", "etcd", "poststarthook"):
            raise self.no_route()
        if not ok:
            await respond(send, 500, b"[-]kubeshim-ready failed: reason withheld\nreadyz check failed",
                          content_type=b"text/plain; charset=utf-8")
            return
        if "verbose" in req.query:
            body = f"[+]ping ok\n[+]etcd ok\n{which} check passed\n".encode()
        else:
            body = b"ok"
        await respond(send, 200, body, content_type=b"text/plain; charset=utf-8")

    # ---- resources ----------------------------------------------------------------------
    async def resource(self, req: Request, send, group: str, version: str, parts: list[str]):
        """parts after /api/v1 or /apis/g/v: [res], [res,name], [res,name,sub...],
        [namespaces, ns, res], [namespaces, ns, res, name, sub...]."""
        reg = self.registry
        ns = None
        if parts[0] == "namespaces" and len(parts) >= 3 and group == "" and \
                reg.get(group, version, parts[2]) is not None and \
                reg.get(group, version, parts[2]).namespaced:
            ns = parts[1]
            rest_parts = parts[2:]
        elif parts[0] == "namespaces" and len(parts) >= 3 and group != "":
            ns = parts[1]
            rest_parts = parts[2:]
        else:
            rest_parts = parts
        res = reg.get(group, version, rest_parts[0])
        if res is None:
            raise self.no_route()
        if ns is not None and not res.namespaced:
            raise self.no_route()
        name = rest_parts[1] if len(rest_parts) > 1 else None
        sub = rest_parts[2] if len(rest_parts) > 2 else None
        if self.authorizer is not None:
            verb = resource_verb(req.method, name is not None,
                                 parse_bool(req.query.get("watch")) and sub is None)
            if sub in ("exec", "attach", "portforward", "proxy") and verb == "get":
                verb = "get" if sub == "proxy" else "create"
            req.info = RequestInfo(True, req.path, verb, group, version, ns or "", res.plural,
                                   sub or "", name or "")
            await self.authorizer(req.user, req.info)
        if sub is not None:
            if not res.has_subresource(sub):
                raise self.no_route()
            if len(rest_parts) > 3 and sub != "proxy":
                raise self.no_route()
            return await self.subresource(req, send, res, ns, name, sub, rest_parts[3:])
        m = req.method
        if getattr(res, "virtual", False) and (m != "POST" or name is not None):
            raise self.method_not_allowed()
        if name is None:
            if m == "GET":
                if parse_bool(req.query.get("watch")):
                    return await self.watch(req, send, res, ns)
                return await self.list(req, send, res, ns)
            if m == "POST":
                if res.namespaced and ns is None:
                    raise self.method_not_allowed()
                return await self.create(req, send, res, ns)
            if m == "DELETE":
                if "deletecollection" not in res.verbs:
                    raise errors.method_not_supported(res.plural, "deletecollection", res.group)
                return await self.delete_collection(req, send, res, ns)
            raise self.method_not_allowed()
        if res.namespaced and ns is None:
            raise self.no_route()
        if m == "GET":
            if parse_bool(req.query.get("watch")):
                req.query["fieldSelector"] = _and_selector(req.query.get("fieldSelector", ""),
                                                           f"metadata.name={name}")
                return await self.watch(req, send, res, ns)
            return await self.get(req, send, res, ns, name)
        if m == "PUT":
            return await self.update(req, send, res, ns, name)
        if m == "PATCH":
            return await self.patch(req, send, res, ns, name)
        if m == "DELETE":
            return await self.delete(req, send, res, ns, name)
        raise self.method_not_allowed()

    @staticmethod
    def method_not_allowed() -> StatusError:
        return StatusError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource")

    # ---- output -------------------------------------------------------------------------
    async def send_object(self, req: Request, send, res: Resource, obj: dict | bytes, code: int = 200,
                          warnings: list[str] | None = None) -> None:
        accept = req.header("accept")
        hdrs = warning_headers(warnings) if warnings else None
        if accept and "as=" in accept:
            t = codec.wants(accept, "Table")
            if t is not None:
                o = orjson.loads(obj) if isinstance(obj, bytes) else obj
                body = codec.table(res.kind, [o], api_version=codec.table_version(t),
                                   include=codec.include_object(req.query))
                return await respond(send, code, orjson.dumps(body), headers=hdrs)
            pm = codec.wants(accept, "PartialObjectMetadata")
            if pm is not None:
                o = orjson.loads(obj) if isinstance(obj, bytes) else obj
                return await respond(send, code, orjson.dumps(
                    codec.partial_metadata(o, f"meta.k8s.io/{pm.get('v', 'v1')}")), headers=hdrs)
        elif accept:
            codec.check_acceptable(accept)
        body = obj if isinstance(obj, bytes) else orjson.dumps(obj)
        await respond(send, code, body, headers=hdrs)

    # ---- verbs --------------------------------------------------------------------------
    async def get(self, req, send, res, ns, name):
        entry = await self.rest.get(res, ns, name)
        await self.send_object(req, send, res, entry.raw)

    def list_options(self, req: Request) -> ListOptions:
        q = req.query
        o = ListOptions(label_selector=q.get("labelSelector", ""),
                        field_selector=q.get("fieldSelector", ""),
                        continue_token=q.get("continue", ""),
                        resource_version=q.get("resourceVersion", ""),
                        resource_version_match=q.get("resourceVersionMatch", ""),
                        allow_bookmarks=parse_bool(q.get("allowWatchBookmarks")))
        lim = q.get("limit", "")
        if lim:
            try:
                o.limit = max(0, int(lim))
            except ValueError:
                raise errors.bad_request(f'strconv.ParseInt: parsing "{lim}": invalid syntax') from None
        ts = q.get("timeoutSeconds", "")
        if ts:
            try:
                o.timeout_seconds = int(ts)
            except ValueError:
                raise errors.bad_request(f'strconv.ParseInt: parsing "{ts}": invalid syntax') from None
        if "sendInitialEvents" in q:
            o.send_initial_events = parse_bool(q.get("sendInitialEvents"))
        self._validate_list_options(o, watch=parse_bool(q.get("watch")))
        return o

    @staticmethod
    def _validate_list_options(o: ListOptions, watch: bool) -> None:
        errs = []
        if o.resource_version_match:
            if o.resource_version_match not in ("NotOlderThan", "Exact"):
                errs.append(errors.unsupported("resourceVersionMatch", o.resource_version_match,
                                               ["Exact", "NotOlderThan", ""]))
            elif not o.resource_version:
                errs.append(errors.forbidden_field("resourceVersionMatch",
                                                   "resourceVersionMatch is forbidden unless "
                                                   "resourceVersion is provided"))
            elif o.continue_token:
                errs.append(errors.forbidden_field("resourceVersionMatch",
                                                   "resourceVersionMatch is forbidden when "
                                                   "continue is provided"))
            elif o.resource_version_match == "Exact" and o.resource_version == "0":
                errs.append(errors.forbidden_field("resourceVersionMatch",
                                                   'resourceVersionMatch "exact" is forbidden for '
                                                   'resourceVersion "0"'))
        if o.send_initial_events is not None:
            if not watch:
                errs.append(errors.forbidden_field("sendInitialEvents",
                                                   "sendInitialEvents is forbidden for list"))
            elif o.resource_version_match != "NotOlderThan":
                errs.append(errors.forbidden_field(
                    "resourceVersionMatch", "sendInitialEvents requires setting "
                    "resourceVersionMatch to NotOlderThan"))
        if errs:
            raise errors.invalid("ListOptions", "", errs, "meta.k8s.io")

    async def list(self, req, send, res, ns):
        opts = self.list_options(req)
        if opts.resource_version and opts.resource_version != "0":
            parse_rv(opts.resource_version)
        entries, rev, token, remaining = await self.rest.list(res, ns, opts)
        meta = {"resourceVersion": str(rev)}
        if token:
            meta["continue"] = token
            if remaining is not None:
                meta["remainingItemCount"] = remaining
        accept = req.header("accept")
        if accept and "as=" in accept:
            t = codec.wants(accept, "Table")
            if t is not None:
                body = codec.table(res.kind, [e.obj for e in entries],
                                   api_version=codec.table_version(t),
                                   include=codec.include_object(req.query), list_meta=meta)
                return await respond(send, 200, orjson.dumps(body))
            pm = codec.wants(accept, "PartialObjectMetadataList")
            if pm is not None:
                av = f"meta.k8s.io/{pm.get('v', 'v1')}"
                body = {"kind": "PartialObjectMetadataList", "apiVersion": av, "metadata": meta,
                        "items": [codec.partial_metadata(e.obj, av) for e in entries]}
                return await respond(send, 200, orjson.dumps(body))
        elif accept:
            codec.check_acceptable(accept)
        # splice the stored JSON bytes: no per-item re-encoding on the hot path
        head = orjson.dumps({"kind": res.kind + "List", "apiVersion": res.api_version,
                             "metadata": meta})[:-1]
        body = head + b',"items":[' + b",".join(e.raw for e in entries) + b"]}"
        await respond(send, 200, body)

    def write_options(self, req: Request, body: bytes | None = None) -> WriteOptions:
        q = req.query
        dry = q.get("dryRun", "")
        if dry and dry != "All":
            raise errors.invalid("CreateOptions", "", [errors.unsupported("dryRun", [dry], ["All"])],
                                 "meta.k8s.io")
        fv = q.get("fieldValidation", "") or "Warn"
        if fv not in ("Ignore", "Warn", "Strict"):
            raise errors.invalid("CreateOptions", "", [errors.unsupported(
                "fieldValidation", fv, ["Ignore", "Strict", "Warn"])], "meta.k8s.io")
        manager = q.get("fieldManager", "")
        if not manager:
            ua = req.header("user-agent")
            manager = ua.split("/", 1)[0] if ua else ""
        return WriteOptions(dry_run=bool(dry), field_manager=manager, field_validation=fv,
                            force=parse_bool(q.get("force")), raw_body=body, user=req.user)

    async def read_object(self, req: Request, res: Resource) -> tuple[dict, bytes]:
        body = await req.body()
        if not body:
            raise errors.bad_request("the object provided is unrecognized (must be of type "
                                     f"{res.kind}): Object 'Kind' is missing in ''")
        obj = codec.decode_body(req.header("content-type"), body, res.kind, res.version)
        if not isinstance(obj, dict):
            raise errors.bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a '
                                     f'{res.kind}: json: cannot unmarshal {type(obj).__name__} into '
                                     f'Go value of type struct')
        return obj, body

    async def create(self, req, send, res, ns):
        handler = self.create_handlers.get((res.group, res.plural))
        if handler is not None:
            return await handler(self, req, send, res, ns)
        obj, body = await self.read_object(req, res)
        opts = self.write_options(req, body if codec.media_type(req.header("content-type")) in
                                  (codec.JSON, "") else None)
        entry = await self.rest.create(res, ns, obj, opts)
        await self.send_object(req, send, res, entry.raw, 201, opts.warnings)

    async def update(self, req, send, res, ns, name, subresource=None):
        obj, body = await self.read_object(req, res)
        opts = self.write_options(req, body if codec.media_type(req.header("content-type")) in
                                  (codec.JSON, "") else None)
        entry, created = await self.rest.update(res, ns, name, obj, opts, subresource)
        await self.send_object(req, send, res, entry.raw, 201 if created else 200, opts.warnings)

    async def patch(self, req, send, res, ns, name, subresource=None):
        body = await req.body()
        ctype = codec.media_type(req.header("content-type"))
        opts = self.write_options(req)
        if opts.force and ctype != "application/apply-patch+yaml":
            raise errors.invalid("PatchOptions", "", [errors.forbidden_field(
                "force", "may not be specified for non-apply patch")], "meta.k8s.io")
        if ctype == "application/apply-patch+yaml":
            apply = self.extra_routes.get("apply")
            if apply is None:
                raise errors.unsupported_media_type(ctype, [
                    "application/json-patch+json", "application/merge-patch+json",
                    "application/strategic-merge-patch+json"])
            if not req.query.get("fieldManager"):
                opts.field_manager = ""       # apply has no User-Agent default (required)
            entry, code = await apply(self.rest, res, ns, name, body, opts, subresource)
            return await self.send_object(req, send, res, entry.raw, code, opts.warnings)
        entry = await self.rest.patch(res, ns, name, ctype, body, opts, subresource)
        await self.send_object(req, send, res, entry.raw, 200, opts.warnings)

    async def delete_options(self, req: Request) -> DeleteOptions:
        q = req.query
        d = DeleteOptions()
        body = await req.body()
        if body:
            o = codec.decode_body(req.header("content-type"), body, "DeleteOptions")
            if not isinstance(o, dict):
                raise errors.bad_request("the object provided is unrecognized")
            d.grace_period_seconds = o.get("gracePeriodSeconds")
            d.propagation_policy = o.get("propagationPolicy")
            d.orphan_dependents = o.get("orphanDependents")
            pre = o.get("preconditions") or {}
            d.precondition_uid = pre.get("uid")
            d.precondition_rv = pre.get("resourceVersion")
            d.dry_run = "All" in (o.get("dryRun") or [])
        if "gracePeriodSeconds" in q:
            try:
                d.grace_period_seconds = int(q["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("invalid gracePeriodSeconds") from None
        if q.get("propagationPolicy"):
            d.propagation_policy = q["propagationPolicy"]
        if "orphanDependents" in q:
            d.orphan_dependents = parse_bool(q["orphanDependents"])
        if q.get("dryRun"):
            if q["dryRun"] != "All":
                raise errors.invalid("DeleteOptions", "", [errors.unsupported(
                    "dryRun", [q["dryRun"]], ["All"])], "meta.k8s.io")
            d.dry_run = True
        errs = []
        if d.orphan_dependents is not None and d.propagation_policy is not None:
            errs.append(errors.invalid_value("propagationPolicy", d.propagation_policy,
                                             "orphanDependents and deletionPropagation cannot be "
                                             "both set"))
        if d.propagation_policy not in (None, "Orphan", "Background", "Foreground"):
            errs.append(errors.unsupported("propagationPolicy", d.propagation_policy,
                                           ["Foreground", "Background", "Orphan", "nil"]))
        if d.grace_period_seconds is not None and d.grace_period_seconds < 0:
            d.grace_period_seconds = 1 if d.grace_period_seconds != 0 else 0
        if errs:
            raise errors.invalid("DeleteOptions", "", errs, "meta.k8s.io")
        return d

    async def delete(self, req, send, res, ns, name):
        dopts = await self.delete_options(req)
        obj, code, removed = await self.rest.delete(res, ns, name, dopts)
        if res.delete_returns_object or not removed:
            return await self.send_object(req, send, res, obj, code)
        m = obj.get("metadata", {})
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": {"name": name, "group": res.group, "kind": res.plural,
                              "uid": m.get("uid", "")}}
        await respond(send, code, orjson.dumps(status))

    async def delete_collection(self, req, send, res, ns):
        opts = self.list_options(req)
        dopts = await self.delete_options(req)
        objs, rev = await self.rest.delete_collection(res, ns, opts, dopts)
        body = {"kind": res.kind + "List", "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(rev)}, "items": objs}
        await respond(send, 200, orjson.dumps(body))

    # ---- watch --------------------------------------------------------------------------
    async def watch(self, req, send, res, ns):
        opts = self.list_options(req)
        accept = req.header("accept")
        tparams = codec.wants(accept, "Table") if accept and "as=" in accept else None
        include = codec.include_object(req.query) if tparams is not None else ""
        if tparams is None and accept:
            codec.check_acceptable(accept)
        try:
            it = await self.rest.watch(res, ns, opts)
            err = None
        except Compacted as c:
            it = None
            err = errors.expired(f"too old resource version: {c.requested} ({c.current})")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [JSON_HDR, (b"cache-control", b"no-cache, private"),
                                (b"transfer-encoding", b"chunked")]})
        if err is not None:
            await send({"type": "http.response.body",
                        "body": orjson.dumps({"type": "ERROR", "object": err.status()}) + b"\n",
                        "more_body": False})
            return
        first_table = [True]

        def encode(etype: str, entry) -> bytes:
            if tparams is not None:
                t = codec.table(res.kind, [entry.obj], api_version=codec.table_version(tparams),
                                include=include, list_meta={"resourceVersion": str(entry.rev)},
                                columns=first_table[0])
                first_table[0] = False
                return orjson.dumps({"type": etype, "object": t}) + b"\n"
            return b'{"type":"' + etype.encode() + b'","object":' + entry.raw + b"}\n"

        timeout = opts.timeout_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout if timeout and timeout > 0 else 1800)
        next_bookmark = loop.time() + BOOKMARK_INTERVAL
        # timers poke the stream instead of racing it with per-event tasks
        timers = [loop.call_at(deadline, it.poke)]
        if opts.allow_bookmarks:
            timers.append(loop.call_at(next_bookmark, it.poke))

        async def watch_disconnect():
            while (await req.receive())["type"] != "http.disconnect":
                pass
            it.close()

        dtask = asyncio.create_task(watch_disconnect())
        try:
            async for etype, entry, _rev in it:
                if etype == "TICK":
                    now = loop.time()
                    if now >= deadline:
                        break
                    if opts.allow_bookmarks and now >= next_bookmark:
                        next_bookmark = now + BOOKMARK_INTERVAL
                        timers.append(loop.call_at(next_bookmark, it.poke))
                        bm = {"type": "BOOKMARK", "object": {
                            "kind": res.kind, "apiVersion": res.api_version,
                            "metadata": {"resourceVersion": str(it.progress_rev)}}}
                        await send({"type": "http.response.body", "body": orjson.dumps(bm) + b"\n",
                                    "more_body": True})
                    continue
                await send({"type": "http.response.body", "body": encode(etype, entry),
                            "more_body": True})
        except (OSError, RuntimeError):
            pass
        finally:
            for t in timers:
                t.cancel()
            dtask.cancel()
            it.close()
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception:
                pass

    # ---- subresources -------------------------------------------------------------------
    async def subresource(self, req, send, res: Resource, ns, name, sub, extra):
        h = self.subresource_handlers.get((res.plural, sub))
        if h is not None:
            return await h(self, req, send, res, ns, name, extra)
        m = req.method
        if sub == "status":
            if m == "GET":
                return await self.get(req, send, res, ns, name)
            if m == "PUT":
                return await self.update(req, send, res, ns, name, "status")
            if m == "PATCH":
                return await self.patch(req, send, res, ns, name, "status")
            raise self.method_not_allowed()
        raise StatusError(404, "NotFound", "the server could not find the requested resource")


def _and_selector(a: str, b: str) -> str:
    return f"{a},{b}" if a else b
