"""ConfigMap: validation of keys and size, immutable configmaps."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource


class ConfigMaps(Resource):
    kind, plural, singular = "ConfigMap", "configmaps", "configmap"
    short_names = ("cm",)
    name_validator = staticmethod(validation.name_is_dns_subdomain)

    def default(self, obj):
        defaults.config_map(obj)

    def validate(self, obj):
        return validation.config_map(obj)

    def validate_update(self, new, old):
        return validation.config_map_update(new, old)
