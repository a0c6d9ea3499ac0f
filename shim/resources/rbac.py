"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Defaulting and validation follow pkg/apis/rbac (v1 defaults: roleRef.apiGroup and
User/Group subjects' apiGroup default to rbac.authorization.k8s.io; validation:
path-segment names, rule shape, roleRef kind/apiGroup/name, subjects; roleRef is
immutable). Table printing is the 1.32 printers' (Role/ClusterRole: Name, Created
At; bindings: Name, Role, Age, and wide Users, Groups, ServiceAccounts); the columns
are registered into shim.resources.printers from here.

Escalation prevention (the user must hold what a role grants, or have `escalate` /
`bind`) needs the caller, so it lives in shim/api/auth/escalation.py as an admission
plugin.
"""
from __future__ import annotations

from datetime import datetime, timezone

from shim.api.errors import FieldError, invalid_value, required, unsupported
from shim.resources import printers, validation
from shim.resources.base import Resource

GROUP = "rbac.authorization.k8s.io"


def path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """ValidateRBACName (path.IsValidPathSegmentName / Prefix)."""
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# ---- defaulting ----------------------------------------------------------------------------

def default_binding(obj: dict) -> None:
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for s in obj.get("subjects") or []:
        if isinstance(s, dict) and s.get("kind") in ("User", "Group") and not s.get("apiGroup"):
            s["apiGroup"] = GROUP


# ---- validation ----------------------------------------------------------------------------

def policy_rule(rule, namespaced: bool, path: str) -> list[FieldError]:
    rule = rule if isinstance(rule, dict) else {}
    errs: list[FieldError] = []
    if not rule.get("verbs"):
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            errs.append(invalid_value(f"{path}.nonResourceURLs", urls,
                                      "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(invalid_value(f"{path}.nonResourceURLs", urls,
                                      "rules cannot apply to both regular resources and "
                                      "non-resource URLs"))
        return errs
    if not rule.get("apiGroups"):
        errs.append(required(f"{path}.apiGroups",
                             "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        errs.append(required(f"{path}.resources",
                             "resource rules must supply at least one resource"))
    return errs


def role(obj: dict, namespaced: bool) -> list[FieldError]:
    errs = validation.object_meta(obj.get("metadata"), namespaced=namespaced,
                                  name_fn=path_segment_name)
    for i, r in enumerate(obj.get("rules") or []):
        errs += policy_rule(r, namespaced, f"rules[{i}]")
    agg = obj.get("aggregationRule")
    if not namespaced and isinstance(agg, dict) and not agg.get("clusterRoleSelectors"):
        errs.append(required("aggregationRule.clusterRoleSelectors",
                             "at least one clusterRoleSelector required if aggregationRule "
                             "is non-nil"))
    return errs


def subject(s, namespaced: bool, path: str) -> list[FieldError]:
    s = s if isinstance(s, dict) else {}
    errs: list[FieldError] = []
    name, kind, group = s.get("name") or "", s.get("kind") or "", s.get("apiGroup") or ""
    if not name:
        errs.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            errs += [invalid_value(f"{path}.name", name, m)
                     for m in validation.name_is_dns_subdomain(name)]
        if group:
            errs.append(unsupported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not s.get("namespace"):
            errs.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != GROUP:
            errs.append(unsupported(f"{path}.apiGroup", group, [GROUP]))
    else:
        errs.append(unsupported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return errs


def binding(obj: dict, namespaced: bool) -> list[FieldError]:
    errs = validation.object_meta(obj.get("metadata"), namespaced=namespaced,
                                  name_fn=path_segment_name)
    ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
    if (ref.get("apiGroup") or "") != GROUP:
        errs.append(unsupported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        errs.append(unsupported("roleRef.kind", ref.get("kind") or "", kinds))
    rname = ref.get("name") or ""
    if not rname:
        errs.append(required("roleRef.name"))
    else:
        errs += [invalid_value("roleRef.name", rname, m) for m in path_segment_name(rname)]
    for i, s in enumerate(obj.get("subjects") or []):
        errs += subject(s, namespaced, f"subjects[{i}]")
    return errs


def binding_update(new: dict, old: dict, namespaced: bool) -> list[FieldError]:
    errs = validation.object_meta_update(new.get("metadata"), old.get("metadata"))
    if (new.get("roleRef") or {}) != (old.get("roleRef") or {}):
        errs.append(invalid_value("roleRef", _go_role_ref(new.get("roleRef") or {}),
                                  "cannot change roleRef"))
    return errs + binding(new, namespaced)


def _go_role_ref(ref: dict) -> str:
    return (f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
            f'Name:"{ref.get("name", "")}"}}')


# ---- kinds ---------------------------------------------------------------------------------

class _RBACKind(Resource):
    group, version = GROUP, "v1"
    allow_create_on_update = True
    name_validator = staticmethod(path_segment_name)


class Roles(_RBACKind):
    kind, plural, singular = "Role", "roles", "role"

    def validate(self, obj):
        return role(obj, True)

    def validate_update(self, new, old):
        return validation.object_meta_update(new.get("metadata"), old.get("metadata")) + \
            role(new, True)


class ClusterRoles(_RBACKind):
    kind, plural, singular = "ClusterRole", "clusterroles", "clusterrole"
    namespaced = False

    def validate(self, obj):
        return role(obj, False)

    def validate_update(self, new, old):
        return validation.object_meta_update(new.get("metadata"), old.get("metadata")) + \
            role(new, False)


class RoleBindings(_RBACKind):
    kind, plural, singular = "RoleBinding", "rolebindings", "rolebinding"

    def default(self, obj):
        default_binding(obj)

    def validate(self, obj):
        return binding(obj, True)

    def validate_update(self, new, old):
        return binding_update(new, old, True)


class ClusterRoleBindings(_RBACKind):
    kind, plural, singular = "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding"
    namespaced = False

    def default(self, obj):
        default_binding(obj)

    def validate(self, obj):
        return binding(obj, False)

    def validate_update(self, new, old):
        return binding_update(new, old, False)


# ---- printing ------------------------------------------------------------------------------

def _columns() -> dict[str, list[dict]]:
    name = printers._name_col()
    created = printers._age_col()["description"]
    role_cols = [name, printers._col("Created At", created, "date")]
    out = {"Role": role_cols, "ClusterRole": role_cols}
    for kind, what in (("RoleBinding", "roleBinding"),
                       ("ClusterRoleBinding", "clusterRoleBinding")):
        ref_doc = printers._doc(f"io.k8s.api.rbac.v1.{kind}", "roleRef")
        out[kind] = [name, printers._col("Role", ref_doc), printers._age_col(),
                     printers._col("Users", f"Users in the {what}", priority=1),
                     printers._col("Groups", f"Groups in the {what}", priority=1),
                     printers._col("ServiceAccounts", f"ServiceAccounts in the {what}",
                                   priority=1)]
    return out


def _created_at(obj: dict) -> str:
    t = printers.parse_timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
    if t is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_role(obj: dict, now: float) -> list:
    return [(obj.get("metadata") or {}).get("name", ""), _created_at(obj)]


def subjects_strings(subjects: list) -> tuple[list[str], list[str], list[str]]:
    users, groups, sas = [], [], []
    for s in subjects or []:
        kind, name = s.get("kind"), s.get("name", "")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            sas.append(f"{s['namespace']}/{name}" if s.get("namespace") else name)
    return users, groups, sas


def _print_binding(obj: dict, now: float) -> list:
    ref = obj.get("roleRef") or {}
    users, groups, sas = subjects_strings(obj.get("subjects"))
    return [(obj.get("metadata") or {}).get("name", ""),
            f"{ref.get('kind', '')}/{ref.get('name', '')}",
            printers.translate_timestamp_since((obj.get("metadata") or {}).get("creationTimestamp"),
                                               now),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]


def register_printers() -> None:
    for kind, cols in _columns().items():
        printers.COLUMNS.setdefault(kind, cols)
    for kind in ("Role", "ClusterRole"):
        printers._PRINTERS.setdefault(kind, _print_role)
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        printers._PRINTERS.setdefault(kind, _print_binding)


register_printers()
