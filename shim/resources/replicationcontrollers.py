"""ReplicationController: template defaults, selector from template labels, generation,
status subresource and the autoscaling/v1 Scale subresource."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource, Subresource


class ReplicationControllers(Resource):
    kind, plural, singular = "ReplicationController", "replicationcontrollers", "replicationcontroller"
    short_names, categories = ("rc",), ("all",)
    has_status = True
    generation_on_spec_change = True
    name_validator = staticmethod(validation.name_is_dns_subdomain)
    selectable = ("status.replicas",)
    subresources = (
        Subresource("scale", "Scale", ("get", "patch", "update"), "autoscaling", "v1"),
        Subresource("status", "ReplicationController", ("get", "patch", "update")),
    )

    def prepare_for_create(self, obj, ctx):
        obj.pop("status", None)
        defaults.replication_controller(obj)
        obj["status"] = {"replicas": 0}

    def default(self, obj):
        defaults.replication_controller(obj)

    def validate(self, obj):
        return validation.replication_controller(obj)

    def validate_update(self, new, old):
        return validation.replication_controller_update(new, old)

    def field_value(self, obj, field):
        if field == "status.replicas":
            return str(obj.get("status", {}).get("replicas", 0))
        return super().field_value(obj, field)

    # ---- autoscaling/v1 Scale ----
    @staticmethod
    def to_scale(rc: dict) -> dict:
        from shim.api.selectors import format_map_selector
        m = rc["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                               "creationTimestamp") if k in m},
                "spec": {"replicas": rc.get("spec", {}).get("replicas", 0)},
                "status": {"replicas": rc.get("status", {}).get("replicas", 0),
                           "selector": format_map_selector(rc.get("spec", {}).get("selector"))}}

    def validate_status_update(self, new, old):
        return validation.replication_controller_status_update(new, old)
