"""ServiceAccount; delete returns the object."""
from __future__ import annotations

from shim.resources import defaults, validation
from shim.resources.base import Resource, Subresource


class ServiceAccounts(Resource):
    kind, plural, singular = "ServiceAccount", "serviceaccounts", "serviceaccount"
    short_names = ("sa",)
    delete_returns_object = True
    allow_create_on_update = True
    name_validator = staticmethod(validation.name_is_dns_subdomain)
    subresources = (Subresource("token", "TokenRequest", ("create",), "authentication.k8s.io", "v1"),)

    def default(self, obj):
        defaults.service_account(obj)

    def validate(self, obj):
        return validation.service_account(obj)

    def validate_update(self, new, old):
        return validation.service_account_update(new, old)
