"""How the controllers run: kopf for watching, a small aiohttp client for writing.

Owns the controllers' plumbing, shared by replication, garbage collection, namespace
deletion and quota:
- `connection_from_kubeconfig` turns a kubeconfig into kopf's ConnectionInfo;
- `Api`, a minimal async client of the Kubernetes REST API (kopf has no public write
  client) that raises `ApiError` carrying the server's metav1.Status;
- `Informers`: per-kind caches fed by kopf's stateless handlers. An `@kopf.index`
  handler per kind gives the cache-sync barrier (kopf runs no event handler before every
  index is populated from the initial lists), `@kopf.on.event` delivers DELETED and fans
  changes out to the controllers. Nothing is ever written by kopf itself: no finalizer,
  no annotation, no status, no k8s-event (see `operator_settings`);
- `WorkQueue`: deduplicating keys, one worker per key at a time, retries with backoff —
  the level-triggered loop of kube-controller-manager;
- `run`: starts the operator, in `kubeshim server` (same event loop, admin kubeconfig)
  or standalone (`kubeshim controllers --kubeconfig FILE`).
"""
from __future__ import annotations

import asyncio
import base64
import logging
import signal
import time
from collections import defaultdict
from typing import Any, Awaitable, Callable, Iterable

import orjson

log = logging.getLogger("shim.controllers")

# core/v1 kinds the controllers watch: (plural, kind, namespaced)
WATCHED = (
    ("pods", "Pod", True), ("replicationcontrollers", "ReplicationController", True),
    ("services", "Service", True), ("endpoints", "Endpoints", True),
    ("secrets", "Secret", True), ("configmaps", "ConfigMap", True),
    ("serviceaccounts", "ServiceAccount", True), ("resourcequotas", "ResourceQuota", True),
    ("limitranges", "LimitRange", True), ("namespaces", "Namespace", False),
    ("nodes", "Node", False),
)
PLURAL_OF_KIND = {k: p for p, k, _ in WATCHED}
NAMESPACED = {p: n for p, _, n in WATCHED}


# ---- credentials ------------------------------------------------------------------------

def connection_from_kubeconfig(path: str, context: str | None = None):
    """kopf.ConnectionInfo for the current (or named) context of a kubeconfig file."""
    import kopf
    import yaml
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    ctx_name = context or cfg.get("current-context")
    ctx = _named(cfg.get("contexts"), ctx_name).get("context") or {}
    cluster = _named(cfg.get("clusters"), ctx.get("cluster")).get("cluster") or {}
    user = _named(cfg.get("users"), ctx.get("user")).get("user") or {}
    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_path=cluster.get("certificate-authority"),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=cluster.get("insecure-skip-tls-verify"),
        certificate_path=user.get("client-certificate"),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=user.get("client-key"),
        private_key_data=user.get("client-key-data"),
        token=user.get("token"),
        scheme="Bearer" if user.get("token") else None,
        username=user.get("username"), password=user.get("password"),
        default_namespace=ctx.get("namespace"))


def _named(items, name) -> dict:
    for it in items or []:
        if it.get("name") == name:
            return it
    return (items or [{}])[0] if name is None else {}


def ca_pem(info) -> str:
    """The cluster CA as PEM text (published in every namespace as kube-root-ca.crt)."""
    if info.ca_data:
        data = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
        return data if "BEGIN" in data else base64.b64decode(data).decode()
    if info.ca_path:
        with open(info.ca_path) as f:
            return f.read()
    return ""


# ---- API client -------------------------------------------------------------------------

class ApiError(Exception):
    """A non-2xx answer: code, reason and message of the server's Status."""

    def __init__(self, code: int, status: dict | None, text: str = ""):
        status = status if isinstance(status, dict) else {}
        self.code = code
        self.reason = status.get("reason", "")
        self.message = status.get("message") or text or f"HTTP {code}"
        self.status = status
        super().__init__(self.message)


def path_of(plural: str, ns: str | None = None, name: str | None = None,
            sub: str | None = None) -> str:
    p = "/api/v1"
    if ns and NAMESPACED.get(plural, True):
        p += f"/namespaces/{ns}"
    p += f"/{plural}"
    if name:
        p += f"/{name}"
    if sub:
        p += f"/{sub}"
    return p


class Api:
    """The controllers' HTTP client (JSON over aiohttp, connection pooling, TLS)."""

    def __init__(self, info, *, limit: int = 32):
        self.info = info
        self.server = info.server.rstrip("/")
        self._ssl = info.as_ssl_context() if self.server.startswith("https") else None
        if self._ssl is not None and info.insecure:
            import ssl
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        self._headers = {"Accept": "application/json", "User-Agent": "kube-controller-manager/kubeshim"}
        self._headers.update(info.as_http_headers())
        self._limit = limit
        self._session = None

    async def _sess(self):
        if self._session is None:
            import aiohttp
            conn = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False,
                                        limit=self._limit)
            self._session = aiohttp.ClientSession(connector=conn, headers=self._headers,
                                                  json_serialize=lambda o: orjson.dumps(o).decode())
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str = "application/json", params: dict | None = None) -> Any:
        sess = await self._sess()
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        headers = {"Content-Type": content_type} if data is not None else None
        async with sess.request(method, self.server + path, data=data, params=params,
                                headers=headers) as r:
            raw = await r.read()
            try:
                parsed = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                parsed = None
            if r.status >= 400:
                raise ApiError(r.status, parsed, raw[:300].decode(errors="replace"))
            return parsed

    async def get(self, plural, ns, name, sub=None):
        return await self.request("GET", path_of(plural, ns, name, sub))

    async def list(self, plural, ns=None, **params):
        return await self.request("GET", path_of(plural, ns), params=params or None)

    async def create(self, plural, ns, obj):
        return await self.request("POST", path_of(plural, ns), obj)

    async def replace(self, plural, ns, name, obj, sub=None):
        return await self.request("PUT", path_of(plural, ns, name, sub), obj)

    async def patch(self, plural, ns, name, patch, *, kind: str = "merge", sub=None):
        ctype = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                 "strategic": "application/strategic-merge-patch+json"}[kind]
        return await self.request("PATCH", path_of(plural, ns, name, sub), patch,
                                  content_type=ctype)

    async def delete(self, plural, ns, name, *, propagation: str | None = None,
                     uid: str | None = None, grace: int | None = None):
        body: dict = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation:
            body["propagationPolicy"] = propagation
        if uid:
            body["preconditions"] = {"uid": uid}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        return await self.request("DELETE", path_of(plural, ns, name), body)

    async def delete_collection(self, plural, ns):
        return await self.request("DELETE", path_of(plural, ns),
                                  {"kind": "DeleteOptions", "apiVersion": "v1"})


# ---- caches -----------------------------------------------------------------------------

def rv_int(obj: dict) -> int:
    rv = (obj.get("metadata") or {}).get("resourceVersion") or ""
    return int(rv) if rv.isdigit() else -1


def is_newer_or_same(new: dict, old: dict) -> bool:
    a, b = rv_int(new), rv_int(old)
    return a < 0 or b < 0 or a >= b


class Cache:
    """Objects of one kind by (namespace, name), kept newest-first by resourceVersion.

    Writes the controllers make themselves go in at once (write-through), so a sync right
    after a create or delete sees it before the watch does; deleted uids are remembered so
    a late event cannot bring an object back.
    """

    TOMBSTONES = 20000

    def __init__(self, plural: str):
        self.plural = plural
        self.by_ns: dict[str, dict[str, dict]] = defaultdict(dict)
        self._gone: dict[str, None] = {}

    def get(self, ns: str | None, name: str) -> dict | None:
        return self.by_ns.get(ns or "", {}).get(name)

    def list(self, ns: str | None = None) -> list[dict]:
        if ns is None:
            return [o for objs in self.by_ns.values() for o in objs.values()]
        return list(self.by_ns.get(ns, {}).values())

    def upsert(self, obj: dict) -> tuple[dict | None, bool]:
        """Store obj unless a newer version (or its deletion) is known: (old, changed)."""
        m = obj.get("metadata") or {}
        if m.get("uid") in self._gone:
            return None, False
        objs = self.by_ns[m.get("namespace") or ""]
        old = objs.get(m.get("name"))
        if old is not None and (old.get("metadata") or {}).get("uid") == m.get("uid") and \
                not is_newer_or_same(obj, old):
            return old, False
        objs[m.get("name")] = obj
        return old, old is None or rv_int(old) != rv_int(obj) or old is not obj

    def remove(self, obj: dict) -> dict | None:
        m = obj.get("metadata") or {}
        uid = m.get("uid")
        if uid:
            self._gone[uid] = None
            if len(self._gone) > self.TOMBSTONES:
                for k in list(self._gone)[: self.TOMBSTONES // 2]:
                    del self._gone[k]
        objs = self.by_ns.get(m.get("namespace") or "")
        if not objs:
            return None
        cur = objs.get(m.get("name"))
        if cur is not None and (cur.get("metadata") or {}).get("uid") in (uid, None):
            del objs[m.get("name")]
            return cur
        return None


Listener = Callable[[str, str, dict, dict | None], None]


class Informers:
    """Caches for the WATCHED kinds and the listeners the controllers register on them."""

    def __init__(self):
        self.caches = {plural: Cache(plural) for plural, _, _ in WATCHED}
        self.listeners: list[Listener] = []
        self.synced = asyncio.Event()

    def listen(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def notify(self, plural: str, etype: str, obj: dict, old: dict | None) -> None:
        for fn in self.listeners:
            try:
                fn(plural, etype, obj, old)
            except Exception:
                log.exception("listener failed on %s %s", etype, plural)

    def written(self, plural: str, obj: dict | None, *, quiet: bool = False) -> None:
        """A controller's own write: update the cache and (unless quiet: a status write
        nobody else needs before its watch event) tell the others."""
        if not isinstance(obj, dict) or obj.get("kind") in (None, "Status"):
            return
        old, changed = self.caches[plural].upsert(obj)
        if changed and not quiet:
            self.notify(plural, "MODIFIED", obj, old)

    def removed(self, plural: str, obj: dict) -> None:
        old = self.caches[plural].remove(obj)
        if old is not None:
            self.notify(plural, "DELETED", old, old)

    def register(self, registry) -> None:
        import kopf
        for plural, _, _ in WATCHED:
            self._register_kind(kopf, registry, plural)

    def _register_kind(self, kopf, registry, plural: str) -> None:
        cache = self.caches[plural]

        def index(body, **_):
            obj = dict(body)
            cache.upsert(obj)
            return None

        def on_event(event, **_):
            self.synced.set()
            etype = event.get("type") or "ADDED"
            obj = event.get("object") or {}
            if etype == "DELETED":
                old = cache.remove(obj)
                self.notify(plural, "DELETED", obj, old)
                return
            cur = cache.get((obj.get("metadata") or {}).get("namespace"),
                            (obj.get("metadata") or {}).get("name"))
            if cur is not None and not is_newer_or_same(obj, cur):
                return
            old, _ = cache.upsert(dict(obj))
            self.notify(plural, etype, cache.get((obj["metadata"]).get("namespace"),
                                                 obj["metadata"]["name"]) or obj,
                        None if old is obj else old)

        kopf.index("v1", plural, registry=registry, id=f"cache-{plural}")(index)
        kopf.on.event("v1", plural, registry=registry, id=f"watch-{plural}")(on_event)


# ---- work queue -------------------------------------------------------------------------

class WorkQueue:
    """Keys to reconcile: deduplicated, each processed by one worker at a time; a key added
    while it is being processed runs again afterwards; failures retry with backoff."""

    def __init__(self, name: str, handler: Callable[[Any], Awaitable[None]], workers: int = 5,
                 ready: asyncio.Event | None = None):
        self.name = name
        self.handler = handler
        self.workers = workers
        self.ready = ready
        self._queue: asyncio.Queue = asyncio.Queue()
        self._pending: set = set()
        self._active: set = set()
        self._dirty: set = set()
        self._failures: dict = defaultdict(int)
        self._timers: dict = {}

    def add(self, key) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._pending:
            return
        self._pending.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key, delay: float) -> None:
        if delay <= 0:
            return self.add(key)
        old = self._timers.get(key)
        loop = asyncio.get_running_loop()
        if old is not None and old.when() <= loop.time() + delay:
            return
        if old is not None:
            old.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def run(self) -> None:
        if self.ready is not None:
            await self.ready.wait()
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._pending.discard(key)
            self._active.add(key)
            try:
                await self.handler(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                n = self._failures[key] = self._failures[key] + 1
                delay = min(0.05 * 2 ** (n - 1), 10.0)
                if isinstance(e, ApiError) and e.code == 409:
                    delay = min(delay, 0.05)
                else:
                    log.warning("%s: syncing %s failed (%s); retry in %.2fs", self.name, key, e, delay)
                self.add_after(key, delay)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)


# ---- events (core/v1 Event, like client-go's recorder with its spam filter) ---------------

class Recorder:
    """Posts Events for an involved object, in the background; at most `burst` per object
    and reason, refilled one per `refill` seconds (client-go's EventSourceObjectSpamFilter)."""

    def __init__(self, api: Api, component: str, burst: int = 25, refill: float = 300.0,
                 clock: Callable[[], float] = time.time):
        self.api = api
        self.component = component
        self.burst = burst
        self.refill = refill
        self.clock = clock
        self._buckets: dict[tuple, list[float]] = {}
        self._tasks: set[asyncio.Task] = set()

    def _allow(self, key) -> bool:
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) / self.refill)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True

    def event(self, obj: dict, etype: str, reason: str, message: str) -> None:
        m = obj.get("metadata") or {}
        if not self._allow((m.get("uid"), reason)):
            return
        from shim.api.rest import now_rfc3339
        ts = now_rfc3339(self.clock())
        ns = m.get("namespace") or "default"
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": f"{m.get('name')}.{time.time_ns():x}", "namespace": ns},
              "involvedObject": {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind"),
                                 "name": m.get("name"), "namespace": m.get("namespace"),
                                 "uid": m.get("uid"), "resourceVersion": m.get("resourceVersion")},
              "reason": reason, "message": message, "type": etype, "count": 1,
              "firstTimestamp": ts, "lastTimestamp": ts,
              "source": {"component": self.component},
              "reportingComponent": self.component, "reportingInstance": ""}
        if not m.get("namespace"):
            ev["involvedObject"].pop("namespace")
        t = asyncio.get_running_loop().create_task(self._post(ns, ev))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _post(self, ns: str, ev: dict) -> None:
        try:
            await self.api.create("events", ns, ev)
        except Exception as e:      # events are best effort, like the real recorder
            log.debug("posting event failed: %s", e)


# ---- the operator -----------------------------------------------------------------------

class _EveryTask:
    """An `ignored` set for kopf.run_tasks that contains every task."""

    def __contains__(self, task) -> bool:
        return True


_EVERY_TASK = _EveryTask()


def operator_settings():
    """kopf settings under which kopf never writes to the objects it watches."""
    import kopf
    s = kopf.OperatorSettings()
    s.posting.enabled = False              # no k8s-events from kopf's own logging
    s.peering.standalone = True            # no peering objects
    s.peering.clusterwide = True
    s.scanning.disabled = True             # no CRD / namespace observation
    s.watching.server_timeout = 300
    s.watching.client_timeout = 330
    s.queueing.idle_timeout = 5.0
    s.networking.error_backoffs = (0.05, 0.1, 0.2, 0.5, 1, 2)
    # Only stateless handlers are registered (index + on.event): kopf adds its finalizer
    # only for on.delete handlers and daemons, and patches progress/diff-base annotations
    # only for on.create/update/resume handlers, so its persistence is never used.
    return s


class Controllers:
    """Everything one controller process runs: informers, the API client, the controllers."""

    def __init__(self, info, *, clock: Callable[[], float] = time.time,
                 names: Iterable[str] = ("replication", "garbagecollector", "namespace",
                                         "resourcequota")):
        self.info = info
        self.clock = clock
        self.api = Api(info)
        self.informers = Informers()
        self.names = tuple(names)
        self.controllers: list = []

    def build(self):
        import kopf
        registry = kopf.OperatorRegistry()
        self.informers.register(registry)
        for name in self.names:
            self.controllers.append(_make(name, self))
        info = self.info

        @kopf.on.login(registry=registry, id="kubeshim-login")
        def login(**_):
            return info
        return registry

    async def run(self, *, in_server: bool = False, stop_flag=None, ready_flag=None) -> None:
        import kopf
        registry = self.build()
        if in_server:
            logging.getLogger("kopf").setLevel(logging.WARNING)
        workers = [asyncio.create_task(c.run(), name=f"controller-{type(c).__name__}")
                   for c in self.controllers]
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            tasks = await kopf.spawn_tasks(registry=registry, settings=operator_settings(),
                                           standalone=True, clusterwide=True,
                                           stop_flag=stop_flag, ready_flag=ready_flag)
            if in_server:
                _restore_signals(saved)
            # On cancellation kopf also cancels every other task of the loop ("hung" tasks);
            # inside the server those are the server's own (uvicorn, the node agent, the
            # shutdown itself), so only kopf's root tasks are stopped there.
            await kopf.run_tasks(tasks, ignored=_EVERY_TASK if in_server else frozenset())
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.api.close()


def _restore_signals(saved: dict) -> None:
    """kopf takes SIGINT/SIGTERM for itself; inside `kubeshim server` they belong to uvicorn."""
    loop = asyncio.get_running_loop()
    for sig, handler in saved.items():
        try:
            loop.remove_signal_handler(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        if handler is not None:
            signal.signal(sig, handler)


def _make(name: str, ctl: Controllers):
    if name == "replication":
        from shim.controllers.replication import ReplicationManager
        return ReplicationManager(ctl.api, ctl.informers, clock=ctl.clock)
    if name == "garbagecollector":
        from shim.controllers.garbagecollector import GarbageCollector
        return GarbageCollector(ctl.api, ctl.informers)
    if name == "namespace":
        from shim.controllers.namespaces import NamespaceController
        return NamespaceController(ctl.api, ctl.informers, ca_pem(ctl.info), clock=ctl.clock)
    if name == "resourcequota":
        from shim.controllers.resourcequota import QuotaController
        return QuotaController(ctl.api, ctl.informers, clock=ctl.clock)
    raise ValueError(f"unknown controller {name}")


async def wait_for_server(api: Api, timeout: float | None = None) -> None:
    """Poll /readyz until the API server answers (the in-server start races uvicorn)."""
    t0 = time.monotonic()
    while True:
        try:
            await api.request("GET", "/version")
            return
        except Exception:
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise
            await asyncio.sleep(0.05)


async def run_in_server(kubeconfig: str) -> None:
    """The controllers inside `kubeshim server`: log in with the admin kubeconfig."""
    info = connection_from_kubeconfig(kubeconfig)
    probe = Api(info)
    try:
        await wait_for_server(probe)
    finally:
        await probe.close()
    while True:
        try:
            await Controllers(info).run(in_server=True)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("controllers stopped; restarting")
            await asyncio.sleep(1.0)


async def run_standalone(kubeconfig: str, context: str | None = None) -> None:
    """`kubeshim controllers --kubeconfig FILE`."""
    info = connection_from_kubeconfig(kubeconfig, context)
    await Controllers(info).run()
