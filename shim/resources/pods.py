"""Pod: defaults, admission side effects (service account, default tolerations, priority),
validation and the update restrictions, graceful deletion, field selectors, binding."""
from __future__ import annotations

import random

import orjson

from shim.api import errors
from shim.resources import defaults, validation
from shim.resources.base import Resource, Subresource

_SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_RAND = "bcdfghjklmnpqrstvwxz2456789"


class Pods(Resource):
    kind, plural, singular = "Pod", "pods", "pod"
    short_names, categories = ("po",), ("all",)
    has_status = True
    delete_returns_object = True
    name_validator = staticmethod(validation.name_is_dns_subdomain)
    selectable = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                  "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
                  "status.podIPs", "status.nominatedNodeName")
    subresources = (
        Subresource("attach", "PodAttachOptions", ("create", "get")),
        Subresource("binding", "Binding", ("create",)),
        Subresource("ephemeralcontainers", "Pod", ("get", "patch", "update")),
        Subresource("eviction", "Eviction", ("create",), "policy", "v1"),
        Subresource("exec", "PodExecOptions", ("create", "get")),
        Subresource("log", "Pod", ("get",)),
        Subresource("portforward", "PodPortForwardOptions", ("create", "get")),
        Subresource("proxy", "PodProxyOptions", ("create", "delete", "get", "patch", "update")),
        Subresource("status", "Pod", ("get", "patch", "update")),
    )

    def supports_field(self, field: str) -> bool:
        return field == "spec.host" or super().supports_field(field)

    def field_value(self, obj, field):
        if field == "spec.host":
            field = "spec.nodeName"
        if field == "spec.hostNetwork":
            return "true" if obj.get("spec", {}).get("hostNetwork") else "false"
        if field == "status.podIPs":
            ips = obj.get("status", {}).get("podIPs") or []
            return ips[0].get("ip", "") if ips else ""
        return super().field_value(obj, field)

    def prepare_for_create(self, obj, ctx):
        obj.pop("status", None)
        key = _spec_key(obj.get("spec"))
        hit = _DEFAULTED.get(key) if key is not None else None
        if hit is None:
            defaults.pod(obj)
            hit = (orjson.dumps(obj["spec"]), defaults.qos_class(obj))
            if key is not None:
                _remember(_DEFAULTED, key, hit)
        else:
            obj["spec"] = orjson.loads(hit[0])
        obj["status"] = {"phase": "Pending", "qosClass": hit[1]}

    def default(self, obj):
        defaults.pod(obj)

    def validate(self, obj):
        # Everything but the metadata checks depends on the spec alone: pods stamped from one
        # template (RCs, jobs, benchmarks) validate their identical spec once.
        spec = obj.get("spec")
        key = _spec_key(spec)
        if key is None:
            return validation.pod(obj)
        spec_errs = _SPEC_ERRORS.get(key)
        if spec_errs is None:
            spec_errs = validation.pod({"metadata": {"name": "x", "namespace": "x"}, "spec": spec})
            _remember(_SPEC_ERRORS, key, spec_errs)
        return validation.object_meta(obj.get("metadata"), namespaced=True,
                                      name_fn=validation.name_is_dns_subdomain) + list(spec_errs)

    def validate_update(self, new, old):
        return validation.pod_update(new, old)

    def prepare_for_status_update(self, new, old):
        out = super().prepare_for_status_update(new, old)
        out["spec"] = old.get("spec", {})
        return out

    async def admit_create(self, obj, ctx):
        spec = obj.setdefault("spec", {})
        meta = obj["metadata"]
        # ServiceAccount admission
        sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = sa
        spec["serviceAccount"] = sa
        sares = ctx.rest.registry.get("", "v1", "serviceaccounts")
        sa_entry = await ctx.store.get(sares.key(meta["namespace"], sa))
        if sa_entry is None:
            raise errors.forbidden("pods", meta.get("name"),
                                   f"error looking up service account {meta['namespace']}/{sa}: "
                                   f'serviceaccount "{sa}" not found')
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = sa_entry.obj.get("automountServiceAccountToken", True)
        if automount and not _has_sa_mount(spec):
            vname = "kube-api-access-" + "".join(random.choice(_RAND) for _ in range(5))
            spec.setdefault("volumes", []).append({"name": vname, "projected": {
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt",
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                        "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}],
                "defaultMode": 420}})
            for group in ("initContainers", "containers"):
                for c in spec.get(group) or []:
                    c.setdefault("volumeMounts", []).append(
                        {"name": vname, "readOnly": True, "mountPath": _SA_MOUNT})
        # DefaultTolerationSeconds admission
        tols = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(t.get("key") == key and t.get("effect") in ("NoExecute", None, "")
                       for t in tols):
                tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 300})
        # Priority admission
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def graceful_delete_seconds(self, obj, options):
        spec = obj.get("spec", {})
        phase = obj.get("status", {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        grace = options.grace_period_seconds
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace is not None and grace < 0:
            grace = 1
        return grace

    def validate_status_update(self, new, old):
        return validation.pod_status_update(new, old)


_DEFAULTED: dict[bytes, tuple[bytes, str]] = {}   # raw spec -> (defaulted spec, qosClass)
_SPEC_ERRORS: dict[bytes, list] = {}              # defaulted spec -> its validation errors
_MEMO_SIZE = 256


def _spec_key(spec) -> bytes | None:
    if not isinstance(spec, dict):
        return None
    try:
        return orjson.dumps(spec)
    except (TypeError, orjson.JSONEncodeError):   # e.g. integers beyond 64 bits from YAML
        return None


def _remember(memo: dict, key: bytes, value) -> None:
    if len(memo) >= _MEMO_SIZE:
        memo.pop(next(iter(memo)))
    memo[key] = value


def _has_sa_mount(spec: dict) -> bool:
    return any(m.get("mountPath") == _SA_MOUNT
               for c in spec.get("containers") or [] for m in c.get("volumeMounts") or [])
