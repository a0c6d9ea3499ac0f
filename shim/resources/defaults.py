"""Per-kind defaulting of core/v1 objects, as the apiserver applies it when it decodes a body.

Owns the behaviour of pkg/apis/core/v1/defaults.go plus the declarative defaults of
zz_generated.defaults.go (Kubernetes 1.32), and the create-time field fills of the namespace
strategy and the pod QoS computation. Every function mutates the JSON-shaped dict it is
given in place and returns it. Nothing here validates: malformed values are left alone for
validation.py to report. Not here: clusterIP / nodePort allocation, admission side effects
(service account volume, tolerations, priority), metadata (uid, timestamps, generation).
"""
from __future__ import annotations

import base64
import re
from typing import Any

from shim.resources import quantity

_SECRET_DEFAULT_MODE = 420          # 0644
_TOKEN_EXPIRATION_SECONDS = 3600    # SetDefaults_ServiceAccountTokenProjection
_CLIENT_IP_TIMEOUT = 10800          # DefaultClientIPServiceAffinitySeconds

# Every VolumeSource member: a volume with none of them becomes emptyDir.
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image",
)


def _dict(parent: dict, key: str) -> dict:
    """parent[key] as a dict, created when missing or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _items(value: Any) -> list:
    """The dict members of a list field (tolerates null / wrong types)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _set_default(obj: dict, key: str, value: Any) -> None:
    if obj.get(key) in (None, ""):
        obj[key] = value


# ---- resource lists ------------------------------------------------------------------------

def resource_list(rl: Any) -> None:
    """SetDefaults_ResourceList: round every quantity up to milli scale (canonical form)."""
    if not isinstance(rl, dict):
        return
    for key, value in list(rl.items()):
        try:
            rl[key] = quantity.round_up(value, -3)
        except quantity.QuantityError:
            pass  # left for validation / decoding to reject


# ---- pods ----------------------------------------------------------------------------------

# The docker reference grammar (distribution/reference), enough to tell valid from invalid.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = (r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
           r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?")
_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$")


def image_tag(image: str) -> tuple[str, str] | None:
    """(tag, digest) of an image reference, tag "latest" when it has neither; None if unparsable.

    Mirrors pkg/util/parsers.ParseImageName (docker's ParseNormalizedNamed).
    """
    m = _REFERENCE.match(image or "")
    if not m or len(image) > 255 + 128 + 80:
        return None
    tag, digest = m.group("tag") or "", m.group("digest") or ""
    if not tag and not digest:
        tag = "latest"
    return tag, digest


def _pull_policy(image: Any) -> str:
    """Always for ":latest" or an untagged name; IfNotPresent otherwise (also when unparsable)."""
    parsed = image_tag(image if isinstance(image, str) else "")
    return "Always" if parsed and parsed[0] == "latest" else "IfNotPresent"


def _http_get(action: Any) -> None:
    if isinstance(action, dict):
        _set_default(action, "path", "/")
        _set_default(action, "scheme", "HTTP")


def probe(p: Any) -> None:
    """SetDefaults_Probe + handler defaults (httpGet path/scheme, grpc service "")."""
    if not isinstance(p, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10),
                       ("successThreshold", 1), ("failureThreshold", 3)):
        if not p.get(key):
            p[key] = value
    _http_get(p.get("httpGet"))
    grpc = p.get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""


def _field_ref(ref: Any) -> None:
    if isinstance(ref, dict):
        _set_default(ref, "apiVersion", "v1")


def container(c: dict) -> None:
    """SetDefaults_Container and the declarative defaults nested in a container."""
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = _pull_policy(c.get("image"))
    _set_default(c, "terminationMessagePath", "/dev/termination-log")
    _set_default(c, "terminationMessagePolicy", "File")
    for port in _items(c.get("ports")):
        _set_default(port, "protocol", "TCP")
    for env in _items(c.get("env")):
        value_from = env.get("valueFrom")
        if isinstance(value_from, dict):
            _field_ref(value_from.get("fieldRef"))
    resources = c.get("resources")
    if not isinstance(resources, dict):
        resources = c["resources"] = {}
    resource_list(resources.get("limits"))
    resource_list(resources.get("requests"))
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe(c.get(name))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                _http_get(lifecycle[hook].get("httpGet"))


def _downward_items(items: Any) -> None:
    for item in _items(items):
        _field_ref(item.get("fieldRef"))


def volume(v: dict) -> None:
    """SetDefaults_Volume and the per-source defaults (modes, hostPath type, ...)."""
    if not any(v.get(src) is not None for src in VOLUME_SOURCES):
        v["emptyDir"] = {}
    if isinstance(v.get("hostPath"), dict) and v["hostPath"].get("type") is None:
        v["hostPath"]["type"] = ""
    for src in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(v.get(src), dict) and v[src].get("defaultMode") is None:
            v[src]["defaultMode"] = _SECRET_DEFAULT_MODE
    if isinstance(v.get("downwardAPI"), dict):
        _downward_items(v["downwardAPI"].get("items"))
    if isinstance(v.get("projected"), dict):
        for source in _items(v["projected"].get("sources")):
            if isinstance(source.get("downwardAPI"), dict):
                _downward_items(source["downwardAPI"].get("items"))
            token = source.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = _TOKEN_EXPIRATION_SECONDS
    _legacy_volume_defaults(v)
    ephemeral = v.get("ephemeral")
    if isinstance(ephemeral, dict) and isinstance(ephemeral.get("volumeClaimTemplate"), dict):
        spec = _dict(ephemeral["volumeClaimTemplate"], "spec")
        _set_default(spec, "volumeMode", "Filesystem")
        if isinstance(spec.get("resources"), dict):
            resource_list(spec["resources"].get("limits"))
            resource_list(spec["resources"].get("requests"))


def _legacy_volume_defaults(v: dict) -> None:
    """Defaults of the in-tree volume plugins (iscsi, rbd, azureDisk, scaleIO)."""
    if isinstance(v.get("iscsi"), dict):
        _set_default(v["iscsi"], "iscsiInterface", "default")
    if isinstance(v.get("rbd"), dict):
        for key, value in (("pool", "rbd"), ("user", "admin"), ("keyring", "/etc/ceph/keyring")):
            _set_default(v["rbd"], key, value)
    if isinstance(v.get("azureDisk"), dict):
        az = v["azureDisk"]
        for key, value in (("cachingMode", "ReadWrite"), ("fsType", "ext4"), ("kind", "Shared")):
            _set_default(az, key, value)
        if az.get("readOnly") is None:
            az["readOnly"] = False
    if isinstance(v.get("scaleIO"), dict):
        _set_default(v["scaleIO"], "storageMode", "ThinProvisioned")
        _set_default(v["scaleIO"], "fsType", "xfs")


def pod_spec(spec: dict, *, for_template: bool = False) -> dict:
    """SetDefaults_PodSpec + volume/container defaults; the Pod-only ones unless for_template."""
    _set_default(spec, "dnsPolicy", "ClusterFirst")
    _set_default(spec, "restartPolicy", "Always")
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    _set_default(spec, "schedulerName", "default-scheduler")
    for v in _items(spec.get("volumes")):
        volume(v)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _items(spec.get(key)):
            container(c)
    resource_list(spec.get("overhead"))
    if not for_template:
        _pod_only_spec_defaults(spec)
    return spec


def _requests_from_limits(c: dict) -> None:
    resources = c.get("resources")
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict):
        return
    requests = resources.get("requests")
    if not isinstance(requests, dict):
        requests = {}
    for key, value in resources["limits"].items():
        requests.setdefault(key, value)
    if requests:  # an empty ResourceList is omitted on the wire
        resources["requests"] = requests


def _pod_only_spec_defaults(spec: dict) -> None:
    """SetDefaults_Pod: requests from limits, enableServiceLinks, hostNetwork host ports."""
    for key in ("containers", "initContainers"):
        for c in _items(spec.get(key)):
            _requests_from_limits(c)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for c in _items(spec.get(key)):
                for port in _items(c.get("ports")):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")


def pod(obj: dict) -> dict:
    """Default a Pod (SetObjectDefaults_Pod)."""
    pod_spec(_dict(obj, "spec"))
    return obj


def _qos_totals(resources: Any, kind: str, totals: dict) -> set:
    """Add positive cpu/memory quantities of requests|limits into totals; return names seen."""
    found = set()
    rl = resources.get(kind) if isinstance(resources, dict) else None
    if not isinstance(rl, dict):
        return found
    for name in ("cpu", "memory"):
        if name not in rl:
            continue
        try:
            value = quantity.parse_quantity(rl[name])
        except quantity.QuantityError:
            continue
        if value > 0:
            found.add(name)
            totals[name] = totals.get(name, 0) + value
    return found


def qos_class(pod_obj: dict) -> str:
    """The pod's QoS class (pkg/apis/core/helper/qos ComputePodQOS): cpu and memory only."""
    spec = pod_obj.get("spec") or {}
    requests: dict = {}
    limits: dict = {}
    guaranteed = True
    for c in _items(spec.get("containers")) + _items(spec.get("initContainers")):
        resources = c.get("resources")
        _qos_totals(resources, "requests", requests)
        if _qos_totals(resources, "limits", limits) != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(k) == v for k, v in requests.items()) \
            and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


# ---- workloads and networking --------------------------------------------------------------

def replication_controller(obj: dict) -> dict:
    """SetDefaults_ReplicationController + replicas 1 + template pod spec defaults."""
    spec = _dict(obj, "spec")
    template = spec.get("template")
    labels = None
    if isinstance(template, dict):
        labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = _dict(obj, "metadata")
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if isinstance(template, dict):
        pod_spec(_dict(template, "spec"), for_template=True)
    return obj


def externally_accessible(spec: dict) -> bool:
    """pkg/api/v1/service ExternallyAccessible."""
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs")))


def _service_ports(spec: dict) -> None:
    for port in _items(spec.get("ports")):
        _set_default(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")


def service(obj: dict) -> dict:
    """SetDefaults_Service (not clusterIP/nodePort allocation); syncs clusterIPs from clusterIP."""
    spec = _dict(obj, "spec")
    _set_default(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        cfg = spec.get("sessionAffinityConfig") or {}
        if not isinstance(cfg.get("clientIP"), dict) or cfg["clientIP"].get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": _CLIENT_IP_TIMEOUT}}
    _set_default(spec, "type", "ClusterIP")
    _service_ports(spec)
    if externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and \
            spec["type"] in ("NodePort", "LoadBalancer", "ClusterIP"):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        lb = (obj.get("status") or {}).get("loadBalancer") or {}
        for ing in _items(lb.get("ingress")):
            if ing.get("ip") and ing.get("ipMode") is None:
                ing["ipMode"] = "VIP"
    # The service strategy's normalizeClusterIPs: a lone clusterIP seeds clusterIPs.
    if spec.get("clusterIP") and not spec.get("clusterIPs") and spec["type"] != "ExternalName":
        spec["clusterIPs"] = [spec["clusterIP"]]
    return obj


def endpoints(obj: dict) -> dict:
    """SetDefaults_Endpoints: subsets[].ports[].protocol TCP."""
    for subset in _items(obj.get("subsets")):
        for port in _items(subset.get("ports")):
            _set_default(port, "protocol", "TCP")
    return obj


# ---- config and cluster objects ------------------------------------------------------------

def secret(obj: dict) -> dict:
    """Type Opaque by default; stringData folded into data as base64 (stringData wins)."""
    _set_default(obj, "type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            raw = value if isinstance(value, str) else ("" if value is None else str(value))
            data[key] = base64.b64encode(raw.encode()).decode()
    return obj


def config_map(obj: dict) -> dict:
    """SetDefaults_ConfigMap only makes an empty map, which the wire form omits."""
    return obj


def namespace(obj: dict) -> dict:
    """Label kubernetes.io/metadata.name, finalizer "kubernetes", phase Active."""
    meta = _dict(obj, "metadata")
    if meta.get("name"):
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels["kubernetes.io/metadata.name"] = meta["name"]
    spec = _dict(obj, "spec")
    finalizers = spec.get("finalizers")
    if not isinstance(finalizers, list):
        finalizers = spec["finalizers"] = []
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")
    status = _dict(obj, "status")
    _set_default(status, "phase", "Active")
    return obj


def node(obj: dict) -> dict:
    """SetDefaults_NodeStatus (allocatable from capacity) and quantity rounding."""
    status = obj.get("status")
    if isinstance(status, dict):
        if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
            status["allocatable"] = dict(status["capacity"])
        resource_list(status.get("capacity"))
        resource_list(status.get("allocatable"))
    return obj


def event(obj: dict) -> dict:
    """core/v1 Event has no defaults."""
    return obj


def resource_quota(obj: dict) -> dict:
    """Quantities of spec.hard, status.hard and status.used rounded to milli scale."""
    resource_list((obj.get("spec") or {}).get("hard"))
    status = obj.get("status")
    if isinstance(status, dict):
        resource_list(status.get("hard"))
        resource_list(status.get("used"))
    return obj


def _limit_range_item(item: dict) -> None:
    """SetDefaults_LimitRangeItem: Container defaults from max, defaultRequest from default/min."""
    if item.get("type") == "Container":
        default = item.get("default")
        if not isinstance(default, dict):
            default = item["default"] = {}
        default_request = item.get("defaultRequest")
        if not isinstance(default_request, dict):
            default_request = item["defaultRequest"] = {}
        for key, value in (item.get("max") or {}).items():
            default.setdefault(key, value)
        for key, value in default.items():
            default_request.setdefault(key, value)
        for key, value in (item.get("min") or {}).items():
            default_request.setdefault(key, value)
        for key in ("default", "defaultRequest"):
            if not item[key]:  # an empty ResourceList is omitted on the wire
                del item[key]
    for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
        resource_list(item.get(key))


def limit_range(obj: dict) -> dict:
    for item in _items((obj.get("spec") or {}).get("limits")):
        _limit_range_item(item)
    return obj


def service_account(obj: dict) -> dict:
    """ServiceAccount has no defaults."""
    return obj
