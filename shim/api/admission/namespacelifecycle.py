"""NamespaceLifecycle admission, the part not in rest.py: the system namespaces can never be
deleted (`namespaces "default" is forbidden: this namespace may not be deleted`)."""
from __future__ import annotations

from shim.api import errors

IMMORTAL = frozenset(("default", "kube-system", "kube-public", "kube-node-lease"))


class NamespaceLifecycle:
    async def admit(self, attrs) -> None:
        if attrs.operation == "DELETE" and attrs.resource.kind == "Namespace" and \
                attrs.subresource is None and attrs.name in IMMORTAL:
            raise errors.forbidden("namespaces", attrs.name, "this namespace may not be deleted")
