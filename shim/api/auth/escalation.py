"""RBAC escalation prevention, as an admission plugin on the four RBAC kinds.

A user may write a Role/ClusterRole only with rules they already hold (in the role's
namespace, or cluster-wide for ClusterRoles), unless they may `escalate` it; and a
RoleBinding/ClusterRoleBinding only to a role whose rules they hold, unless they may
`bind` it. Only cluster admins may set an aggregationRule. Members of system:masters
and the server itself (no user) are exempt. Refusals read like the real server's:

    roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
    {APIGroups:[""], Resources:["pods"], Verbs:["get"]}
"""
from __future__ import annotations

from shim.api import errors
from shim.api.requestinfo import RequestInfo

from .authz import MASTERS, Authorizer
from .rbac import GROUP, RBACIndex, Rule, covers, escalation_message

FULL_AUTHORITY = [Rule(("*",), ("*",), ("*",)), Rule(("*",), non_resource_urls=("*",))]


class EscalationCheck:
    def __init__(self, index: RBACIndex, authorizer: Authorizer):
        self.index = index
        self.authz = authorizer

    async def admit(self, attrs) -> None:
        res = attrs.resource
        if res.group != GROUP or attrs.operation not in ("CREATE", "UPDATE") or \
                attrs.subresource:
            return
        user = attrs.user
        if user is None or MASTERS in user.groups:
            return
        obj = attrs.obj or {}
        if attrs.operation == "UPDATE" and _only_metadata_changed(obj, attrs.old or {}):
            return
        ns = attrs.namespace or ""
        name = attrs.name
        if res.plural in ("roles", "clusterroles"):
            await self._check_role(user, res.plural, ns, name, obj)
        elif res.plural in ("rolebindings", "clusterrolebindings"):
            await self._check_binding(user, res.plural, ns, name, obj)

    async def _allowed(self, user, verb: str, plural: str, ns: str, name: str) -> bool:
        info = RequestInfo(True, "", verb, GROUP, "v1", ns, plural, "", name)
        ok, _ = await self.authz.decide(user, info)
        return ok

    def _refuse_unless_covered(self, user, plural: str, ns: str, name: str,
                               rules: list[Rule]) -> None:
        owned, errs = self.index.rules_for(user, ns)
        ok, missing = covers([r for _, r in owned], rules)
        if not ok:
            raise errors.forbidden(plural, name, escalation_message(user, missing, errs), GROUP)

    async def _check_role(self, user, plural, ns, name, obj) -> None:
        if await self._allowed(user, "escalate", plural, ns, name):
            return
        if plural == "clusterroles" and obj.get("aggregationRule"):
            owned, _ = self.index.rules_for(user, "")
            ok, _ = covers([r for _, r in owned], FULL_AUTHORITY)
            if not ok:
                raise errors.forbidden(plural, name, "must have cluster-admin privileges to use "
                                       "the aggregationRule", GROUP)
        rules = [Rule.from_dict(r) for r in obj.get("rules") or [] if isinstance(r, dict)]
        self._refuse_unless_covered(user, plural, ns, name, rules)

    async def _check_binding(self, user, plural, ns, name, obj) -> None:
        ref = obj.get("roleRef") or {}
        role_plural = "roles" if ref.get("kind") == "Role" else "clusterroles"
        if await self._allowed(user, "bind", role_plural, ns, ref.get("name", "")):
            return
        rules, err = self.index.role_ref_rules(ref, ns)
        if err:
            raise errors.bad_request(err)
        self._refuse_unless_covered(user, plural, ns, name, rules)


def _only_metadata_changed(new: dict, old: dict) -> bool:
    a = {k: v for k, v in new.items() if k != "metadata"}
    b = {k: v for k, v in old.items() if k != "metadata"}
    return a == b
