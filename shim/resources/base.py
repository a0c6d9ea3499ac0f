"""The resource strategy: what one kind declares, and the registry of served kinds.

A kind module (pods.py, services.py, ...) subclasses `Resource` and overrides only
what is special about it — names, scope, defaulting, validation, status handling,
selectable fields, table printing, delete behaviour, subresources — exactly as the
real apiserver's pkg/registry/core/<kind>/strategy.go does. The generic REST code in
shim/api/rest.py does everything else once for every kind.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shim.api.errors import FieldError
from shim.openapi import schema

if TYPE_CHECKING:
    from shim.api.rest import Context

FULL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = "v1"


class Resource:
    # ---- names and scope ----
    group: str = ""
    version: str = "v1"
    kind: str = ""
    plural: str = ""
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    namespaced: bool = True
    verbs: tuple[str, ...] = FULL_VERBS
    subresources: tuple[Subresource, ...] = ()

    # ---- behaviour switches (the real strategies' flags) ----
    allow_unconditional_update: bool = True
    delete_returns_object: bool = False      # ReturnDeletedObject
    has_status: bool = False                 # spec/status split: status reset on create/update
    generation_on_spec_change: bool = False  # metadata.generation bumps when spec changes
    name_validator = None                    # set by subclasses: fn(name) -> list[str]
    selectable: tuple[str, ...] = ()          # field selector keys beyond metadata.name/namespace

    # ---- derived ----
    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @functools.cached_property
    def definition(self) -> str:
        return schema.kind_definition(self.group, self.version, self.kind)

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.plural}/{namespace}/{name}"
        return f"/registry/{self.plural}/{name}"

    def prefix(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"/registry/{self.plural}/{namespace}/"
        return f"/registry/{self.plural}/"

    def has_subresource(self, name: str) -> bool:
        return any(s.name == name for s in self.subresources)

    # ---- strategy hooks (defaults: nothing special) ----
    def prepare_for_create(self, obj: dict, ctx: "Context") -> None:
        """Defaults and server-set fields before validation (status reset for has_status kinds)."""
        if self.has_status:
            obj.pop("status", None)
        self.default(obj)

    def default(self, obj: dict) -> None:
        """Field defaulting shared by create and update (defaults.go)."""

    def validate(self, obj: dict) -> list[FieldError]:
        """Create validation, object metadata included."""
        from shim.resources import validation
        return validation.object_meta(obj.get("metadata"), namespaced=self.namespaced,
                                      name_fn=self.name_validator)

    def prepare_for_update(self, new: dict, old: dict) -> None:
        """Main-resource update: status is kept from the stored object."""
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        self.default(new)

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        """Update validation (immutable metadata + the new object's validity)."""
        from shim.resources import validation
        return validation.object_meta_update(new.get("metadata"), old.get("metadata")) + \
            self.validate(new)

    def prepare_for_status_update(self, new: dict, old: dict) -> dict:
        """Status update: only .status of `new` is taken; returns the object to store."""
        out = dict(old)
        out["metadata"] = new.get("metadata", old["metadata"])
        if "status" in new:
            out["status"] = new["status"]
        else:
            out.pop("status", None)
        return out

    def validate_status_update(self, new: dict, old: dict) -> list[FieldError]:
        return []

    def spec_changed(self, new: dict, old: dict) -> bool:
        return new.get("spec") != old.get("spec")

    def field_value(self, obj: dict, field: str) -> str | None:
        """Value of a selectable field as a string (None = not selectable)."""
        meta = obj.get("metadata", {})
        if field == "metadata.name":
            return meta.get("name", "")
        if field == "metadata.namespace":
            if not self.namespaced:
                return None if self.kind != "Namespace" else None
            return meta.get("namespace", "")
        if field in self.selectable:
            return _lookup(obj, field)
        return None

    def supports_field(self, field: str) -> bool:
        if field == "metadata.name":
            return True
        if field == "metadata.namespace":
            return self.namespaced
        return field in self.selectable

    def graceful_delete_seconds(self, obj: dict, options: dict) -> int | None:
        """Seconds of graceful deletion, or None for immediate removal (RESTGracefulDeleteStrategy)."""
        return None

    def prepare_for_delete(self, obj: dict) -> None:
        """Changes made when graceful deletion or finalizers keep the object (namespaces: phase)."""

    # hooks with effects outside the object (admission, allocators, cleanup)
    async def admit_create(self, obj: dict, ctx: "Context") -> None:
        """Admission on create, after validation (e.g. the ServiceAccount plugin for pods)."""

    async def before_create(self, obj: dict, ctx: "Context", dry_run: bool = False) -> None:
        """Last step before the store write (allocators); undone by after_delete on failure."""

    async def after_delete(self, obj: dict, ctx: "Context") -> None: ...

    async def before_update(self, new: dict, old: dict, ctx: "Context") -> None: ...


def _lookup(obj: dict, dotted: str) -> str:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
        if cur is None:
            return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


class Registry:
    """Every served kind, looked up by (group, version, plural) or kind."""

    def __init__(self, resources: list[Resource]):
        self.resources = resources
        self._by_path = {(r.group, r.version, r.plural): r for r in resources}
        self._by_kind = {(r.group, r.version, r.kind): r for r in resources}

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> Resource | None:
        return self._by_kind.get((group, version, kind))

    def group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.resources:
            vs = out.setdefault(r.group, [])
            if r.version not in vs:
                vs.append(r.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and r.version == version]
