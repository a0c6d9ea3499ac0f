"""Server-side printing: Table column definitions and row cells for every served kind.

`kubectl get` asks for `as=Table;g=meta.k8s.io;v=v1` and prints what the server
computes, so this module reproduces the 1.32 apiserver's printers
(kubernetes pkg/printers/internalversion/printers.go) for the kinds kubeshim serves:
column names, types, formats, priorities and descriptions (the descriptions are the
API types' swagger docs, read from the OpenAPI schemas in `shim.openapi.schema`), and
the cell derivations. The apiserver always prints with `Wide: true`, so `cells()`
returns the full row (priority-1 columns included; kubectl hides them without `-o wide`).

Kinds without a printer (e.g. LimitRange) get the generic apiserver table
(k8s.io/apiserver pkg/registry/rest/table.go): `Name` and `Created At`.

Also owns the relative-time helpers: `human_duration` (apimachinery util/duration
HumanDuration) and `translate_timestamp_since`.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from shim.openapi import schema as _schema
from shim.resources import quantity as _quantity

# --------------------------------------------------------------------------------------
# Relative time
# --------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """A succinct rendering of a duration, as apimachinery's HumanDuration."""
    secs = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_timestamp(ts: str | None) -> float | None:
    """Unix time of an RFC 3339 timestamp; None for missing, unparsable or zero time."""
    if not ts or not isinstance(ts, str):
        return None
    try:
        dt = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    if dt.year <= 1:  # Go's zero time.Time (0001-01-01T00:00:00Z) counts as unset
        return None
    return dt.timestamp()


def translate_timestamp_since(ts: str | None, now: float) -> str:
    """Age of a timestamp relative to `now`: `<unknown>` if unset, `<invalid>` if future."""
    t = parse_timestamp(ts)
    if t is None:
        return "<unknown>"
    return human_duration(now - t)


def _age(obj: dict, now: float) -> str:
    return translate_timestamp_since(_meta(obj).get("creationTimestamp"), now)


# --------------------------------------------------------------------------------------
# Column definitions
# --------------------------------------------------------------------------------------

_CORE = "io.k8s.api.core.v1."
_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _doc(definition: str, field: str) -> str:
    """The swagger doc of one field (the description the real printers use)."""
    try:
        return _schema.definition(definition)["properties"][field].get("description", "")
    except KeyError:
        return ""


def _col(name: str, description: str, type_: str = "string", fmt: str = "",
         priority: int = 0) -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": description,
            "priority": priority}


def _name_col(priority: int = 0) -> dict:
    return _col("Name", _doc(_META, "name"), fmt="name", priority=priority)


def _age_col() -> dict:
    return _col("Age", _doc(_META, "creationTimestamp"))


_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."


def _build_columns() -> dict[str, list[dict]]:
    ev = _CORE + "Event"
    return {
        "Pod": [
            _name_col(),
            _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
            _col("Status", "The aggregate status of the containers in this pod."),
            _col("Restarts", "The number of times the containers in this pod have been restarted "
                             "and when the last container in this pod has restarted."),
            _age_col(),
            _col("IP", _doc(_CORE + "PodStatus", "podIP"), priority=1),
            _col("Node", _doc(_CORE + "PodSpec", "nodeName"), priority=1),
            _col("Nominated Node", _doc(_CORE + "PodStatus", "nominatedNodeName"), priority=1),
            _col("Readiness Gates", _doc(_CORE + "PodSpec", "readinessGates"), priority=1),
        ],
        "ReplicationController": [
            _name_col(),
            _col("Desired", _doc(_CORE + "ReplicationControllerSpec", "replicas"), "integer"),
            _col("Current", _doc(_CORE + "ReplicationControllerStatus", "replicas"), "integer"),
            _col("Ready", _doc(_CORE + "ReplicationControllerStatus", "readyReplicas"), "integer"),
            _age_col(),
            _col("Containers", _CONTAINERS_DOC, priority=1),
            _col("Images", _IMAGES_DOC, priority=1),
            _col("Selector", _doc(_CORE + "ReplicationControllerSpec", "selector"), priority=1),
        ],
        "Service": [
            _name_col(),
            _col("Type", _doc(_CORE + "ServiceSpec", "type")),
            _col("Cluster-IP", _doc(_CORE + "ServiceSpec", "clusterIP")),
            _col("External-IP", _doc(_CORE + "ServiceSpec", "externalIPs")),
            _col("Port(s)", _doc(_CORE + "ServiceSpec", "ports")),
            _age_col(),
            _col("Selector", _doc(_CORE + "ServiceSpec", "selector"), priority=1),
        ],
        "Endpoints": [
            _name_col(),
            _col("Endpoints", _doc(_CORE + "Endpoints", "subsets")),
            _age_col(),
        ],
        "Node": [
            _name_col(),
            _col("Status", "The status of the node"),
            _col("Roles", "The roles of the node"),
            _age_col(),
            _col("Version", _doc(_CORE + "NodeSystemInfo", "kubeletVersion")),
            _col("Internal-IP", _doc(_CORE + "NodeStatus", "addresses"), priority=1),
            _col("External-IP", _doc(_CORE + "NodeStatus", "addresses"), priority=1),
            _col("OS-Image", _doc(_CORE + "NodeSystemInfo", "osImage"), priority=1),
            _col("Kernel-Version", _doc(_CORE + "NodeSystemInfo", "kernelVersion"), priority=1),
            _col("Container-Runtime", _doc(_CORE + "NodeSystemInfo", "containerRuntimeVersion"),
                 priority=1),
        ],
        "Event": [
            _col("Last Seen", _doc(ev, "lastTimestamp")),
            _col("Type", _doc(ev, "type")),
            _col("Reason", _doc(ev, "reason")),
            _col("Object", _doc(ev, "involvedObject")),
            _col("Subobject", _doc(_CORE + "ObjectReference", "fieldPath"), priority=1),
            _col("Source", _doc(ev, "source"), priority=1),
            _col("Message", _doc(ev, "message")),
            _col("First Seen", _doc(ev, "firstTimestamp"), priority=1),
            _col("Count", _doc(ev, "count"), priority=1),
            _name_col(priority=1),
        ],
        "Namespace": [
            _name_col(),
            _col("Status", "The status of the namespace"),
            _age_col(),
        ],
        "Secret": [
            _name_col(),
            _col("Type", _doc(_CORE + "Secret", "type")),
            _col("Data", _doc(_CORE + "Secret", "data")),
            _age_col(),
        ],
        "ServiceAccount": [
            _name_col(),
            _col("Secrets", _doc(_CORE + "ServiceAccount", "secrets")),
            _age_col(),
        ],
        "ConfigMap": [
            _name_col(),
            _col("Data", _doc(_CORE + "ConfigMap", "data")),
            _age_col(),
        ],
        "ResourceQuota": [
            _name_col(),
            _col("Request", "Request represents a minimum amount of cpu/memory that a container "
                            "may consume."),
            _col("Limit", "Limits control the maximum amount of cpu/memory that a container may "
                          "use independent of contention on the node."),
            _age_col(),
        ],
        "Lease": [
            _name_col(),
            _col("Holder", _doc("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")),
            _age_col(),
        ],
        # The real scale printer's Name column carries no "name" format.
        "Scale": [
            _col("Name", _doc(_META, "name")),
            _col("Desired", _doc("io.k8s.api.autoscaling.v1.ScaleSpec", "replicas"), "integer"),
            _col("Available", _doc("io.k8s.api.autoscaling.v1.ScaleStatus", "replicas"),
                 "integer"),
            _age_col(),
        ],
    }


# The generic table of kinds without a printer (apiserver DefaultTableConvertor).
DEFAULT_COLUMNS: list[dict] = [
    _name_col(),
    _col("Created At", _doc(_META, "creationTimestamp"), "date"),
]

COLUMNS: dict[str, list[dict]] = _build_columns()
COLUMNS["LimitRange"] = DEFAULT_COLUMNS  # no printer in 1.32: the generic table


def has_printer(kind: str) -> bool:
    """True if the kind has its own printer (not the generic Name/Created At table)."""
    return kind in COLUMNS and COLUMNS[kind] is not DEFAULT_COLUMNS


def columns(kind: str) -> list[dict]:
    """Column definitions for a kind (copies), the default table for unknown kinds."""
    return [dict(c) for c in COLUMNS.get(kind, DEFAULT_COLUMNS)]


# --------------------------------------------------------------------------------------
# Small helpers shared by the printers
# --------------------------------------------------------------------------------------


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _name(obj: dict) -> str:
    return _meta(obj).get("name") or ""


def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def _status(obj: dict) -> dict:
    return obj.get("status") or {}


def format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: sorted `k=v` joined by commas, `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _layout_containers(containers: list[dict] | None) -> tuple[str, str]:
    containers = containers or []
    names = ",".join(c.get("name") or "" for c in containers)
    images = ",".join(c.get("image") or "" for c in containers)
    return names, images


def _join_host_port(host: str, port: int) -> str:
    """net.JoinHostPort: brackets around hosts containing a colon (IPv6)."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


# --------------------------------------------------------------------------------------
# Pod
# --------------------------------------------------------------------------------------

_NODE_LOST = "NodeLost"  # pkg/util/node NodeUnreachablePodReason


def _is_sidecar(container: dict | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"


def _last_termination(status: dict) -> float | None:
    terminated = (status.get("lastState") or {}).get("terminated")
    if terminated is None:
        return None
    return parse_timestamp(terminated.get("finishedAt"))


def _newer(current: float | None, candidate: float | None) -> float | None:
    if candidate is None:
        return current
    if current is None or candidate > current:
        return candidate
    return current


def _condition_true(conditions: list[dict], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in conditions)


def _terminated_reason(terminated: dict, prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + terminated["reason"]
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode') or 0}"


class _PodSummary:
    """The READY / STATUS / RESTARTS computation of printPod."""

    def __init__(self, pod: dict):
        spec, status = _spec(pod), _status(pod)
        self.spec, self.status = spec, status
        self.conditions = status.get("conditions") or []
        self.reason = status.get("reason") or status.get("phase") or ""
        self.ready = 0
        self.total = len(spec.get("containers") or [])
        self.restarts = 0
        self.last_restart: float | None = None
        self._sidecar_restarts = 0
        self._sidecar_last_restart: float | None = None
        init_specs = spec.get("initContainers") or []
        self._init_by_name = {c.get("name"): c for c in init_specs}
        self.total += sum(1 for c in init_specs if _is_sidecar(c))
        if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
               for c in self.conditions):
            self.reason = "SchedulingGated"

    def walk_init_containers(self) -> bool:
        """Returns True if the pod is still initializing (reason set to Init:...)."""
        n_init = len(self.spec.get("initContainers") or [])
        for i, cs in enumerate(self.status.get("initContainerStatuses") or []):
            count = int(cs.get("restartCount") or 0)
            self.restarts += count
            finished = _last_termination(cs)
            self.last_restart = _newer(self.last_restart, finished)
            sidecar = _is_sidecar(self._init_by_name.get(cs.get("name")))
            if sidecar:
                self._sidecar_restarts += count
                self._sidecar_last_restart = _newer(self._sidecar_last_restart, finished)
            state = cs.get("state") or {}
            terminated, waiting = state.get("terminated"), state.get("waiting")
            if terminated is not None and (terminated.get("exitCode") or 0) == 0:
                continue
            if sidecar and cs.get("started") is True:
                if cs.get("ready"):
                    self.ready += 1
                continue
            if terminated is not None:
                self.reason = _terminated_reason(terminated, "Init:")
            elif waiting is not None and waiting.get("reason") and \
                    waiting["reason"] != "PodInitializing":
                self.reason = "Init:" + waiting["reason"]
            else:
                self.reason = f"Init:{i}/{n_init}"
            return True
        return False

    def walk_containers(self) -> None:
        self.restarts = self._sidecar_restarts
        self.last_restart = self._sidecar_last_restart
        has_running = False
        for cs in reversed(self.status.get("containerStatuses") or []):
            self.restarts += int(cs.get("restartCount") or 0)
            self.last_restart = _newer(self.last_restart, _last_termination(cs))
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                self.reason = waiting["reason"]
            elif terminated is not None:
                self.reason = _terminated_reason(terminated)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                self.ready += 1
        if self.reason == "Completed" and has_running:
            self.reason = "Running" if _condition_true(self.conditions, "Ready") else "NotReady"

    def restarts_cell(self, now: float) -> str:
        if self.restarts != 0 and self.last_restart is not None:
            return f"{self.restarts} ({human_duration(now - self.last_restart)} ago)"
        return str(self.restarts)


def _pod_ip(status: dict) -> str:
    # v1 -> internal conversion makes status.podIP authoritative over podIPs[0].
    if status.get("podIP"):
        return status["podIP"]
    ips = status.get("podIPs") or []
    return (ips[0].get("ip") or "<none>") if ips else "<none>"


def _readiness_gates(spec: dict, conditions: list[dict]) -> str:
    gates = spec.get("readinessGates") or []
    if not gates:
        return "<none>"
    true_count = 0
    for gate in gates:
        for cond in conditions:
            if cond.get("type") == gate.get("conditionType"):
                if cond.get("status") == "True":
                    true_count += 1
                break
    return f"{true_count}/{len(gates)}"


def _print_pod(pod: dict, now: float) -> list:
    summary = _PodSummary(pod)
    initializing = summary.walk_init_containers()
    if not initializing or _condition_true(summary.conditions, "Initialized"):
        summary.walk_containers()
    status, spec = summary.status, summary.spec
    deleting = _meta(pod).get("deletionTimestamp") is not None
    if deleting and status.get("reason") == _NODE_LOST:
        summary.reason = "Unknown"
    elif deleting and status.get("phase") not in ("Succeeded", "Failed"):
        summary.reason = "Terminating"
    return [
        _name(pod),
        f"{summary.ready}/{summary.total}",
        summary.reason,
        summary.restarts_cell(now),
        _age(pod, now),
        _pod_ip(status),
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        _readiness_gates(spec, summary.conditions),
    ]


_POD_ROW_CONDITIONS = {
    "Succeeded": "The pod has completed successfully.",
    "Failed": "The pod failed.",
}


def conditions(kind: str, obj: dict) -> list | None:
    """Row conditions: pods in phase Succeeded/Failed are marked Completed; else None."""
    if kind != "Pod":
        return None
    phase = _status(obj).get("phase")
    if phase not in _POD_ROW_CONDITIONS:
        return None
    return [{"type": "Completed", "status": "True", "reason": phase,
             "message": _POD_ROW_CONDITIONS[phase]}]


# --------------------------------------------------------------------------------------
# Workloads, services, endpoints
# --------------------------------------------------------------------------------------


def _print_replication_controller(rc: dict, now: float) -> list:
    spec, status = _spec(rc), _status(rc)
    replicas = spec.get("replicas")
    template_spec = ((spec.get("template") or {}).get("spec") or {})
    names, images = _layout_containers(template_spec.get("containers"))
    return [
        _name(rc),
        1 if replicas is None else int(replicas),  # defaulted to 1 on create
        int(status.get("replicas") or 0),
        int(status.get("readyReplicas") or 0),
        _age(rc, now),
        names,
        images,
        format_labels(spec.get("selector")),
    ]


def _load_balancer_ips(status: dict, wide: bool) -> str:
    found = set()
    for ingress in (status.get("loadBalancer") or {}).get("ingress") or []:
        if ingress.get("ip"):
            found.add(ingress["ip"])
        elif ingress.get("hostname"):
            found.add(ingress["hostname"])
    result = ",".join(sorted(found))
    if not wide and len(result) > 16:
        result = result[:13] + "..."
    return result


def service_external_ip(svc: dict, wide: bool = True) -> str:
    """The EXTERNAL-IP cell (the server always prints wide, i.e. unclipped)."""
    spec = _spec(svc)
    external_ips = spec.get("externalIPs") or []
    svc_type = spec.get("type")
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if svc_type == "LoadBalancer":
        lb = _load_balancer_ips(_status(svc), wide)
        if external_ips:
            parts = (lb.split(",") if lb else []) + list(external_ips)
            return ",".join(parts)
        return lb or "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_ports(ports: list[dict] | None) -> str:
    pieces = []
    for p in ports or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            pieces.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            pieces.append(f"{p.get('port')}/{proto}")
    return ",".join(pieces) or "<none>"


def _print_service(svc: dict, now: float) -> list:
    spec = _spec(svc)
    cluster_ips = spec.get("clusterIPs") or []
    cluster_ip = cluster_ips[0] if cluster_ips else (spec.get("clusterIP") or "<none>")
    return [
        _name(svc),
        spec.get("type") or "",
        cluster_ip,
        service_external_ip(svc, wide=True),
        _service_ports(spec.get("ports")),
        _age(svc, now),
        format_labels(spec.get("selector")),
    ]


def format_endpoints(endpoints: dict) -> str:
    """`ip:port` for each address and port, the first 3 then ` + N more...`."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    limit, shown, count, more = 3, [], 0, False
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        targets = [None] if not ports else [p.get("port") for p in ports]
        for port in targets:
            count += len(addresses)
            for addr in addresses:
                if len(shown) == limit:
                    more = True
                    break
                ip = addr.get("ip") or ""
                shown.append(ip if port is None else _join_host_port(ip, port))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _print_endpoints(ep: dict, now: float) -> list:
    return [_name(ep), format_endpoints(ep), _age(ep, now)]


# --------------------------------------------------------------------------------------
# Config and cluster objects
# --------------------------------------------------------------------------------------


def _print_secret(secret: dict, now: float) -> list:
    # v1 -> internal conversion folds stringData into data before printing
    keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    return [_name(secret), secret.get("type") or "", len(keys), _age(secret, now)]


def _print_config_map(cm: dict, now: float) -> list:
    count = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [_name(cm), count, _age(cm, now)]


def _print_service_account(sa: dict, now: float) -> list:
    return [_name(sa), len(sa.get("secrets") or []), _age(sa, now)]


def _print_namespace(ns: dict, now: float) -> list:
    return [_name(ns), _status(ns).get("phase") or "", _age(ns, now)]


def _print_lease(lease: dict, now: float) -> list:
    return [_name(lease), _spec(lease).get("holderIdentity") or "", _age(lease, now)]


def _print_scale(scale: dict, now: float) -> list:
    return [_name(scale), int(_spec(scale).get("replicas") or 0),
            int(_status(scale).get("replicas") or 0), _age(scale, now)]


def _quantity_text(value: Any) -> str:
    """Quantity.String(): the canonical form ("1000m" -> "1"); unparsable values as stored."""
    try:
        return _quantity.canonical(value)
    except (_quantity.QuantityError, TypeError, ValueError):
        return str(value)


def _quota_columns(quota: dict) -> tuple[str, str]:
    status = _status(quota)
    hard, used = status.get("hard") or {}, status.get("used") or {}
    requests, limits = [], []
    for resource in sorted(hard):
        pieces = resource.split(".")
        target = limits if len(pieces) > 1 and pieces[0] == "limits" else requests
        used_text = _quantity_text(used.get(resource, "0"))
        target.append(f"{resource}: {used_text}/{_quantity_text(hard[resource])}")
    return ", ".join(requests), ", ".join(limits)


def _print_resource_quota(quota: dict, now: float) -> list:
    request, limit = _quota_columns(quota)
    return [_name(quota), request, limit, _age(quota, now)]


_ROLE_PREFIX = "node-role.kubernetes.io/"
_ROLE_LABEL = "kubernetes.io/role"


def node_roles(node: dict) -> list[str]:
    roles = set()
    for key, value in (_meta(node).get("labels") or {}).items():
        if key.startswith(_ROLE_PREFIX):
            role = key[len(_ROLE_PREFIX):]
            if role:
                roles.add(role)
        elif key == _ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def _node_status(node: dict) -> str:
    ready = None
    for cond in _status(node).get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = cond  # the last one wins, as in the real map
    parts = []
    if ready is None:
        parts.append("Unknown")
    else:
        parts.append("Ready" if ready.get("status") == "True" else "NotReady")
    if _spec(node).get("unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_address(node: dict, addr_type: str) -> str:
    for addr in _status(node).get("addresses") or []:
        if addr.get("type") == addr_type:
            return addr.get("address") or ""
    return "<none>"


def _print_node(node: dict, now: float) -> list:
    info = _status(node).get("nodeInfo") or {}
    return [
        _name(node),
        _node_status(node),
        ",".join(node_roles(node)) or "<none>",
        _age(node, now),
        info.get("kubeletVersion") or "",
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _event_source(event: dict) -> str:
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingController") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else component


def _print_event(event: dict, now: float) -> list:
    first = translate_timestamp_since(event.get("firstTimestamp"), now)
    if parse_timestamp(event.get("firstTimestamp")) is None:
        first = translate_timestamp_since(event.get("eventTime"), now)
    last = translate_timestamp_since(event.get("lastTimestamp"), now)
    if parse_timestamp(event.get("lastTimestamp")) is None:
        last = first
    count = int(event.get("count") or 0)
    series = event.get("series")
    if series is not None:
        last = translate_timestamp_since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = event.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [
        last,
        event.get("type") or "",
        event.get("reason") or "",
        target,
        involved.get("fieldPath") or "",
        _event_source(event),
        (event.get("message") or "").strip(),
        first,
        count,
        _name(event),
    ]


# --------------------------------------------------------------------------------------
# Default table and dispatch
# --------------------------------------------------------------------------------------


def _created_at(obj: dict) -> str:
    """Go's creationTimestamp.UTC().Format(time.RFC3339); zero time when unset."""
    t = parse_timestamp(_meta(obj).get("creationTimestamp"))
    if t is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(int(t // 1), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_cells(obj: dict) -> list:
    """The generic apiserver row: name and RFC 3339 creation time."""
    return [_name(obj), _created_at(obj)]


_PRINTERS = {
    "Pod": _print_pod,
    "ReplicationController": _print_replication_controller,
    "Service": _print_service,
    "Endpoints": _print_endpoints,
    "Secret": _print_secret,
    "Namespace": _print_namespace,
    "ResourceQuota": _print_resource_quota,
    "Node": _print_node,
    "Event": _print_event,
    "ConfigMap": _print_config_map,
    "ServiceAccount": _print_service_account,
    "Lease": _print_lease,
    "Scale": _print_scale,
}


def cells(kind: str, obj: dict, now: float) -> list[Any]:
    """The full (wide) row of one object, in the order of `columns(kind)`."""
    printer = _PRINTERS.get(kind)
    if printer is None:
        return default_cells(obj)
    return printer(obj, now)
