"""The event recorder: writes core/v1 Events about API objects the way client-go's
tools/record recorder does, through the API client (shim/client.py).

- an Event is named `<object name>.<hex nanoseconds>` in the object's namespace
  ("default" for cluster-scoped objects); involvedObject is the object's reference
  (kind, namespace, name, uid, apiVersion, resourceVersion, fieldPath); source is
  {component, host} and reportingController/reportingInstance repeat them;
- a repeat of the same event (same source, object, fieldPath, type, reason and message)
  is not a new object: the existing one is PATCHed (strategic merge) with count+1,
  the new lastTimestamp and the message (the correlator's event logger); if it has
  gone meanwhile, it is created again;
- more than 10 distinct messages for the same (source, object, type, reason) within
  10 minutes are folded into one event whose message starts with
  "(combined from similar events): " (the correlator's aggregator);
- a token bucket per (source, object) — burst 25, one token per 5 minutes — drops
  event storms (the spam filter).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from dataclasses import dataclass
from typing import Callable

from shim.api.errors import StatusError

log = logging.getLogger("shim.node.events")

NORMAL, WARNING = "Normal", "Warning"
MAX_SIMILAR = 10                 # defaultAggregateMaxEvents
AGGREGATE_WINDOW = 600.0         # defaultAggregateIntervalInSeconds
SPAM_BURST = 25                  # defaultSpamBurst
SPAM_QPS = 1.0 / 300.0           # defaultSpamQPS
COMBINED_PREFIX = "(combined from similar events): "


def rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: dict, field_path: str = "") -> dict:
    """The ObjectReference of an API object (as ref.GetReference builds it)."""
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind", ""), "namespace": meta.get("namespace", ""),
           "name": meta.get("name", ""), "uid": meta.get("uid", ""),
           "apiVersion": obj.get("apiVersion", ""),
           "resourceVersion": meta.get("resourceVersion", "")}
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v != ""}


def container_field_path(pod: dict, container: str) -> str:
    """`spec.containers{name}` / `spec.initContainers{name}` (the kubelet's fieldPath)."""
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers", "ephemeralContainers"):
        if any(c.get("name") == container for c in spec.get(key) or []):
            return f"spec.{key}{{{container}}}"
    return f"spec.containers{{{container}}}"


@dataclass
class _Seen:
    name: str
    count: int
    first: str
    namespace: str


@dataclass
class _Similar:
    messages: set
    last: float


@dataclass
class _Bucket:
    tokens: float
    at: float


class EventRecorder:
    """`await recorder.record(obj, "Normal", "Scheduled", "…")` writes (or bumps) an Event and
    returns it (None when dropped); `recorder.emit(...)` does the same in the background."""

    def __init__(self, client, component: str, host: str = "", *,
                 clock: Callable[[], float] = time.time):
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock
        self._seen: dict[tuple, _Seen] = {}
        self._similar: dict[tuple, _Similar] = {}
        self._buckets: dict[tuple, _Bucket] = {}
        self._tasks: set[asyncio.Task] = set()
        self._lock = asyncio.Lock()

    # ---- the correlator ----
    def _source(self) -> dict:
        src = {"component": self.component}
        if self.host:
            src["host"] = self.host
        return src

    def _object_key(self, ref: dict) -> tuple:
        return (self.component, self.host, ref.get("kind", ""), ref.get("namespace", ""),
                ref.get("name", ""), ref.get("uid", ""), ref.get("apiVersion", ""))

    def _allow(self, ref: dict, now: float) -> bool:
        key = self._object_key(ref)
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(SPAM_BURST, now)
        b.tokens = min(SPAM_BURST, b.tokens + (now - b.at) * SPAM_QPS)
        b.at = now
        if b.tokens < 1:
            return False
        b.tokens -= 1
        return True

    def _aggregate(self, ref: dict, etype: str, reason: str, message: str, now: float) -> str:
        key = self._object_key(ref) + (etype, reason)
        sim = self._similar.get(key)
        if sim is None or now - sim.last > AGGREGATE_WINDOW:
            sim = self._similar[key] = _Similar(set(), now)
        sim.messages.add(message)
        sim.last = now
        if len(sim.messages) < MAX_SIMILAR:
            return message
        return COMBINED_PREFIX + message

    # ---- writing ----
    def emit(self, obj: dict, etype: str, reason: str, message: str, *,
             field_path: str = "") -> None:
        """Fire-and-forget record() (events never block the caller)."""
        t = asyncio.get_running_loop().create_task(
            self.record(obj, etype, reason, message, field_path=field_path))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait for the events emit() queued."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def record(self, obj: dict, etype: str, reason: str, message: str, *,
                     field_path: str = "") -> dict | None:
        if etype not in (NORMAL, WARNING):
            raise ValueError(f"unsupported event type {etype!r}")
        ref = object_reference(obj, field_path)
        async with self._lock:       # keeps count increments of one event in order
            now = self.clock()
            if not self._allow(ref, now):
                log.debug("event dropped by the spam filter: %s %s", reason, message)
                return None
            message = self._aggregate(ref, etype, reason, message, now)
            key = self._object_key(ref) + (ref.get("fieldPath", ""), etype, reason, message)
            try:
                return await self._write(key, ref, etype, reason, message, now)
            except (StatusError, ConnectionError) as e:
                log.warning("unable to write event %s %s: %s", reason, message, e)
                return None

    async def _write(self, key, ref, etype, reason, message, now) -> dict:
        ts = rfc3339(now)
        seen = self._seen.get(key)
        if seen is not None:
            try:
                ev = await self.client.patch(
                    "events", seen.name, {"count": seen.count + 1, "lastTimestamp": ts,
                                          "message": message},
                    seen.namespace, type="strategic")
                self._remember(key, ev)
                return ev
            except StatusError as e:
                if e.code != 404:
                    raise
        namespace = ref.get("namespace") or "default"
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": f"{ref.get('name', '')}.{int(now * 1e9):x}",
                           "namespace": namespace},
              "involvedObject": ref, "reason": reason, "message": message,
              "source": self._source(), "firstTimestamp": ts, "lastTimestamp": ts,
              "count": 1, "type": etype, "eventTime": None,
              "reportingComponent": self.component, "reportingInstance": self.host}
        if seen is not None:         # recreate a vanished event, keeping its history
            ev["count"] = seen.count + 1
            ev["firstTimestamp"] = seen.first
        created = await self.client.create("events", ev, namespace)
        self._remember(key, created)
        return created

    def _remember(self, key: tuple, ev: dict) -> None:
        m = ev.get("metadata") or {}
        self._seen[key] = _Seen(m.get("name", ""), int(ev.get("count") or 1),
                                ev.get("firstTimestamp") or "", m.get("namespace", ""))
        if len(self._seen) > 4096:               # an LRU in spirit: drop the oldest entries
            for k in list(self._seen)[:1024]:
                del self._seen[k]
