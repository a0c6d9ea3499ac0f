"""Unit tests of shim/api/auth: RBAC matching and escalation wording, ABAC, the mode chain and
its refusal text, the static token file, ServiceAccount JWTs and the authentication chain,
run against a real SQLite store."""
from __future__ import annotations

import asyncio
import base64
import time

import pytest

from shim.api.auth import authn as authn_mod
from shim.api.auth import tokens
from shim.api.auth.authz import ABACPolicy, Authorizer, forbidden, load_abac
from shim.api.auth.escalation import EscalationCheck
from shim.api.auth.policy import cluster_role_bindings, cluster_roles
from shim.api.auth.rbac import RBACIndex, Rule, covers, escalation_message, rule_allows
from shim.api.errors import StatusError
from shim.api.requestinfo import RequestInfo, UserInfo
from shim.store.sqlite import SQLiteStore

ALICE = UserInfo("alice", "", ["devs", "system:authenticated"])


def run(coro):
    return asyncio.run(coro)


def res_info(verb, resource, ns="default", group="", name="", sub=""):
    return RequestInfo(True, f"/x/{resource}", verb, group, "v1", ns, resource, sub, name)


def role(name, rules, ns=None, kind="Role", labels=None, agg=None):
    m = {"name": name}
    if ns:
        m["namespace"] = ns
    if labels:
        m["labels"] = labels
    o = {"kind": kind, "metadata": m, "rules": rules}
    if agg:
        o["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": agg}]}
    return o


def binding(name, role_kind, role_name, subjects, ns=None):
    m = {"name": name}
    if ns:
        m["namespace"] = ns
    return {"metadata": m, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                       "name": role_name}, "subjects": subjects}


def default_index() -> RBACIndex:
    ix = RBACIndex()
    for cr in cluster_roles():
        ix.put("clusterroles", cr)
    for crb in cluster_role_bindings():
        ix.put("clusterrolebindings", crb)
    return ix


# ---- rule matching -------------------------------------------------------------------------

def test_rule_matching_wildcards_subresources_names_and_urls():
    r = Rule(("get", "list"), ("",), ("pods", "*/status"), ("p1",))
    assert rule_allows(r, res_info("get", "pods", name="p1"))
    assert not rule_allows(r, res_info("get", "pods", name="p2"))
    assert not rule_allows(r, res_info("delete", "pods", name="p1"))
    assert rule_allows(r, res_info("get", "services", name="p1", sub="status"))
    assert not rule_allows(r, res_info("get", "pods", name="p1", sub="log"))
    assert not rule_allows(r, res_info("get", "pods", group="apps", name="p1"))
    u = Rule(("get",), non_resource_urls=("/apis/*", "/version"))
    assert rule_allows(u, RequestInfo(False, "/apis/rbac.authorization.k8s.io", "get"))
    assert rule_allows(u, RequestInfo(False, "/version", "get"))
    assert not rule_allows(u, RequestInfo(False, "/version/x", "get"))
    assert not rule_allows(u, RequestInfo(False, "/version", "post"))


def test_rbac_index_role_binding_and_reasons():
    ix = default_index()
    ix.put("roles", role("pod-reader", [{"apiGroups": [""], "resources": ["pods"],
                                         "verbs": ["get", "list"]}], "default"))
    assert ix.authorize(ALICE, res_info("list", "pods")) == (False, "")
    ix.put("rolebindings", binding("alice-read", "Role", "pod-reader",
                                   [{"kind": "User", "name": "alice"}], "default"))
    ok, why = ix.authorize(ALICE, res_info("list", "pods"))
    assert ok and why == ('RBAC: allowed by RoleBinding "alice-read/default" of Role "pod-reader" '
                          'to User "alice"')
    # only in its namespace
    assert not ix.authorize(ALICE, res_info("list", "pods", ns="other"))[0]
    # a binding to a missing role shows up as the reason of a refusal
    ix.put("rolebindings", binding("dangling", "ClusterRole", "nope",
                                   [{"kind": "Group", "name": "devs"}], "default"))
    ok, why = ix.authorize(ALICE, res_info("delete", "pods"))
    assert not ok and why == 'RBAC: clusterrole.rbac.authorization.k8s.io "nope" not found'
    ix.remove("rolebindings", binding("alice-read", "Role", "pod-reader", [], "default"))
    assert not ix.authorize(ALICE, res_info("list", "pods"))[0]


def test_service_account_subjects_default_to_the_binding_namespace():
    ix = RBACIndex()
    ix.put("clusterroles", role("view-pods", [{"apiGroups": [""], "resources": ["pods"],
                                               "verbs": ["list"]}], kind="ClusterRole"))
    ix.put("rolebindings", binding("sa", "ClusterRole", "view-pods",
                                   [{"kind": "ServiceAccount", "name": "default"}], "ns1"))
    sa = UserInfo("system:serviceaccount:ns1:default", "u", ["system:serviceaccounts"])
    other = UserInfo("system:serviceaccount:ns2:default", "u", ["system:serviceaccounts"])
    assert ix.authorize(sa, res_info("list", "pods", ns="ns1"))[0]
    assert not ix.authorize(other, res_info("list", "pods", ns="ns1"))[0]


def test_aggregated_cluster_roles_pick_up_labelled_roles():
    ix = default_index()
    view = ix.cluster_role_rules("view")
    assert Rule(("get", "list", "watch"), ("",), ("namespaces",)) in view
    ix.put("clusterroles", role("widgets-view", [{"apiGroups": ["example.com"],
                                                  "resources": ["widgets"], "verbs": ["get"]}],
                                kind="ClusterRole",
                                labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"}))
    for name in ("view", "edit", "admin"):
        assert Rule(("get",), ("example.com",), ("widgets",)) in ix.cluster_role_rules(name)
    edit = ix.cluster_role_rules("edit")
    assert Rule(("create", "delete", "deletecollection", "patch", "update"), ("",),
                ("configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                 "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                 "services/proxy")) in edit


def test_default_policy_gives_authenticated_users_discovery_only():
    ix = default_index()
    assert ix.authorize(ALICE, RequestInfo(False, "/api/v1", "get"))[0]
    assert ix.authorize(ALICE, RequestInfo(False, "/version", "get"))[0]
    assert not ix.authorize(ALICE, RequestInfo(False, "/metrics", "get"))[0]
    assert ix.authorize(ALICE, res_info("create", "selfsubjectaccessreviews", ns="",
                                        group="authorization.k8s.io"))[0]
    anon = UserInfo("system:anonymous", "", ["system:unauthenticated"])
    assert ix.authorize(anon, RequestInfo(False, "/version", "get"))[0]
    assert not ix.authorize(anon, RequestInfo(False, "/api", "get"))[0]
    admin = UserInfo("root", "", ["system:masters"])
    ok, why = ix.authorize(admin, res_info("delete", "nodes", ns=""))
    assert ok and why == ('RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole '
                          '"cluster-admin" to Group "system:masters"')


# ---- covers / escalation -------------------------------------------------------------------

def test_covers_and_the_escalation_message():
    owner = [Rule(("get", "list"), ("",), ("pods", "secrets")),
             Rule(("*",), ("apps",), ("*",))]
    ok, missing = covers(owner, [Rule(("get",), ("",), ("pods",)),
                                 Rule(("delete",), ("apps",), ("deployments/scale",))])
    assert ok and missing == []
    ok, missing = covers(owner, [Rule(("get", "watch", "delete"), ("",), ("pods", "services"))])
    assert not ok
    msg = escalation_message(ALICE, missing, [])
    assert msg == ('user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant '
                   'RBAC permissions not currently held:\n'
                   '{APIGroups:[""], Resources:["pods"], Verbs:["watch" "delete"]}\n'
                   '{APIGroups:[""], Resources:["services"], Verbs:["get" "watch" "delete"]}')
    # resourceNames: an owner limited to names covers only those names
    named = [Rule(("get",), ("",), ("pods",), ("a",))]
    assert covers(named, [Rule(("get",), ("",), ("pods",), ("a",))])[0]
    assert not covers(named, [Rule(("get",), ("",), ("pods",))])[0]
    assert covers([Rule(("get",), non_resource_urls=("/api/*",))],
                  [Rule(("get",), non_resource_urls=("/api/v1",))])[0]


class _Attrs:
    def __init__(self, plural, obj, user, ns="default", op="CREATE"):
        from shim.resources.rbac import ClusterRoleBindings, ClusterRoles, RoleBindings, Roles
        self.resource = {"roles": Roles(), "clusterroles": ClusterRoles(),
                         "rolebindings": RoleBindings(),
                         "clusterrolebindings": ClusterRoleBindings()}[plural]
        self.operation, self.namespace, self.name = op, ns, obj["metadata"]["name"]
        self.obj, self.old, self.subresource, self.user = obj, None, None, user


def test_escalation_check_refuses_roles_and_bindings_beyond_the_writer():
    ix = default_index()
    ix.put("roles", role("rb-admin", [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
         "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}], "default"))
    ix.put("rolebindings", binding("a", "Role", "rb-admin", [{"kind": "User", "name": "alice"}],
                                   "default"))
    check = EscalationCheck(ix, Authorizer(["RBAC"], rbac=ix))
    ok_role = role("r", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}], "default")
    run(check.admit(_Attrs("roles", ok_role, ALICE)))
    bad_role = role("r", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
                    "default")
    with pytest.raises(StatusError) as e:
        run(check.admit(_Attrs("roles", bad_role, ALICE)))
    assert e.value.code == 403
    assert e.value.message == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["devs" '
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}')
    with pytest.raises(StatusError) as e:
        run(check.admit(_Attrs("rolebindings", binding("b", "ClusterRole", "edit",
                                                       [{"kind": "User", "name": "bob"}],
                                                       "default"), ALICE)))
    assert e.value.message.startswith('rolebindings.rbac.authorization.k8s.io "b" is forbidden: '
                                      'user "alice"')
    with pytest.raises(StatusError) as e:
        run(check.admit(_Attrs("rolebindings", binding("c", "Role", "missing", [], "default"),
                               ALICE)))
    assert e.value.code == 400 and e.value.message == \
        'role.rbac.authorization.k8s.io "missing" not found'
    # `bind` on the role lets alice bind it without holding it
    ix.put("roles", role("binder", [{"apiGroups": ["rbac.authorization.k8s.io"],
                                     "resources": ["clusterroles"], "verbs": ["bind"],
                                     "resourceNames": ["edit"]}], "default"))
    ix.put("rolebindings", binding("d", "Role", "binder", [{"kind": "User", "name": "alice"}],
                                   "default"))
    run(check.admit(_Attrs("rolebindings", binding("b", "ClusterRole", "edit", [], "default"),
                           ALICE)))
    # masters and the server itself are exempt
    run(check.admit(_Attrs("roles", bad_role, UserInfo("x", "", ["system:masters"]))))
    run(check.admit(_Attrs("roles", bad_role, None)))


# ---- the mode chain ------------------------------------------------------------------------

def test_forbidden_wording_resource_cluster_and_path():
    e = forbidden(ALICE, res_info("list", "pods"), "")
    assert e.code == 403 and e.reason == "Forbidden"
    assert e.message == ('pods is forbidden: User "alice" cannot list resource "pods" in API group '
                         '"" in the namespace "default"')
    assert e.details == {"group": "", "kind": "pods"}
    e = forbidden(ALICE, res_info("get", "nodes", ns="", name="n1", sub="status"), "")
    assert e.message == ('nodes "n1" is forbidden: User "alice" cannot get resource "nodes/status" '
                         'in API group "" at the cluster scope')
    e = forbidden(ALICE, res_info("create", "roles", group="rbac.authorization.k8s.io"),
                  "Everything is forbidden.")
    assert e.message.startswith("roles.rbac.authorization.k8s.io is forbidden: ")
    assert e.message.endswith('in the namespace "default": Everything is forbidden.')
    e = forbidden(ALICE, RequestInfo(False, "/metrics", "get"), "")
    assert e.message == 'forbidden: User "alice" cannot get path "/metrics"'


def test_mode_chain_always_deny_masters_and_union():
    deny = Authorizer(["AlwaysDeny"])
    with pytest.raises(StatusError) as e:
        run(deny(ALICE, res_info("get", "pods", name="x")))
    assert e.value.message == ('pods "x" is forbidden: User "alice" cannot get resource "pods" in '
                               'API group "" in the namespace "default": Everything is forbidden.')
    run(deny(UserInfo("admin", "", ["system:masters"]), res_info("get", "pods")))
    run(Authorizer(["AlwaysDeny", "AlwaysAllow"])(ALICE, res_info("get", "pods")))
    with pytest.raises(ValueError):
        Authorizer(["Bogus"])


def test_abac_policy_file(tmp_path):
    p = tmp_path / "abac.jsonl"
    p.write_text(
        '# comment\n'
        '{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", '
        '"spec": {"user": "alice", "namespace": "*", "resource": "pods", "apiGroup": "", '
        '"readonly": true}}\n'
        '{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", '
        '"spec": {"group": "system:authenticated", "readonly": true, "nonResourcePath": "*"}}\n'
        '\n'
        '{"user": "bob"}\n')
    pols = load_abac(str(p))
    assert len(pols) == 3
    az = Authorizer(["ABAC"], abac=pols)
    run(az(ALICE, res_info("list", "pods", ns="any")))
    run(az(ALICE, RequestInfo(False, "/api", "get")))
    with pytest.raises(StatusError) as e:
        run(az(ALICE, res_info("delete", "pods", name="p")))
    assert e.value.message.endswith(": No policy matched.")
    with pytest.raises(StatusError):
        run(az(ALICE, res_info("list", "pods", group="apps")))
    bob = UserInfo("bob", "", ["system:authenticated"])
    run(az(bob, res_info("delete", "secrets", name="s", ns="kube-system")))
    res_rules, non_rules, _, _ = az.rules_for(ALICE, "default")
    assert Rule(("get", "list", "watch"), ("",), ("pods",)) in res_rules
    assert not ABACPolicy({}).subject_matches(ALICE)
    (tmp_path / "bad.jsonl").write_text('{"apiVersion": "v9", "kind": "Policy"}\n')
    with pytest.raises(ValueError):
        load_abac(str(tmp_path / "bad.jsonl"))


# ---- authentication ------------------------------------------------------------------------

def test_static_token_file_csv(tmp_path):
    p = tmp_path / "tokens.csv"
    p.write_text('t-alice,alice,1001,"devs,ops"\nt-bob,bob,1002\n,empty,1\n')
    toks = authn_mod.load_token_file(str(p))
    assert toks["t-alice"] == UserInfo("alice", "1001", ["devs", "ops"])
    assert toks["t-bob"] == UserInfo("bob", "1002", [])
    assert "" not in toks
    (tmp_path / "short.csv").write_text("tok,user\n")
    with pytest.raises(ValueError, match="must have at least 3 columns"):
        authn_mod.load_token_file(str(tmp_path / "short.csv"))


class _Req:
    def __init__(self, headers=None, path="/api/v1/pods", scope=None):
        self.headers = headers or {}
        self.path = path
        self.scope = scope or {"type": "http", "headers": []}


def _sa(ns="default", name="default", uid="sa-uid"):
    return {"kind": "ServiceAccount", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": uid}}


def test_service_account_jwt_shape_and_chain(tmp_path):
    async def go():
        store = SQLiteStore(str(tmp_path / "db" / "state.db"), compact_interval=0)
        await store.start()
        key = tokens.SigningKey(str(tmp_path / "pki"))
        (tmp_path / "tok.csv").write_text('static-1,carol,42,"team"\n')
        auth = authn_mod.Authenticator(store, signing_key=key, token_file=str(tmp_path / "tok.csv"))
        await store.create("/registry/serviceaccounts/default/default", _sa())
        pod = {"kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "pod-uid"}}
        await store.create("/registry/pods/default/p", pod)
        tok, exp = tokens.issue_bound_token(key, _sa(), pod)
        head, payload, _ = tok.split(".")
        import orjson
        h = orjson.loads(base64.urlsafe_b64decode(head + "=="))
        c = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
        assert h == {"alg": "RS256", "kid": key.kid}
        assert c["iss"] == "https://kubernetes.default.svc.cluster.local"
        assert c["sub"] == "system:serviceaccount:default:default"
        assert c["aud"] == ["https://kubernetes.default.svc.cluster.local"]
        assert c["kubernetes.io"]["serviceaccount"] == {"name": "default", "uid": "sa-uid"}
        assert c["kubernetes.io"]["pod"] == {"name": "p", "uid": "pod-uid"}
        assert c["exp"] - c["iat"] == tokens.EXTENDED_EXPIRATION and exp == c["exp"]
        assert c["kubernetes.io"]["warnafter"] - c["iat"] == 3607
        u = await auth(_Req({"authorization": f"Bearer {tok}"}))
        assert u.name == "system:serviceaccount:default:default" and u.uid == "sa-uid"
        assert u.groups == ["system:serviceaccounts", "system:serviceaccounts:default",
                            "system:authenticated"]
        assert u.extra["authentication.kubernetes.io/pod-name"] == ["p"]
        assert u.extra["authentication.kubernetes.io/credential-id"] == [f"JTI={c['jti']}"]
        # static token
        u = await auth(_Req({"authorization": "Bearer static-1"}))
        assert (u.name, u.uid, u.groups) == ("carol", "42", ["team", "system:authenticated"])
        # wrong audience, expired, tampered, deleted pod: refused
        other = key.sign(tokens.bound_claims(_sa(), audiences=["vault"], expiration=600))
        assert await auth.user_for_token(other) is None
        assert (await auth.user_for_token(other, ["vault"])).name.endswith(":default")
        old = key.sign(tokens.bound_claims(_sa(), audiences=[tokens.ISSUER], expiration=600,
                                           now=time.time() - 3600))
        assert await auth.user_for_token(old) is None
        assert await auth.user_for_token(tok[:-4] + "AAAA") is None
        fresh = tokens.issue_bound_token(key, _sa(), pod)[0]
        await store.delete("/registry/pods/default/p", None)
        assert await auth.user_for_token(fresh) is None
        # a recreated ServiceAccount (new uid) invalidates old tokens
        t2 = key.sign(tokens.bound_claims(_sa(), audiences=[tokens.ISSUER], expiration=600))
        assert await auth.user_for_token(t2) is not None
        await store.delete("/registry/serviceaccounts/default/default", None)
        await store.create("/registry/serviceaccounts/default/default", _sa(uid="new"))
        auth._cache.clear()
        assert await auth.user_for_token(t2) is None
        # no credentials: 401, except health endpoints; a bad token is 401 even there
        with pytest.raises(StatusError) as e:
            await auth(_Req())
        assert (e.value.code, e.value.reason, e.value.message) == (401, "Unauthorized",
                                                                   "Unauthorized")
        assert (await auth(_Req(path="/readyz"))).name == "system:anonymous"
        with pytest.raises(StatusError):
            await auth(_Req({"authorization": "Bearer nope"}, path="/readyz"))
        anon = authn_mod.Authenticator(store, signing_key=key, anonymous=True)
        u = await anon(_Req())
        assert (u.name, u.groups) == ("system:anonymous", ["system:unauthenticated"])
        # websocket bearer subprotocol
        enc = base64.urlsafe_b64encode(b"static-1").decode().rstrip("=")
        scope = {"type": "websocket", "path": "/api/v1/namespaces/d/pods/p/exec",
                 "headers": [(b"sec-websocket-protocol",
                              f"v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.{enc}"
                              .encode())]}
        assert (await auth.authenticate_scope(scope)).name == "carol"
        await store.close()
    run(go())


def test_x509_user_from_peer_certificate():
    peer = {"subject": ((("organizationName", "system:masters"),),
                        (("organizationName", "devs"),), (("commonName", "alice"),))}
    u = authn_mod.user_from_peercert(peer)
    assert u == UserInfo("alice", "", ["system:masters", "devs", "system:authenticated"])
    assert authn_mod.user_from_peercert({"subject": ((("organizationName", "x"),),)}) is None

    async def go():
        a = authn_mod.Authenticator(None)
        scope = {"type": "http", "headers": [], "extensions": {"tls": {"kubeshim.peercert": peer}}}
        assert (await a(_Req(scope=scope))).name == "alice"
    run(go())


def test_index_follows_the_store_and_settles_before_refusing(tmp_path):
    async def go():
        store = SQLiteStore(str(tmp_path / "db" / "state.db"), compact_interval=0)
        await store.start()
        await store.create("/registry/clusterroles/pods", role(
            "pods", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            kind="ClusterRole"))
        ix = RBACIndex()
        tasks = await ix.start(store)
        az = Authorizer(["RBAC"], rbac=ix)
        info = res_info("list", "pods", ns="n1")
        with pytest.raises(StatusError):
            await az(ALICE, info)
        await store.create("/registry/rolebindings/n1/b", binding(
            "b", "ClusterRole", "pods", [{"kind": "User", "name": "alice"}], "n1"))
        await az(ALICE, info)          # no sleep: the refusal path waits for the watch
        await store.delete("/registry/rolebindings/n1/b", None)
        await ix.settle()
        assert not ix.authorize(ALICE, info)[0]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()
    run(go())


def test_rbac_kinds_validation_defaults_and_printing():
    from shim.resources import printers
    from shim.resources.rbac import ClusterRoleBindings, ClusterRoles, RoleBindings, Roles
    r = {"metadata": {"name": "a/b", "namespace": "d"},
         "rules": [{"verbs": []}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}]}
    errs = [str(e) for e in Roles().validate(r)]
    assert errs == ["metadata.name: Invalid value: \"a/b\": may not contain '/'",
                    "rules[0].verbs: Required value: verbs must contain at least one value",
                    "rules[0].apiGroups: Required value: resource rules must supply at least "
                    "one api group",
                    "rules[0].resources: Required value: resource rules must supply at least one "
                    "resource",
                    'rules[1].nonResourceURLs: Invalid value: ["/x"]: namespaced rules cannot '
                    'apply to non-resource URLs']
    assert ClusterRoles().validate({"metadata": {"name": "c"}, "rules": [
        {"verbs": ["get"], "nonResourceURLs": ["/x"]}]}) == []
    b = {"metadata": {"name": "b", "namespace": "d"}, "roleRef": {"kind": "Role", "name": "r"},
         "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa"},
                      {"kind": "Robot", "name": "x"}]}
    RoleBindings().default(b)
    assert b["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert b["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    assert "apiGroup" not in b["subjects"][1]
    assert [str(e) for e in RoleBindings().validate(b)] == [
        'subjects[2].kind: Unsupported value: "Robot": supported values: "ServiceAccount", '
        '"User", "Group"']
    crb = {"metadata": {"name": "c"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                  "kind": "Role", "name": "r"},
           "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}
    assert [str(e) for e in ClusterRoleBindings().validate(crb)] == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
        "subjects[0].namespace: Required value"]
    old = dict(b, roleRef=dict(b["roleRef"]))
    changed = dict(b, roleRef=dict(b["roleRef"], name="other"))
    changed["metadata"] = dict(b["metadata"], resourceVersion="1")
    old["metadata"] = dict(b["metadata"], resourceVersion="1")
    errs = RoleBindings().validate_update(changed, old)
    assert any("cannot change roleRef" in str(e) for e in errs)
    b["subjects"] = b["subjects"][:2] + [{"kind": "ServiceAccount", "name": "s2", "namespace": "o"},
                                         {"kind": "Group", "name": "g"}]
    b["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    cells = printers.cells("RoleBinding", b, printers.parse_timestamp("2020-01-01T00:02:00Z"))
    assert cells == ["b", "Role/r", "2m", "alice", "g", "sa, o/s2"]
    assert [c["name"] for c in printers.COLUMNS["RoleBinding"]] == [
        "Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    assert printers.cells("ClusterRole", {"metadata": {
        "name": "view", "creationTimestamp": "2020-01-01T00:00:00Z"}}, 0) == \
        ["view", "2020-01-01T00:00:00Z"]
    assert [c["type"] for c in printers.COLUMNS["Role"]] == ["string", "date"]
