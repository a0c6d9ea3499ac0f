"""Secret: type Opaque by default, stringData folded into data, immutable secrets."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource


class Secrets(Resource):
    kind, plural, singular = "Secret", "secrets", "secret"
    name_validator = staticmethod(validation.name_is_dns_subdomain)
    selectable = ("type",)

    def default(self, obj):
        defaults.secret(obj)

    def validate(self, obj):
        return validation.secret(obj)

    def validate_update(self, new, old):
        return validation.secret_update(new, old)

    def field_value(self, obj, field):
        if field == "type":
            return obj.get("type", "")
        return super().field_value(obj, field)
