"""Endpoints: defaults (port protocol), validation; create-on-update allowed."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource


class Endpoints(Resource):
    kind, plural, singular = "Endpoints", "endpoints", "endpoints"
    short_names = ("ep",)
    allow_create_on_update = True
    name_validator = staticmethod(validation.name_is_dns_subdomain)

    def default(self, obj):
        defaults.endpoints(obj)

    def validate(self, obj):
        return validation.endpoints(obj)

    def validate_update(self, new, old):
        return validation.endpoints_update(new, old)
