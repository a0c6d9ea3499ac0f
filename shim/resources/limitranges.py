"""LimitRange (kubectl describe namespace lists them)."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource


class LimitRanges(Resource):
    kind, plural, singular = "LimitRange", "limitranges", "limitrange"
    short_names = ("limits",)
    allow_create_on_update = True
    name_validator = staticmethod(validation.name_is_dns_subdomain)

    def default(self, obj):
        defaults.limit_range(obj)

    def validate(self, obj):
        return validation.limit_range(obj)
