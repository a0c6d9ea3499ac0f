"""Lease (coordination.k8s.io/v1): node heartbeats in kube-node-lease, leader election.

Validation follows pkg/apis/coordination/validation ValidateLease / ValidateLeaseSpec.
"""
from __future__ import annotations

from shim.api.errors import FieldError, forbidden_field, invalid_value, unsupported
from shim.resources import validation
from shim.resources.base import Resource

LEASE_STRATEGIES = ["OldestEmulationVersion"]


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def lease_spec(spec) -> list[FieldError]:
    spec = spec if isinstance(spec, dict) else {}
    errs: list[FieldError] = []
    duration = _int(spec.get("leaseDurationSeconds"))
    if duration is not None and duration <= 0:
        errs.append(invalid_value("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = _int(spec.get("leaseTransitions"))
    if transitions is not None and transitions < 0:
        errs.append(invalid_value("spec.leaseTransitions", transitions,
                                  "must be greater than or equal to 0"))
    strategy = spec.get("strategy")
    if strategy is not None:
        errs += _strategy(str(strategy))
    if spec.get("preferredHolder") and not strategy:
        errs.append(forbidden_field("spec.preferredHolder",
                                    "may only be specified if `strategy` is defined"))
    return errs


def _strategy(strategy: str) -> list[FieldError]:
    if "/" not in strategy:
        if strategy not in LEASE_STRATEGIES:
            return [unsupported("spec.strategy.strategy", strategy, LEASE_STRATEGIES)]
        return []
    from shim.resources.validation import is_qualified_name
    return [invalid_value("spec.strategy.strategy", strategy, msg)
            for msg in is_qualified_name(strategy)]


class Leases(Resource):
    group, version = "coordination.k8s.io", "v1"
    kind, plural, singular = "Lease", "leases", "lease"
    name_validator = staticmethod(validation.name_is_dns_subdomain)

    def validate(self, obj):
        return super().validate(obj) + lease_spec(obj.get("spec"))

    def validate_update(self, new, old):
        return validation.object_meta_update(new.get("metadata"), old.get("metadata")) + \
            lease_spec(new.get("spec"))
