"""The Endpoints controller: for every Service with a selector, an Endpoints object of the
same name listing the matching pods — an API client (shim/client.py) like the scheduler.

It owns the content of those Endpoints objects, as kube-controller-manager's
endpoint-controller does:
- ready pods (Ready condition True, or the service's publishNotReadyAddresses) go to
  `subsets[].addresses`, the others to `notReadyAddresses`, each as
  {ip, nodeName, targetRef {kind Pod, namespace, name, uid}} (plus `hostname` when the
  pod's spec.hostname is set and its subdomain is the service's name);
- pods without an IP, terminal pods and terminating pods are left out;
- ports come from the service's ports (name, port, protocol, appProtocol), a named
  targetPort resolved per pod from its containers' ports (a pod without it is left out of
  that port); addresses sharing the same ports are packed into one subset;
- labels: the service's labels plus `endpoints.kubernetes.io/managed-by:
  endpoint-controller` (and `service.kubernetes.io/headless` for headless services);
  annotation `endpoints.kubernetes.io/last-change-trigger-time` on every change;
- services without a selector are left alone; the Endpoints goes when its service goes.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import ipaddress
import logging
import math
import time
from typing import Callable

from shim.api.errors import StatusError
from shim.client import Client, WatchEvent, object_key

log = logging.getLogger("shim.controllers.endpoints")

LABEL_MANAGED_BY = "endpoints.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpoint-controller"
LABEL_HEADLESS = "service.kubernetes.io/headless"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
MAX_CAPACITY = 1000                 # addresses (ready + not ready) in one Endpoints
RETRY_DELAY = 0.5


# ---- pure computation --------------------------------------------------------------------

def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A service selector (a plain map) matches when every key has the same value;
    an empty or missing selector matches nothing here (such services are not managed)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def is_pod_ready(pod: dict) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def pod_in_endpoints(pod: dict) -> bool:
    """The pod has an IP, is not terminal and is not being deleted."""
    st = pod.get("status") or {}
    if not st.get("podIP"):
        return False
    if st.get("phase") in ("Succeeded", "Failed"):
        return False
    return not (pod.get("metadata") or {}).get("deletionTimestamp")


def resolve_target_port(service_port: dict, pod: dict) -> int | None:
    """The container port a service port sends to on this pod (None: the pod lacks the
    named port). A missing targetPort means the service port itself."""
    target = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        return int(service_port["port"])
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    proto = service_port.get("protocol") or "TCP"
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return int(p["containerPort"])
    return None


def endpoint_address(pod: dict, service: dict) -> dict:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    addr: dict = {"ip": pod["status"]["podIP"]}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        addr["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    addr["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"),
                         "name": meta.get("name"), "uid": meta.get("uid")}
    return addr


def _endpoint_port(service_port: dict, number: int) -> dict:
    out: dict = {}
    if service_port.get("name"):
        out["name"] = service_port["name"]
    out["port"] = number
    out["protocol"] = service_port.get("protocol") or "TCP"
    if service_port.get("appProtocol"):
        out["appProtocol"] = service_port["appProtocol"]
    return out


def _ip_key(addr: dict):
    try:
        return (0, ipaddress.ip_address(addr["ip"]), addr.get("targetRef", {}).get("uid") or "")
    except ValueError:
        return (1, addr["ip"], "")


def _port_key(port: dict):
    return (port.get("name", ""), port["port"], port.get("protocol", ""))


def is_headless(service: dict) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def compute_subsets(service: dict, pods: list[dict]) -> list[dict]:
    """The subsets for a service over candidate pods (same namespace, any labels)."""
    spec = service.get("spec") or {}
    selector = spec.get("selector")
    publish = bool(spec.get("publishNotReadyAddresses"))
    svc_ports = spec.get("ports") or []
    groups: dict[tuple, dict] = {}          # port signature -> {ports, ready, notReady}
    for pod in pods:
        if not selector_matches(selector, (pod.get("metadata") or {}).get("labels")):
            continue
        if not pod_in_endpoints(pod):
            continue
        ready = publish or is_pod_ready(pod)
        if svc_ports:
            ports = []
            for sp in svc_ports:
                number = resolve_target_port(sp, pod)
                if number is not None:
                    ports.append(_endpoint_port(sp, number))
            if not ports:
                continue
        elif is_headless(service):
            ports = []                      # headless without ports: addresses only
        else:
            continue
        ports.sort(key=_port_key)
        sig = tuple(_port_key(p) for p in ports)
        g = groups.setdefault(sig, {"ports": ports, "addresses": [], "notReadyAddresses": []})
        g["addresses" if ready else "notReadyAddresses"].append(endpoint_address(pod, service))
    subsets = []
    for sig in sorted(groups):
        g = groups[sig]
        subset: dict = {}
        if g["addresses"]:
            subset["addresses"] = sorted(g["addresses"], key=_ip_key)
        if g["notReadyAddresses"]:
            subset["notReadyAddresses"] = sorted(g["notReadyAddresses"], key=_ip_key)
        if g["ports"]:
            subset["ports"] = g["ports"]
        subsets.append(subset)
    return subsets


def truncate(subsets: list[dict], capacity: int = MAX_CAPACITY) -> bool:
    """Cut the subsets down to `capacity` addresses, in place, as the endpoint controller
    does: not-ready addresses go first; if the ready ones alone are too many, every
    not-ready one goes and the ready ones are cut. Each subset keeps its share (rounded
    up) and the last takes what is left. True if anything was cut."""
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if ready + not_ready <= capacity:
        return False
    cut_ready = ready > capacity
    field = "addresses" if cut_ready else "notReadyAddresses"
    room = capacity if cut_ready else capacity - ready
    total = ready if cut_ready else not_ready
    left = room
    for i, subset in enumerate(subsets):
        have = subset.get(field) or []
        share = left if i == len(subsets) - 1 else math.ceil(len(have) / total * room)
        kept = have[:max(0, min(share, left))]
        if kept:
            subset[field] = kept
        else:
            subset.pop(field, None)
        if cut_ready:
            subset.pop("notReadyAddresses", None)
        left -= len(kept)
    return True


def desired_labels(service: dict) -> dict:
    labels = dict((service.get("metadata") or {}).get("labels") or {})
    labels[LABEL_MANAGED_BY] = CONTROLLER_NAME
    if is_headless(service):
        labels[LABEL_HEADLESS] = ""
    else:
        labels.pop(LABEL_HEADLESS, None)
    return labels


def rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def needs_update(existing: dict | None, subsets: list[dict], labels: dict,
                 truncated: bool = False) -> bool:
    if existing is None:
        return True
    meta = existing.get("metadata") or {}
    was_truncated = OVER_CAPACITY in (meta.get("annotations") or {})
    return (existing.get("subsets") or []) != subsets or \
        (meta.get("labels") or {}) != labels or was_truncated != truncated


def build_endpoints(service: dict, subsets: list[dict], existing: dict | None,
                    now: float, truncated: bool = False) -> dict:
    """The Endpoints object to write (existing metadata kept, resourceVersion as the
    precondition)."""
    meta = service["metadata"]
    old_meta = dict((existing or {}).get("metadata") or {})
    annotations = dict(old_meta.get("annotations") or {})
    annotations[TRIGGER_TIME] = rfc3339(now)
    if truncated:
        annotations[OVER_CAPACITY] = "truncated"
    else:
        annotations.pop(OVER_CAPACITY, None)
    md: dict = {"name": meta["name"], "namespace": meta["namespace"],
                "labels": desired_labels(service), "annotations": annotations}
    if old_meta.get("resourceVersion"):
        md["resourceVersion"] = old_meta["resourceVersion"]
    ep: dict = {"apiVersion": "v1", "kind": "Endpoints", "metadata": md}
    if subsets:
        ep["subsets"] = subsets
    return ep


# ---- the controller ----------------------------------------------------------------------

class EndpointsController:
    def __init__(self, client: Client, *, wall: Callable[[], float] = time.time):
        self.client = client
        self.wall = wall
        self.services = client.reflector("services")
        self.pods = client.reflector("pods")
        self.endpoints = client.reflector("endpoints")
        self.dirty: set[str] = set()           # service keys to sync
        self.deleted_services: set[str] = set()  # seen deleted: their Endpoints go too
        self._wake = asyncio.Event()
        self.writes = 0

    def _mark(self, key: str) -> None:
        self.dirty.add(key)
        self._wake.set()

    def _services_of_pod(self, pod: dict) -> list[str]:
        ns = (pod.get("metadata") or {}).get("namespace")
        labels = (pod.get("metadata") or {}).get("labels")
        return [k for k, s in self.services.cache.items()
                if s["metadata"].get("namespace") == ns and
                selector_matches((s.get("spec") or {}).get("selector"), labels)]

    # ---- event handlers ----
    def on_service(self, ev: WatchEvent) -> None:
        key = object_key(ev.object)
        if ev.type == "DELETED":
            self.deleted_services.add(key)
        else:
            self.deleted_services.discard(key)
        self._mark(key)

    def on_pod(self, ev: WatchEvent, old: dict | None) -> None:
        keys = set(self._services_of_pod(ev.object))
        if old is not None:
            keys |= set(self._services_of_pod(old))
        for k in keys:
            self._mark(k)

    def on_endpoints(self, ev: WatchEvent) -> None:
        key = object_key(ev.object)
        if key in self.services.cache:        # someone else changed or removed ours
            self._mark(key)

    # ---- loops ----
    async def run(self) -> None:
        await asyncio.gather(self._watch_services(), self._watch_pods(),
                             self._watch_endpoints(), self._sync_loop())

    async def _watch_services(self) -> None:
        async for ev in self.services:
            self.on_service(ev)

    async def _watch_pods(self) -> None:
        prev: dict[str, dict] = {}
        async for ev in self.pods:
            key = object_key(ev.object)
            self.on_pod(ev, prev.get(key))
            if ev.type == "DELETED":
                prev.pop(key, None)
            else:
                prev[key] = ev.object

    async def _watch_endpoints(self) -> None:
        async for ev in self.endpoints:
            self.on_endpoints(ev)

    async def _sync_loop(self) -> None:
        for r in (self.services, self.pods, self.endpoints):
            await r.synced.wait()
        for key in list(self.services.cache) + list(self.endpoints.cache):
            self.dirty.add(key)                   # first pass: everything, incl. orphans
        while True:
            self._wake.clear()
            failed = False
            for key in sorted(self.dirty):
                self.dirty.discard(key)
                try:
                    await self.sync(key)
                except (StatusError, ConnectionError) as e:
                    log.warning("syncing endpoints %s: %s", key, e)
                    self.dirty.add(key)
                    failed = True
            try:
                await asyncio.wait_for(self._wake.wait(), RETRY_DELAY if failed else None)
            except asyncio.TimeoutError:
                pass

    # ---- one service ----
    def _pods_in(self, namespace: str) -> list[dict]:
        return [p for p in self.pods.cache.values()
                if p["metadata"].get("namespace") == namespace]

    async def sync(self, key: str) -> None:
        ns, _, name = key.partition("/")
        service = self.services.cache.get(key)
        existing = self.endpoints.cache.get(key)
        if service is None:
            managed = existing is not None and \
                (existing["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) == CONTROLLER_NAME
            if existing is not None and (managed or key in self.deleted_services):
                await self._delete(ns, name)
            self.deleted_services.discard(key)
            return
        if not (service.get("spec") or {}).get("selector"):
            return                                 # hand-written Endpoints: left alone
        subsets = compute_subsets(service, self._pods_in(ns))
        truncated = truncate(subsets)
        if not needs_update(existing, subsets, desired_labels(service), truncated):
            return
        ep = build_endpoints(service, subsets, existing, self.wall(), truncated)
        if existing is None:
            try:
                written = await self.client.create("endpoints", ep, ns)
            except StatusError as e:
                if e.code != 409:
                    raise
                current = await self.client.get("endpoints", name, ns)
                ep = build_endpoints(service, subsets, current, self.wall(), truncated)
                written = await self.client.update("endpoints", ep, ns)
        else:
            written = await self.client.update("endpoints", ep, ns)
        self.endpoints.cache[key] = written   # until the watch catches up
        self.writes += 1

    async def _delete(self, ns: str, name: str) -> None:
        try:
            await self.client.delete("endpoints", name, ns)
        except StatusError as e:
            if e.code != 404:
                raise
        self.endpoints.cache.pop(f"{ns}/{name}", None)


async def run(client: Client) -> None:
    await EndpointsController(client).run()
