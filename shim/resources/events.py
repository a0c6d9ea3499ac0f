"""Event (core/v1): lenient validation, the involvedObject field selectors describe uses."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource


class Events(Resource):
    kind, plural, singular = "Event", "events", "event"
    short_names = ("ev",)
    allow_create_on_update = True
    name_validator = staticmethod(validation.name_is_dns_subdomain)
    selectable = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                  "involvedObject.uid", "involvedObject.apiVersion",
                  "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                  "reportingComponent", "source", "type")

    def field_value(self, obj, field):
        if field == "source":
            return (obj.get("source") or {}).get("component", "")
        return super().field_value(obj, field)

    def default(self, obj):
        defaults.event(obj)

    def validate(self, obj):
        return validation.event(obj)
