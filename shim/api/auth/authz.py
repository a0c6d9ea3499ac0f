"""Authorization: the `--authorization-mode` chain and the refusal wording.

Modes (comma list, tried in order, first Allow wins, as the real union authorizer):
AlwaysAllow, AlwaysDeny ("Everything is forbidden."), ABAC (`--authorization-policy-file`,
JSON lines in abac.authorization.kubernetes.io/v1beta1 Policy or the unversioned v0
form), RBAC (rbac.RBACIndex). Members of `system:masters` are always allowed (the
privileged-group authorizer the real server puts first).

`Authorizer.__call__(user, info)` is the App.authorizer hook: it returns None or raises
403 Forbidden worded like the real server:
    pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"
`Authorizer.decide(user, info)` gives (allowed, reason) for the access reviews, and
`rules_for(user, ns)` the rules a SelfSubjectRulesReview lists.
"""
from __future__ import annotations

import logging

import orjson

from shim.api import errors
from shim.api.requestinfo import RequestInfo, UserInfo

from .rbac import RBACIndex, Rule

log = logging.getLogger("shim.auth")

MASTERS = "system:masters"
MODES = ("AlwaysAllow", "AlwaysDeny", "ABAC", "RBAC", "Node", "Webhook")
READ_ONLY_VERBS = ("get", "list", "watch")
ABAC_VERSION = "abac.authorization.kubernetes.io/v1beta1"


# ---- refusal wording -----------------------------------------------------------------------

def forbidden_message(user: UserInfo | None, info: RequestInfo) -> str:
    name = user.name if user is not None else ""
    q = _q
    if not info.is_resource_request:
        return f"User {q(name)} cannot {info.verb} path {q(info.path)}"
    resource = info.resource + ("/" + info.subresource if info.subresource else "")
    if info.namespace:
        return (f"User {q(name)} cannot {info.verb} resource {q(resource)} in API group "
                f"{q(info.api_group)} in the namespace {q(info.namespace)}")
    return (f"User {q(name)} cannot {info.verb} resource {q(resource)} in API group "
            f"{q(info.api_group)} at the cluster scope")


def forbidden(user: UserInfo | None, info: RequestInfo, reason: str) -> errors.StatusError:
    msg = forbidden_message(user, info)
    if reason:
        msg = f"{msg}: {reason}"
    if info.is_resource_request:
        return errors.forbidden(info.resource, info.name or None, msg, info.api_group)
    return errors.forbidden("", None, msg)


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- ABAC ----------------------------------------------------------------------------------

class ABACPolicy:
    """One policy line's spec (user, group, readonly, apiGroup, resource, namespace,
    nonResourcePath)."""

    __slots__ = ("user", "group", "readonly", "api_group", "resource", "namespace", "path")

    def __init__(self, spec: dict):
        self.user = spec.get("user") or ""
        self.group = spec.get("group") or ""
        self.readonly = bool(spec.get("readonly"))
        self.api_group = spec.get("apiGroup") or ""
        self.resource = spec.get("resource") or ""
        self.namespace = spec.get("namespace") or ""
        self.path = spec.get("nonResourcePath") or ""

    def subject_matches(self, user: UserInfo) -> bool:
        matched = False
        if self.user:
            if self.user == "*":
                matched = True
            elif self.user != user.name:
                return False
            else:
                matched = True
        if self.group:
            if self.group == "*":
                matched = True
            elif self.group in user.groups:
                matched = True
            else:
                return False
        return matched

    def matches(self, user: UserInfo, info: RequestInfo) -> bool:
        if not self.subject_matches(user):
            return False
        if self.readonly and info.verb not in READ_ONLY_VERBS:
            return False
        if info.is_resource_request:
            return (self.namespace in ("*", info.namespace) and
                    self.resource in ("*", info.resource) and
                    self.api_group in ("*", info.api_group))
        return self.path == "*" or self.path == info.path or \
            (self.path.endswith("*") and info.path.startswith(self.path.rstrip("*")))

    def rules(self) -> tuple[list[Rule], list[Rule]]:
        verbs = READ_ONLY_VERBS if self.readonly else ("*",)
        res = [Rule(verbs, (self.api_group,), (self.resource,))] if self.resource else []
        non = [Rule(verbs, non_resource_urls=(self.path,))] if self.path else []
        return res, non


def load_abac(path: str) -> list[ABACPolicy]:
    out = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith(b"#"):
                continue
            try:
                d = orjson.loads(s)
                if not isinstance(d, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                raise ValueError(f"error reading policy file {path}, line {n}: "
                                 f"{s.decode(errors='replace')}: {e}") from None
            if d.get("apiVersion") or d.get("kind"):
                if d.get("apiVersion") != ABAC_VERSION or d.get("kind") != "Policy":
                    raise ValueError(f"error reading policy file {path}, line {n}: "
                                     f"{s.decode(errors='replace')}: unrecognized policy version")
                out.append(ABACPolicy(d.get("spec") or {}))
            else:
                out.append(ABACPolicy(_v0_spec(d)))
    return out


def _v0_spec(d: dict) -> dict:
    """Unversioned (v0) lines: user/group/readonly/resource/namespace; "*" is implied for
    an empty resource and namespace, and a policy naming nobody applies to every
    authenticated user (the v0 → v1beta1 conversion)."""
    spec = {"user": d.get("user") or "", "group": d.get("group") or "",
            "readonly": d.get("readonly", False),
            "resource": d.get("resource") or "*", "namespace": d.get("namespace") or "*",
            "apiGroup": "*", "nonResourcePath": "*"}
    if not spec["user"] and not spec["group"]:
        spec["group"] = "system:authenticated"
    elif spec["user"] == "*":
        spec["group"] = "system:authenticated"
    return spec


# ---- the chain -----------------------------------------------------------------------------

class Authorizer:
    def __init__(self, modes: list[str], *, rbac: RBACIndex | None = None,
                 abac: list[ABACPolicy] | None = None):
        for m in modes:
            if m not in MODES:
                raise ValueError(f'authorization mode "{m}" is not a valid mode')
        self.modes = [m for m in modes if m not in ("Node", "Webhook")]
        self.rbac = rbac
        self.abac = abac or []

    async def __call__(self, user: UserInfo | None, info: RequestInfo) -> None:
        if user is not None and MASTERS in user.groups:
            return
        allowed, reason = self._decide(user, info)
        if not allowed and self.rbac is not None:
            await self.rbac.settle()           # a binding written just before may be in flight
            allowed, reason = self._decide(user, info)
        if not allowed:
            raise forbidden(user, info, reason)

    async def decide(self, user: UserInfo, info: RequestInfo) -> tuple[bool, str]:
        if MASTERS in user.groups:
            return True, ""
        allowed, reason = self._decide(user, info)
        if not allowed and self.rbac is not None:
            await self.rbac.settle()
            allowed, reason = self._decide(user, info)
        return allowed, reason

    def _decide(self, user: UserInfo | None, info: RequestInfo) -> tuple[bool, str]:
        if user is None:
            return False, ""
        reasons = []
        for mode in self.modes:
            if mode == "AlwaysAllow":
                return True, ""
            if mode == "AlwaysDeny":
                reasons.append("Everything is forbidden.")
            elif mode == "ABAC":
                if any(p.matches(user, info) for p in self.abac):
                    return True, ""
                reasons.append("No policy matched.")
            elif mode == "RBAC" and self.rbac is not None:
                ok, why = self.rbac.authorize(user, info)
                if ok:
                    return True, why
                if why:
                    reasons.append(why)
        return False, "\n".join(reasons)

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[Rule], bool, str]:
        """(resource rules, non-resource rules, incomplete, evaluation error) for a
        SelfSubjectRulesReview, gathered over the chain as the real server does."""
        res: list[Rule] = []
        non: list[Rule] = []
        incomplete = False
        errs = []
        for mode in self.modes:
            if mode == "AlwaysAllow":
                res.append(Rule(("*",), ("*",), ("*",)))
                non.append(Rule(("*",), non_resource_urls=("*",)))
            elif mode == "AlwaysDeny":
                pass
            elif mode == "ABAC":
                for p in self.abac:
                    if p.subject_matches(user) and p.namespace in ("*", namespace):
                        r, n = p.rules()
                        res += r
                        non += n
            elif mode == "RBAC" and self.rbac is not None:
                rules, e = self.rbac.rules_for(user, namespace)
                for _, rule in rules:
                    if rule.resources:
                        res.append(Rule(rule.verbs, rule.api_groups, rule.resources,
                                        rule.resource_names))
                    if rule.non_resource_urls:
                        non.append(Rule(rule.verbs, non_resource_urls=rule.non_resource_urls))
                errs += e
        return res, non, incomplete or bool(errs), ", ".join(errs)


def parse_modes(value: str) -> list[str]:
    return [m.strip() for m in value.split(",") if m.strip()]
