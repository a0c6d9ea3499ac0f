"""Namespace (cluster-scoped): finalizers ["kubernetes"], phase Active, the name label,
Terminating on delete, /finalize and /status subresources; no deletecollection."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource, Subresource


class Namespaces(Resource):
    kind, plural, singular = "Namespace", "namespaces", "namespace"
    short_names = ("ns",)
    namespaced = False
    has_status = True
    delete_returns_object = True
    verbs = ("create", "delete", "get", "list", "patch", "update", "watch")
    name_validator = staticmethod(validation.name_is_dns_label)
    selectable = ("status.phase",)
    subresources = (
        Subresource("finalize", "Namespace", ("update",)),
        Subresource("status", "Namespace", ("get", "patch", "update")),
    )

    def field_value(self, obj, field):
        if field == "metadata.namespace":
            return None
        return super().field_value(obj, field)

    def prepare_for_create(self, obj, ctx):
        obj.pop("status", None)
        defaults.namespace(obj)
        obj["status"] = {"phase": "Active"}

    def default(self, obj):
        defaults.namespace(obj)

    def prepare_for_update(self, new, old):
        # spec.finalizers change only through /finalize; status only through /status
        new.setdefault("spec", {})
        if "finalizers" in old.get("spec", {}):
            new["spec"]["finalizers"] = old["spec"]["finalizers"]
        else:
            new["spec"].pop("finalizers", None)
        super().prepare_for_update(new, old)

    def prepare_for_finalize(self, new: dict, old: dict) -> dict:
        import orjson
        out = orjson.loads(orjson.dumps(old))
        out["spec"] = dict(out.get("spec") or {})
        fins = (new.get("spec") or {}).get("finalizers")
        if fins:
            out["spec"]["finalizers"] = fins
        else:
            out["spec"].pop("finalizers", None)
        return out

    def prepare_for_delete(self, obj):
        obj.setdefault("status", {})["phase"] = "Terminating"

    def validate(self, obj):
        return validation.namespace(obj)

    def validate_update(self, new, old):
        return validation.namespace_update(new, old)

    def validate_status_update(self, new, old):
        return validation.namespace_status_update(new, old)
