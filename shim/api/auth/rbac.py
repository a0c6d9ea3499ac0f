"""RBAC: rule matching, the in-memory index of roles and bindings, rule resolution for a
user, the covers check and escalation wording (rbac.authorization.k8s.io/v1).

The index is loaded from the store at start and kept current by watching the four
RBAC kinds (like the real authorizer's informers). Rules resolved for a
(user, groups, namespace) are cached until any RBAC object changes, so a request
costs a dict lookup and a short scan of that user's rules even with thousands of
bindings. On a refusal the authorizer first lets pending RBAC watch events land, so
a client that just created a binding sees it take effect on its next request.

ClusterRoles with an `aggregationRule` resolve to the union of the rules of the
ClusterRoles their selectors match (what the aggregation controller would store).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

log = logging.getLogger("shim.auth.rbac")

GROUP = "rbac.authorization.k8s.io"
PLURALS = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
SA_PREFIX = "system:serviceaccount:"


# ---- one rule ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """A PolicyRule with its lists as tuples (hashable, fast to scan)."""
    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict) -> "Rule":
        def t(k):
            v = d.get(k) or ()
            return tuple(x for x in v if isinstance(x, str))
        return cls(t("verbs"), t("apiGroups"), t("resources"), t("resourceNames"),
                   t("nonResourceURLs"))

    def to_dict(self) -> dict:
        d: dict = {"verbs": list(self.verbs)}
        if self.api_groups or self.resources:
            d["apiGroups"] = list(self.api_groups)
            d["resources"] = list(self.resources)
        if self.resource_names:
            d["resourceNames"] = list(self.resource_names)
        if self.non_resource_urls:
            d["nonResourceURLs"] = list(self.non_resource_urls)
        return d

    def compact_string(self) -> str:
        """rbacv1helpers.CompactString: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`."""
        parts = []
        for label, vals in (("APIGroups", self.api_groups), ("Resources", self.resources),
                            ("NonResourceURLs", self.non_resource_urls),
                            ("ResourceNames", self.resource_names), ("Verbs", self.verbs)):
            if vals:
                parts.append(f"{label}:{go_quote_list(vals)}")
        return "{" + ", ".join(parts) + "}"


def go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def go_quote_list(vals) -> str:
    """Go's %q of a []string: `["a" "b"]`."""
    return "[" + " ".join(go_quote(v) for v in vals) + "]"


def verb_matches(rule: Rule, verb: str) -> bool:
    return "*" in rule.verbs or verb in rule.verbs


def group_matches(rule: Rule, group: str) -> bool:
    return "*" in rule.api_groups or group in rule.api_groups


def resource_matches(rule: Rule, combined: str, subresource: str) -> bool:
    for r in rule.resources:
        if r == "*" or r == combined:
            return True
        if subresource and r == "*/" + subresource:
            return True
    return False


def name_matches(rule: Rule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def url_matches(rule: Rule, path: str) -> bool:
    for u in rule.non_resource_urls:
        if u == "*" or u == path:
            return True
        if u.endswith("*") and path.startswith(u[:-1]):
            return True
    return False


def rule_allows(rule: Rule, info) -> bool:
    """Does one rule allow a RequestInfo (authorization attributes)?"""
    if not verb_matches(rule, info.verb):
        return False
    if info.is_resource_request:
        combined = info.resource + "/" + info.subresource if info.subresource else info.resource
        return group_matches(rule, info.api_group) and \
            resource_matches(rule, combined, info.subresource) and name_matches(rule, info.name)
    return url_matches(rule, info.path)


# ---- covers (escalation prevention) --------------------------------------------------------

def breakdown(rule: Rule) -> list[Rule]:
    """One rule per (group, resource, [name], verb) or (url, verb)."""
    out = []
    for g in rule.api_groups:
        for r in rule.resources:
            for v in rule.verbs:
                if rule.resource_names:
                    out.extend(Rule((v,), (g,), (r,), (n,)) for n in rule.resource_names)
                else:
                    out.append(Rule((v,), (g,), (r,)))
    for u in rule.non_resource_urls:
        for v in rule.verbs:
            out.append(Rule((v,), non_resource_urls=(u,)))
    return out


def _has_all(owner: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    return "*" in owner or all(w in owner for w in wanted)


def _resource_covers(owner: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    if "*" in owner:
        return True
    for w in wanted:
        if w in owner:
            continue
        sub = w.split("/", 1)[1] if "/" in w else None
        if sub is not None and "*/" + sub in owner:
            continue
        return False
    return True


def _url_covers(owner: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    for w in wanted:
        if not any(o == "*" or o == w or (o.endswith("*") and w.startswith(o[:-1]))
                   for o in owner):
            return False
    return True


def rule_covers(owner: Rule, sub: Rule) -> bool:
    if not _has_all(owner.verbs, sub.verbs):
        return False
    if sub.non_resource_urls:
        return _url_covers(owner.non_resource_urls, sub.non_resource_urls)
    if not _has_all(owner.api_groups, sub.api_groups):
        return False
    if not _resource_covers(owner.resources, sub.resources):
        return False
    if owner.resource_names:
        return all(n in owner.resource_names for n in sub.resource_names) and \
            bool(sub.resource_names)
    return True


def covers(owner_rules: list[Rule], rules: list[Rule]) -> tuple[bool, list[Rule]]:
    """(all covered?, the broken-down rules that are not)."""
    missing = []
    for r in rules:
        for piece in breakdown(r):
            if not any(rule_covers(o, piece) for o in owner_rules):
                missing.append(piece)
    return not missing, missing


def compact(rules: list[Rule]) -> list[Rule]:
    """Merge single-verb pieces of the same group/resource (no names) into one rule."""
    merged: dict[tuple, list[str]] = {}
    out: list[Rule] = []
    order: list[tuple] = []
    for r in rules:
        if r.resource_names or r.non_resource_urls or len(r.api_groups) != 1 or \
                len(r.resources) != 1:
            out.append(r)
            continue
        key = (r.api_groups, r.resources)
        if key not in merged:
            merged[key] = []
            order.append(key)
        for v in r.verbs:
            if v not in merged[key]:
                merged[key].append(v)
    for key in order:
        out.append(Rule(tuple(merged[key]), key[0], key[1]))
    return out


def escalation_message(user, missing: list[Rule], resolution_errors: list[str]) -> str:
    lines = sorted({r.compact_string() for r in compact(missing)})
    msg = (f"user {go_quote(user.name)} (groups={go_quote_list(user.groups)}) is attempting to "
           f"grant RBAC permissions not currently held:\n" + "\n".join(lines))
    if resolution_errors:
        msg += f"; resolution errors: [{', '.join(resolution_errors)}]"
    return msg


# ---- subjects --------------------------------------------------------------------------------

def applies_to(user, subject: dict, namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name", "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_ns = subject.get("namespace") or namespace
        if not sa_ns:
            return False
        return user.name == f"{SA_PREFIX}{sa_ns}:{name}"
    return False


def describe_subject(subject: dict, binding_ns: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f"{kind} {go_quote(name + '/' + (subject.get('namespace') or binding_ns))}"
    return f"{kind} {go_quote(name)}"


# ---- the index -------------------------------------------------------------------------------

def _selector_matches(selector: dict, labels: dict) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels[key] in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class RBACIndex:
    """Roles and bindings by namespace/name, with cached per-user rule resolution."""

    def __init__(self):
        self.roles: dict[tuple[str, str], dict] = {}
        self.cluster_roles: dict[str, dict] = {}
        self.role_bindings: dict[str, dict[str, dict]] = {}
        self.cluster_role_bindings: dict[str, dict] = {}
        self.generation = 0
        self._cache: dict[tuple, tuple[int, list, list[str]]] = {}
        self._streams: list = []
        self.loaded = False

    # -- content --
    def put(self, plural: str, obj: dict) -> None:
        m = obj.get("metadata", {})
        ns, name = m.get("namespace", ""), m.get("name", "")
        if plural == "roles":
            self.roles[(ns, name)] = obj
        elif plural == "clusterroles":
            self.cluster_roles[name] = obj
        elif plural == "rolebindings":
            self.role_bindings.setdefault(ns, {})[name] = obj
        elif plural == "clusterrolebindings":
            self.cluster_role_bindings[name] = obj
        self._changed()

    def remove(self, plural: str, obj: dict) -> None:
        m = obj.get("metadata", {})
        ns, name = m.get("namespace", ""), m.get("name", "")
        if plural == "roles":
            self.roles.pop((ns, name), None)
        elif plural == "clusterroles":
            self.cluster_roles.pop(name, None)
        elif plural == "rolebindings":
            self.role_bindings.get(ns, {}).pop(name, None)
        elif plural == "clusterrolebindings":
            self.cluster_role_bindings.pop(name, None)
        self._changed()

    def _changed(self) -> None:
        self.generation += 1
        self._cache.clear()

    # -- role references --
    def cluster_role_rules(self, name: str, _seen: frozenset = frozenset()) -> list[Rule] | None:
        cr = self.cluster_roles.get(name)
        if cr is None:
            return None
        rules = [Rule.from_dict(r) for r in cr.get("rules") or [] if isinstance(r, dict)]
        agg = cr.get("aggregationRule")
        if agg and name not in _seen:
            seen = _seen | {name}
            for other_name, other in sorted(self.cluster_roles.items()):
                if other_name == name:
                    continue
                labels = (other.get("metadata") or {}).get("labels") or {}
                if any(_selector_matches(s, labels) for s in agg.get("clusterRoleSelectors") or []):
                    for r in self.cluster_role_rules(other_name, seen) or []:
                        if r not in rules:
                            rules.append(r)
        return rules

    def role_ref_rules(self, ref: dict, namespace: str) -> tuple[list[Rule], str | None]:
        """(rules, error text) of a roleRef; the error reads like the real listers'."""
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "Role":
            role = self.roles.get((namespace, name))
            if role is None:
                return [], f'role.rbac.authorization.k8s.io "{name}" not found'
            return [Rule.from_dict(r) for r in role.get("rules") or [] if isinstance(r, dict)], None
        if kind == "ClusterRole":
            rules = self.cluster_role_rules(name)
            if rules is None:
                return [], f'clusterrole.rbac.authorization.k8s.io "{name}" not found'
            return rules, None
        return [], f'unsupported role reference kind: "{kind}"'

    # -- resolution --
    def rules_for(self, user, namespace: str) -> tuple[list[tuple[str, Rule]], list[str]]:
        """[(source description, rule)] that apply to `user` in `namespace`, and errors."""
        key = (user.name, tuple(user.groups), namespace)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self.generation:
            return hit[1], hit[2]
        out: list[tuple[str, Rule]] = []
        errs: list[str] = []
        for bname, b in sorted(self.cluster_role_bindings.items()):
            subj = next((s for s in b.get("subjects") or [] if applies_to(user, s, "")), None)
            if subj is None:
                continue
            ref = b.get("roleRef") or {}
            rules, err = self.role_ref_rules(ref, "")
            if err:
                errs.append(err)
                continue
            src = (f'ClusterRoleBinding {go_quote(bname)} of {ref.get("kind")} '
                   f'{go_quote(ref.get("name", ""))} to {describe_subject(subj, "")}')
            out.extend((src, r) for r in rules)
        if namespace:
            for bname, b in sorted(self.role_bindings.get(namespace, {}).items()):
                subj = next((s for s in b.get("subjects") or [] if applies_to(user, s, namespace)),
                            None)
                if subj is None:
                    continue
                ref = b.get("roleRef") or {}
                rules, err = self.role_ref_rules(ref, namespace)
                if err:
                    errs.append(err)
                    continue
                src = (f'RoleBinding {go_quote(bname + "/" + namespace)} of {ref.get("kind")} '
                       f'{go_quote(ref.get("name", ""))} to {describe_subject(subj, namespace)}')
                out.extend((src, r) for r in rules)
        if len(self._cache) > 50000:
            self._cache.clear()
        self._cache[key] = (self.generation, out, errs)
        return out, errs

    def authorize(self, user, info) -> tuple[bool, str]:
        """(allowed, reason) the way RBACAuthorizer.Authorize words it."""
        rules, errs = self.rules_for(user, info.namespace)
        for src, rule in rules:
            if rule_allows(rule, info):
                return True, f"RBAC: allowed by {src}"
        if errs:
            return False, "RBAC: " + _aggregate(errs)
        return False, ""

    # -- keeping current --
    async def start(self, store) -> list[asyncio.Task]:
        """Load everything and start one watch task per kind."""
        self._store = store
        tasks = []
        for plural in PLURALS:
            prefix = f"/registry/{plural}/"
            stream = await self._relist(store, plural, prefix)
            self._streams.append(stream)
            tasks.append(asyncio.create_task(self._follow(store, plural, prefix, stream),
                                             name=f"rbac-watch-{plural}"))
        self.loaded = True
        return tasks

    async def _relist(self, store, plural: str, prefix: str):
        """Replace the index's objects of one kind with a fresh list; returns a watch from it."""
        from shim.store.base import Compacted
        while True:
            entries, rev, _, _ = await store.list(prefix)
            for obj in self._objects(plural):
                self.remove(plural, obj)
            for e in entries:
                self.put(plural, e.obj)
            try:
                return await store.watch(prefix, rev)
            except Compacted:
                continue

    async def _follow(self, store, plural: str, prefix: str, stream) -> None:
        while True:
            try:
                async for ev in stream:
                    if ev.type == "DELETED":
                        self.remove(plural, ev.entry.obj)
                    else:
                        self.put(plural, ev.entry.obj)
            except asyncio.CancelledError:
                stream.close()
                raise
            except Exception:   # a broken stream: resync from a fresh list
                log.exception("rbac watch on %s failed; relisting", prefix)
                await asyncio.sleep(0.5)
            # the stream ended (overflow or compaction): relist and watch again
            old = stream
            stream = await self._relist(store, plural, prefix)
            self._streams = [stream if s is old else s for s in self._streams]

    def _objects(self, plural: str) -> list[dict]:
        if plural == "roles":
            return list(self.roles.values())
        if plural == "clusterroles":
            return list(self.cluster_roles.values())
        if plural == "rolebindings":
            return [b for d in self.role_bindings.values() for b in d.values()]
        return list(self.cluster_role_bindings.values())

    async def settle(self, timeout: float = 0.25) -> None:
        """Let RBAC watch events the store has already committed be applied (read your writes:
        a refusal right after a binding was written re-checks once the binding has landed)."""
        store = getattr(self, "_store", None)
        if store is None:
            return
        target = store.revision
        deadline = time.monotonic() + timeout
        while any(s.progress_rev < target for s in self._streams):
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)


def _aggregate(errs: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one error as is, several as `[a, b]`."""
    if len(errs) == 1:
        return errs[0]
    return "[" + ", ".join(errs) + "]"
