"""ResourceQuota: spec.hard validated as quantities; status written by the quota controller."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource, Subresource


class ResourceQuotas(Resource):
    kind, plural, singular = "ResourceQuota", "resourcequotas", "resourcequota"
    short_names = ("quota",)
    has_status = True
    delete_returns_object = True
    name_validator = staticmethod(validation.name_is_dns_subdomain)
    subresources = (Subresource("status", "ResourceQuota", ("get", "patch", "update")),)

    def prepare_for_create(self, obj, ctx):
        # the real strategy resets status to an empty ResourceQuotaStatus (`"status": {}`)
        obj["status"] = {}
        self.default(obj)

    def default(self, obj):
        defaults.resource_quota(obj)

    def validate(self, obj):
        return validation.resource_quota(obj)

    def validate_update(self, new, old):
        return validation.resource_quota_update(new, old)

    def validate_status_update(self, new, old):
        return validation.resource_quota_status_update(new, old)
