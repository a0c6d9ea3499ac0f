"""Node (cluster-scoped): status subresource, spec.unschedulable field selector."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource, Subresource


class Nodes(Resource):
    kind, plural, singular = "Node", "nodes", "node"
    short_names = ("no",)
    namespaced = False
    has_status = True
    name_validator = staticmethod(validation.name_is_dns_subdomain)
    selectable = ("spec.unschedulable",)
    subresources = (
        Subresource("proxy", "NodeProxyOptions", ("create", "delete", "get", "patch", "update")),
        Subresource("status", "Node", ("get", "patch", "update")),
    )

    def prepare_for_create(self, obj, ctx):
        # nodes keep the status they register with (the kubelet creates them with status)
        self.default(obj)

    def default(self, obj):
        defaults.node(obj)

    def field_value(self, obj, field):
        if field == "spec.unschedulable":
            return "true" if obj.get("spec", {}).get("unschedulable") else "false"
        return super().field_value(obj, field)

    def validate(self, obj):
        return validation.node(obj)

    def validate_update(self, new, old):
        return validation.node_update(new, old)
