"""An async HTTP client of the Kubernetes API (aiohttp, JSON): what the node agent, the
scheduler and the other controllers use to talk to a kubeshim (or any Kubernetes) server.

It owns: connection set-up (TLS with a cluster CA, a client certificate or a bearer token,
from a kubeconfig or explicit parameters), URL building for core and grouped resources,
the verbs get / list / create / update / patch (merge, strategic, json, apply) / delete,
raw watch streams (resourceVersion, selectors, bookmarks), and `Reflector`, a
list-then-watch loop that relists on 410 Expired and keeps a local cache (client-go's
reflector + store, in small).

Failed requests raise `shim.api.errors.StatusError` built from the server's metav1.Status
(code, reason, message, details); transport failures raise `ConnectionError`.
Objects in and out are plain JSON dicts, exactly as on the wire.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import ssl
import tempfile
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote, urlencode

import aiohttp
import orjson
import yaml

from shim.api.errors import StatusError

log = logging.getLogger("shim.client")

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


def resource_path(plural: str, namespace: str | None = None, name: str | None = None,
                  subresource: str | None = None, group: str = "", version: str = "v1") -> str:
    """`/api/v1/namespaces/ns/pods/name/status` and the like."""
    parts = ["/api", version] if not group else ["/apis", group, version]
    if namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
    return "/".join(parts)


def status_error(code: int, body: bytes) -> StatusError:
    """The StatusError a failed response stands for (non-Status bodies become reason-less)."""
    try:
        st = orjson.loads(body)
    except orjson.JSONDecodeError:
        st = None
    if isinstance(st, dict) and st.get("kind") == "Status":
        return StatusError(int(st.get("code") or code), st.get("reason", ""),
                           st.get("message", ""), st.get("details"))
    text = body.decode(errors="replace").strip()
    return StatusError(code, "", text or f"the server responded with HTTP {code}")


@dataclass
class WatchEvent:
    type: str          # ADDED | MODIFIED | DELETED | BOOKMARK
    object: dict


# ---- configuration ---------------------------------------------------------------------

@dataclass
class ClientConfig:
    server: str
    ca_file: str | None = None
    ca_data: bytes | None = None          # PEM
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None        # PEM
    key_data: bytes | None = None         # PEM
    token: str | None = None
    token_file: str | None = None
    insecure: bool = False
    user_agent: str = "kubeshim/client"

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_file or self.ca_data:
            ctx = ssl.create_default_context(cafile=self.ca_file,
                                             cadata=self.ca_data.decode() if self.ca_data else None)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        elif self.cert_data:
            _load_cert_data(ctx, self.cert_data, self.key_data or b"")
        return ctx

    def bearer(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file:
            with open(self.token_file) as f:
                return f.read().strip()
        return None


def _load_cert_data(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl only loads certificate chains from files: write them to a private temp file."""
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=True) as f:
        os.chmod(f.name, 0o600)
        f.write(cert.rstrip(b"\n") + b"\n" + key)
        f.flush()
        ctx.load_cert_chain(f.name)


def load_kubeconfig(path: str, context: str | None = None) -> ClientConfig:
    """The server and credentials of a kubeconfig's (current) context."""
    with open(path) as f:
        kc = yaml.safe_load(f) or {}
    base = os.path.dirname(os.path.abspath(path))
    ctx_name = context or kc.get("current-context")
    ctx = _named(kc.get("contexts"), ctx_name, "context")
    cluster = _named(kc.get("clusters"), ctx.get("cluster"), "cluster")
    user = _named(kc.get("users"), ctx.get("user"), "user") if ctx.get("user") else {}

    def file_(d: dict, key: str) -> str | None:
        v = d.get(key)
        return None if not v else (v if os.path.isabs(v) else os.path.join(base, v))

    def data(d: dict, key: str) -> bytes | None:
        return base64.b64decode(d[key]) if d.get(key) else None

    return ClientConfig(server=cluster["server"].rstrip("/"),
                        ca_file=file_(cluster, "certificate-authority"),
                        ca_data=data(cluster, "certificate-authority-data"),
                        insecure=bool(cluster.get("insecure-skip-tls-verify")),
                        cert_file=file_(user, "client-certificate"),
                        key_file=file_(user, "client-key"),
                        cert_data=data(user, "client-certificate-data"),
                        key_data=data(user, "client-key-data"),
                        token=user.get("token"), token_file=file_(user, "tokenFile"))


def _named(items: list | None, name: str | None, what: str) -> dict:
    for it in items or []:
        if it.get("name") == name:
            return it.get(what) or {}
    raise ValueError(f"kubeconfig has no {what} named {name!r}")


# ---- the client --------------------------------------------------------------------------

class Client:
    """Async Kubernetes API client. Use `async with Client(...)` or call close()."""

    def __init__(self, config: ClientConfig | str, *, token: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None, insecure: bool = False, timeout: float = 30.0):
        if isinstance(config, str):
            config = ClientConfig(server=config.rstrip("/"), token=token, ca_file=ca_file,
                                  cert_file=cert_file, key_file=key_file, insecure=insecure)
        self.config = config
        self.timeout = timeout
        self._ssl = config.ssl_context()
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None, **kw) -> "Client":
        return cls(load_kubeconfig(path, context), **kw)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": self.config.user_agent, "Accept": "application/json"}
            bearer = self.config.bearer()
            if bearer:
                headers["Authorization"] = f"Bearer {bearer}"
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=0),
                headers=headers, json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    # ---- plumbing ----
    async def request(self, method: str, path: str, *, query: dict | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout: float | None = None) -> dict:
        """One request; returns the decoded JSON body or raises StatusError/ConnectionError."""
        url = self.config.server + path + _query(query)
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        try:
            async with self._sess().request(
                    method, url, data=data, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout or self.timeout)) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise status_error(resp.status, raw)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise ConnectionError(f"{method} {url}: {e!r}") from e
        return orjson.loads(raw) if raw else {}

    # ---- verbs ----
    async def get(self, plural: str, name: str, namespace: str | None = None, *,
                  group: str = "", version: str = "v1", subresource: str | None = None) -> dict:
        return await self.request("GET", resource_path(plural, namespace, name, subresource,
                                                       group, version))

    async def list(self, plural: str, namespace: str | None = None, *, group: str = "",
                   version: str = "v1", label_selector: str = "", field_selector: str = "",
                   limit: int = 0, resource_version: str = "") -> dict:
        """The whole list (following `continue` when limit is given); the list's
        metadata.resourceVersion is that of the first page."""
        q = {"labelSelector": label_selector, "fieldSelector": field_selector,
             "limit": limit or None, "resourceVersion": resource_version}
        path = resource_path(plural, namespace, group=group, version=version)
        out = await self.request("GET", path, query=q)
        items = out.get("items") or []
        while (out.get("metadata") or {}).get("continue"):
            page = await self.request("GET", path, query={**q, "resourceVersion": None,
                                                          "continue": out["metadata"]["continue"]})
            items += page.get("items") or []
            out["metadata"]["continue"] = (page.get("metadata") or {}).get("continue")
        out["items"] = items
        return out

    async def create(self, plural: str, obj: dict, namespace: str | None = None, *,
                     group: str = "", version: str = "v1", name: str | None = None,
                     subresource: str | None = None, dry_run: bool = False,
                     field_validation: str | None = None) -> dict:
        """POST to the collection (or to NAME/SUBRESOURCE, e.g. pods/binding)."""
        namespace = namespace if namespace is not None else _ns_of(obj)
        q = {"dryRun": "All" if dry_run else None, "fieldValidation": field_validation}
        return await self.request("POST", resource_path(plural, namespace, name, subresource,
                                                        group, version), query=q, body=obj)

    async def update(self, plural: str, obj: dict, namespace: str | None = None, *,
                     group: str = "", version: str = "v1", subresource: str | None = None,
                     dry_run: bool = False) -> dict:
        """PUT the object (its metadata.resourceVersion, if set, is the precondition)."""
        namespace = namespace if namespace is not None else _ns_of(obj)
        name = obj["metadata"]["name"]
        q = {"dryRun": "All" if dry_run else None}
        return await self.request("PUT", resource_path(plural, namespace, name, subresource,
                                                       group, version), query=q, body=obj)

    async def patch(self, plural: str, name: str, patch: Any, namespace: str | None = None, *,
                    type: str = "merge", group: str = "", version: str = "v1",
                    subresource: str | None = None, field_manager: str | None = None,
                    force: bool | None = None, dry_run: bool = False) -> dict:
        """PATCH with type merge | strategic | json | apply (json: a list of operations)."""
        if type not in PATCH_TYPES:
            raise ValueError(f"unknown patch type {type!r}; one of {sorted(PATCH_TYPES)}")
        q = {"fieldManager": field_manager, "dryRun": "All" if dry_run else None,
             "force": None if force is None else ("true" if force else "false")}
        return await self.request("PATCH", resource_path(plural, namespace, name, subresource,
                                                         group, version),
                                  query=q, body=patch, content_type=PATCH_TYPES[type])

    async def delete(self, plural: str, name: str, namespace: str | None = None, *,
                     group: str = "", version: str = "v1",
                     grace_period_seconds: int | None = None,
                     propagation_policy: str | None = None,
                     preconditions: dict | None = None, dry_run: bool = False) -> dict:
        """DELETE; returns what the server returns (the object, or a Status)."""
        body: dict = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if preconditions:
            body["preconditions"] = preconditions
        if dry_run:
            body["dryRun"] = ["All"]
        return await self.request("DELETE", resource_path(plural, namespace, name, None,
                                                          group, version), body=body)

    async def bind(self, namespace: str, pod: str, node: str, uid: str | None = None) -> dict:
        """POST pods/NAME/binding (what the scheduler does)."""
        meta: dict = {"name": pod, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        return await self.create("pods", {"apiVersion": "v1", "kind": "Binding", "metadata": meta,
                                          "target": {"apiVersion": "v1", "kind": "Node",
                                                     "name": node}},
                                 namespace, name=pod, subresource="binding")

    async def watch(self, plural: str, namespace: str | None = None, *, group: str = "",
                    version: str = "v1", resource_version: str = "", label_selector: str = "",
                    field_selector: str = "", allow_bookmarks: bool = True,
                    timeout_seconds: int | None = None) -> AsyncIterator[WatchEvent]:
        """One watch stream. Yields WatchEvents (BOOKMARK included) until the server ends
        it; an ERROR event raises its StatusError (410 Expired: relist and start again)."""
        q = {"watch": "true", "resourceVersion": resource_version,
             "labelSelector": label_selector, "fieldSelector": field_selector,
             "allowWatchBookmarks": "true" if allow_bookmarks else None,
             "timeoutSeconds": timeout_seconds}
        url = self.config.server + resource_path(plural, namespace, group=group,
                                                 version=version) + _query(q)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout,
                                        sock_read=timeout_seconds + 60 if timeout_seconds else None)
        try:
            async with self._sess().get(url, timeout=timeout) as resp:
                if resp.status >= 300:
                    raise status_error(resp.status, await resp.read())
                async for line in _lines(resp.content):
                    ev = orjson.loads(line)
                    if ev.get("type") == "ERROR":
                        o = ev.get("object") or {}
                        raise StatusError(int(o.get("code") or 500), o.get("reason", ""),
                                          o.get("message", ""), o.get("details"))
                    yield WatchEvent(ev["type"], ev["object"])
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise ConnectionError(f"watch {url}: {e!r}") from e

    def reflector(self, plural: str, namespace: str | None = None, **kw) -> "Reflector":
        return Reflector(self, plural, namespace, **kw)


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-delimited chunks of a stream, whatever their length."""
    buf = b""
    async for chunk in content.iter_any():
        buf += chunk
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            line, buf = buf[:i], buf[i + 1:]
            if line.strip():
                yield line
    if buf.strip():
        yield buf


def _query(q: dict | None) -> str:
    if not q:
        return ""
    items = [(k, v) for k, v in q.items() if v not in (None, "")]
    return "?" + urlencode(items) if items else ""


def _ns_of(obj: dict) -> str | None:
    return (obj.get("metadata") or {}).get("namespace") or None


def object_key(obj: dict) -> str:
    """`namespace/name` (or `name` for cluster-scoped objects), client-go's MetaNamespaceKey."""
    m = obj.get("metadata") or {}
    return f"{m['namespace']}/{m['name']}" if m.get("namespace") else m.get("name", "")


# ---- list + watch ------------------------------------------------------------------------

@dataclass
class Reflector:
    """List, then watch from the list's resourceVersion, forever: on 410 Expired relist,
    on a dropped connection re-watch from the last seen version (bookmarks keep it fresh),
    with capped exponential backoff while the server is unreachable.

    `async for ev in reflector:` yields WatchEvents of ADDED / MODIFIED / DELETED; iterating
    a reflector again resumes from its last resourceVersion. After a relist, objects that vanished meanwhile come out as DELETED and changed ones as
    MODIFIED, so a consumer's view always converges. `cache` maps object_key → object;
    `synced` is set once the first list has been delivered.
    """
    client: Client
    plural: str
    namespace: str | None = None
    group: str = ""
    version: str = "v1"
    label_selector: str = ""
    field_selector: str = ""
    min_watch_timeout: int = 300          # client-go: random between 5 and 10 minutes
    max_backoff: float = 5.0
    cache: dict[str, dict] = field(default_factory=dict)
    resource_version: str = ""
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    relists: int = 0

    def _kw(self) -> dict:
        return dict(group=self.group, version=self.version, label_selector=self.label_selector,
                    field_selector=self.field_selector)

    async def _relist(self) -> list[WatchEvent]:
        lst = await self.client.list(self.plural, self.namespace, **self._kw())
        self.relists += 1
        self.resource_version = (lst.get("metadata") or {}).get("resourceVersion", "")
        kind = (lst.get("kind") or "").removesuffix("List")
        api_version = lst.get("apiVersion", "")
        fresh = {}
        for item in lst.get("items") or []:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
            fresh[object_key(item)] = item
        events = [WatchEvent("DELETED", old) for k, old in self.cache.items() if k not in fresh]
        for k, obj in fresh.items():
            old = self.cache.get(k)
            if old is None:
                events.append(WatchEvent("ADDED", obj))
            elif _rv(old) != _rv(obj):
                events.append(WatchEvent("MODIFIED", obj))
        self.cache = fresh
        return events

    def _apply(self, ev: WatchEvent) -> None:
        rv = _rv(ev.object)
        if rv:
            self.resource_version = rv
        if ev.type == "DELETED":
            self.cache.pop(object_key(ev.object), None)
        elif ev.type in ("ADDED", "MODIFIED"):
            self.cache[object_key(ev.object)] = ev.object

    async def __aiter__(self) -> AsyncIterator[WatchEvent]:
        backoff = 0.1
        need_list = not self.resource_version     # iterating again resumes from the last RV
        while True:
            try:
                if need_list:
                    for ev in await self._relist():
                        yield ev
                    need_list = False
                    self.synced.set()
                timeout = random.randint(self.min_watch_timeout, 2 * self.min_watch_timeout)
                async for ev in self.client.watch(self.plural, self.namespace,
                                                  resource_version=self.resource_version,
                                                  timeout_seconds=timeout, **self._kw()):
                    backoff = 0.1
                    self._apply(ev)
                    if ev.type != "BOOKMARK":
                        yield ev
            except StatusError as e:
                if e.code == 410:
                    need_list = True
                    continue
                log.warning("%s watch: %s", self.plural, e.message)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                need_list = True
            except ConnectionError as e:
                log.debug("%s watch: %s", self.plural, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)


def _rv(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")


async def run_reflector(reflector: Reflector, handle: Callable[[WatchEvent], Any]) -> None:
    """Feed every event of a reflector to `handle` (sync or async), logging its failures."""
    async for ev in reflector:
        try:
            r = handle(ev)
            if asyncio.iscoroutine(r):
                await r
        except Exception:
            log.exception("handling %s %s", ev.type, object_key(ev.object))
