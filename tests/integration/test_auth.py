"""Authentication and authorization end to end: kubectl 1.32 and the Python client as the admin
(client certificate in system:masters), alice (client certificate signed by the cluster CA),
bob (static token file) and a ServiceAccount token, against servers started with the
--authorization-mode / --token-auth-file / --anonymous-auth flags."""
from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.request

import pytest
import yaml

from shim.certs import PKI
from tests.conftest import Kubectl, ServerProcess

BOB_TOKEN = "bob-token-0123456789"


class AuthServer(ServerProcess):
    """A server whose readiness is polled with the admin certificate (AlwaysDeny and ABAC
    refuse the anonymous /readyz probe)."""

    def wait_ready(self, timeout: float = 20.0) -> float:
        t0 = time.monotonic()
        pki = os.path.join(self.data_dir, "pki")
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.read_log()[-3000:]}")
            try:
                ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
                ctx.check_hostname = False
                ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except (OSError, ssl.SSLError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout}s: {self.read_log()[-3000:]}")


def user_kubeconfig(server: ServerProcess, path: str, user: dict) -> str:
    cfg = yaml.safe_load(open(server.kubeconfig))
    cfg["users"] = [{"name": "u", "user": user}]
    cfg["contexts"][0]["context"]["user"] = "u"
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def cert_user(server: ServerProcess, name: str, orgs: list[str]) -> dict:
    pki = PKI(server.data_dir)
    crt = os.path.join(server.data_dir, f"{name}.crt")
    key = os.path.join(server.data_dir, f"{name}.key")
    pki.issue(crt, key, name, orgs)

    def b64(p):
        return base64.b64encode(open(p, "rb").read()).decode()
    return {"client-certificate-data": b64(crt), "client-key-data": b64(key)}


class As(Kubectl):
    """kubectl 1.32 with another kubeconfig."""

    def __init__(self, server, kubeconfig, home):
        super().__init__(server, "1.32", home)
        self.kubeconfig = kubeconfig

    def env(self):
        env = super().env()
        env["KUBECONFIG"] = self.kubeconfig
        return env


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("auth"))
    tokens = os.path.join(d, "tokens.csv")
    with open(tokens, "w") as f:
        f.write(f'{BOB_TOKEN},bob,2002,"qa,team-b"\n')
    s = AuthServer(d, extra_args=["--token-auth-file", tokens]).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def admin(srv, tmp_path_factory):
    return Kubectl(srv, "1.32", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="module")
def alice(srv, tmp_path_factory):
    home = str(tmp_path_factory.mktemp("home"))
    cfg = user_kubeconfig(srv, os.path.join(home, "alice.yaml"), cert_user(srv, "alice", ["devs"]))
    return As(srv, cfg, home)


@pytest.fixture(scope="module")
def bob(srv, tmp_path_factory):
    home = str(tmp_path_factory.mktemp("home"))
    cfg = user_kubeconfig(srv, os.path.join(home, "bob.yaml"), {"token": BOB_TOKEN})
    return As(srv, cfg, home)


_n = [0]


@pytest.fixture
def ns(admin):
    _n[0] += 1
    name = f"auth-{os.getpid() % 1000}-{_n[0]}"
    admin("create", "namespace", name)
    deadline = time.monotonic() + 5
    while admin.run("get", "sa", "default", "-n", name, check=False).returncode != 0:
        assert time.monotonic() < deadline, "no default service account"
        time.sleep(0.05)
    return name


def https(server, path, *, token=None, cert=None, method="GET", body=None):
    pki = os.path.join(server.data_dir, "pki")
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(*cert)
    req = urllib.request.Request(server.url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, _json_or_bytes(r.read())
    except urllib.error.HTTPError as e:
        return e.code, _json_or_bytes(e.read())


def _json_or_bytes(data: bytes):
    try:
        return json.loads(data)
    except ValueError:
        return data


def admin_cert(server):
    pki = os.path.join(server.data_dir, "pki")
    return os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key")


# ---- default server: RBAC ------------------------------------------------------------------

def test_admin_kubeconfig_is_a_cluster_admin(admin, ns):
    out = admin("auth", "whoami", "-o", "json")
    info = json.loads(out)["status"]["userInfo"]
    assert info["username"] == "kubeshim-admin"
    assert info["groups"] == ["system:masters", "system:authenticated"]
    admin("create", "configmap", "c1", "-n", ns, "--from-literal=a=b")
    assert admin("auth", "can-i", "delete", "nodes").strip() == "yes"
    crb = json.loads(admin("get", "clusterrolebinding", "cluster-admin", "-o", "json"))
    assert crb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                "name": "system:masters"}]
    names = admin("get", "clusterroles", "-o", "name").split()
    for r in ("admin", "cluster-admin", "edit", "view", "system:discovery", "system:basic-user",
              "system:public-info-viewer"):
        assert f"clusterrole.rbac.authorization.k8s.io/{r}" in names


def test_alice_is_refused_then_allowed_by_a_role_binding(admin, alice, ns):
    p = alice.run("get", "pods", "-n", ns, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        f'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
        f'"pods" in API group "" in the namespace "{ns}"')
    assert alice.run("auth", "can-i", "list", "pods", "-n", ns, check=False).stdout.strip() == "no"
    admin("create", "role", "pod-reader", "-n", ns, "--verb=get,list,watch", "--resource=pods")
    admin("create", "rolebinding", "alice-read", "-n", ns, "--role=pod-reader", "--user=alice")
    assert "No resources found" in alice.run("get", "pods", "-n", ns).stderr
    assert alice("auth", "can-i", "list", "pods", "-n", ns).strip() == "yes"
    assert alice.run("auth", "can-i", "delete", "pods", "-n", ns,
                     check=False).stdout.strip() == "no"
    # only in that namespace
    assert alice.run("auth", "can-i", "list", "pods", "-n", "default",
                     check=False).stdout.strip() == "no"
    listing = alice("auth", "can-i", "--list", "-n", ns)
    rows = [line.split() for line in listing.splitlines()]
    assert ["pods", "[]", "[]", "[get", "list", "watch]"] in rows
    assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in rows
    whoami = alice("auth", "whoami")
    assert "alice" in whoami and "[devs system:authenticated]" in whoami
    wide = admin("get", "rolebinding", "alice-read", "-n", ns, "-o", "wide")
    assert wide.splitlines()[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS",
                                            "SERVICEACCOUNTS"]
    assert wide.splitlines()[1].split()[:2] == ["alice-read", "Role/pod-reader"]


def test_escalation_is_refused_with_the_real_message(admin, alice, ns):
    admin("create", "rolebinding", "alice-admin", "-n", ns, "--clusterrole=admin", "--user=alice")
    alice("create", "role", "ok", "-n", ns, "--verb=get,list", "--resource=pods,secrets")
    p = alice.run("create", "role", "too-much", "-n", ns, "--verb=get,list",
                  "--resource=nodes,pods", check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        'Error from server (Forbidden): roles.rbac.authorization.k8s.io "too-much" is forbidden: '
        'user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC '
        'permissions not currently held:\n{APIGroups:[""], Resources:["nodes"], '
        'Verbs:["get" "list"]}')
    p = alice.run("create", "rolebinding", "bob-cluster-admin", "-n", ns,
                  "--clusterrole=cluster-admin", "--user=bob", check=False)
    assert p.returncode == 1
    assert ('rolebindings.rbac.authorization.k8s.io "bob-cluster-admin" is forbidden: user '
            '"alice"') in p.stderr
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in p.stderr
    alice("create", "rolebinding", "bob-edit", "-n", ns, "--clusterrole=edit", "--user=bob")


def test_static_token_user(admin, bob, ns):
    info = json.loads(bob("auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert info == {"username": "bob", "uid": "2002",
                    "groups": ["qa", "team-b", "system:authenticated"]}
    p = bob.run("get", "configmaps", "-n", ns, check=False)
    assert 'User "bob" cannot list resource "configmaps"' in p.stderr
    admin("create", "rolebinding", "qa-view", "-n", ns, "--clusterrole=view", "--group=qa")
    bob("get", "configmaps", "-n", ns)
    assert bob("auth", "can-i", "list", "configmaps", "-n", ns).strip() == "yes"
    assert bob.run("auth", "can-i", "get", "secrets", "-n", ns,
                   check=False).stdout.strip() == "no"
    p = subprocess_kubectl(bob, "--token=wrong", "get", "pods", "-n", ns)
    assert p.returncode == 1
    assert "error: You must be logged in to the server (Unauthorized)" in p.stderr


def subprocess_kubectl(k, *args):
    return k.run(*args, check=False)


def test_service_account_token_is_a_bearer_token_bound_to_rbac(srv, admin, ns):
    token = admin("create", "token", "default", "-n", ns).strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == f"system:serviceaccount:{ns}:default"
    assert claims["kubernetes.io"]["namespace"] == ns
    assert claims["exp"] - claims["iat"] == 3600
    code, body = https(srv, f"/api/v1/namespaces/{ns}/pods", token=token)
    assert code == 403
    assert body["message"] == (f'pods is forbidden: User "system:serviceaccount:{ns}:default" '
                               f'cannot list resource "pods" in API group "" in the namespace '
                               f'"{ns}"')
    admin("create", "rolebinding", "sa-view", "-n", ns, "--clusterrole=view",
          f"--serviceaccount={ns}:default")
    code, body = https(srv, f"/api/v1/namespaces/{ns}/pods", token=token)
    assert code == 200 and body["kind"] == "PodList"
    code, body = https(srv, "/apis/authentication.k8s.io/v1/selfsubjectreviews", token=token,
                       method="POST", body={"kind": "SelfSubjectReview",
                                            "apiVersion": "authentication.k8s.io/v1"})
    assert code == 201
    ui = body["status"]["userInfo"]
    assert ui["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                            "system:authenticated"]
    sa_uid = json.loads(admin("get", "sa", "default", "-n", ns, "-o", "json"))["metadata"]["uid"]
    assert ui["uid"] == sa_uid
    # TokenReview as the admin
    code, body = https(srv, "/apis/authentication.k8s.io/v1/tokenreviews", cert=admin_cert(srv),
                       method="POST", body={"kind": "TokenReview",
                                            "apiVersion": "authentication.k8s.io/v1",
                                            "spec": {"token": token}})
    assert code == 201 and body["status"]["authenticated"] is True
    assert body["status"]["user"]["username"] == f"system:serviceaccount:{ns}:default"
    # short lifetimes are refused like the real server
    p = admin.run("create", "token", "default", "-n", ns, "--duration=60s", check=False)
    assert 'spec.expirationSeconds: Invalid value: 60: may not specify a duration less than ' \
           '10 minutes' in p.stderr
    # deleting the ServiceAccount revokes its tokens (after the 10 s token cache at most)
    admin("delete", "sa", "default", "-n", ns)
    deadline = time.monotonic() + 15
    while https(srv, f"/api/v1/namespaces/{ns}/pods", token=token)[0] != 401:
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_access_reviews_wire_shapes(srv, admin, ns):
    cert = admin_cert(srv)
    code, body = https(srv, "/apis/authorization.k8s.io/v1/subjectaccessreviews", cert=cert,
                       method="POST", body={
                           "kind": "SubjectAccessReview",
                           "apiVersion": "authorization.k8s.io/v1",
                           "spec": {"user": "carol", "groups": ["system:authenticated"],
                                    "resourceAttributes": {"verb": "get", "resource": "pods",
                                                           "namespace": ns}}})
    assert code == 201
    assert body["status"] == {"allowed": False}
    assert body["metadata"] == {"creationTimestamp": None}
    code, body = https(srv, "/apis/authorization.k8s.io/v1/subjectaccessreviews", cert=cert,
                       method="POST", body={"kind": "SubjectAccessReview",
                                            "apiVersion": "authorization.k8s.io/v1",
                                            "spec": {"groups": ["system:masters"],
                                                     "nonResourceAttributes": {
                                                         "path": "/metrics", "verb": "get"}}})
    assert body["status"]["allowed"] is True
    code, body = https(srv, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", cert=cert,
                       method="POST", body={"kind": "SelfSubjectAccessReview",
                                            "apiVersion": "authorization.k8s.io/v1",
                                            "spec": {}})
    assert code == 422
    assert body["message"] == (
        'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
        'Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be '
        'specified')
    code, body = https(srv, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", cert=cert)
    assert code == 405


def test_python_client_as_alice_and_bob(srv, admin, alice, bob, ns):
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    def core_for(kubeconfig):
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        return client.CoreV1Api(client.ApiClient(cfg))
    a, b = core_for(alice.kubeconfig), core_for(bob.kubeconfig)
    for api, who in ((a, "alice"), (b, "bob")):
        with pytest.raises(ApiException) as e:
            api.list_namespaced_service(ns)
        assert e.value.status == 403
        assert json.loads(e.value.body)["message"] == (
            f'services is forbidden: User "{who}" cannot list resource "services" in API group '
            f'"" in the namespace "{ns}"')
    admin("create", "rolebinding", "edit-both", "-n", ns, "--clusterrole=edit", "--user=alice",
          "--user=bob")
    a.create_namespaced_config_map(ns, {"metadata": {"name": "from-alice"}, "data": {"k": "v"}})
    assert b.read_namespaced_config_map("from-alice", ns).data == {"k": "v"}


def test_no_credentials_is_401_but_health_answers(srv):
    code, body = https(srv, "/api/v1/namespaces")
    assert code == 401
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert https(srv, "/version")[0] == 401
    assert https(srv, "/readyz")[0] == 200


# ---- other modes ---------------------------------------------------------------------------

def test_always_deny_mode(tmp_path):
    s = AuthServer(str(tmp_path / "d"), extra_args=["--authorization-mode=AlwaysDeny"]).start()
    try:
        admin = Kubectl(s, "1.32", str(tmp_path))
        admin("get", "ns")                   # system:masters is always allowed
        alice = As(s, user_kubeconfig(s, str(tmp_path / "a.yaml"), cert_user(s, "alice", [])),
                   str(tmp_path))
        p = alice.run("get", "pods", check=False)
        assert 'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in ' \
               'the namespace "default": Everything is forbidden.' in p.stderr
        code, body = https(s, "/version", cert=(str(tmp_path / "d" / "alice.crt"),
                                                  str(tmp_path / "d" / "alice.key")))
        assert code == 403
        assert body["message"] == ('forbidden: User "alice" cannot get path "/version": '
                                   'Everything is forbidden.')
    finally:
        s.stop()


def test_abac_mode_and_anonymous_auth(tmp_path):
    policy = tmp_path / "abac.jsonl"
    lines = [
        {"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy",
         "spec": {"user": "alice", "namespace": "*", "resource": "pods", "apiGroup": "",
                  "readonly": True}},
        {"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy",
         "spec": {"group": "system:authenticated", "readonly": True, "nonResourcePath": "*"}},
        {"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy",
         "spec": {"group": "system:authenticated", "apiGroup": "*", "namespace": "*",
                  "resource": "selfsubjectaccessreviews"}},
        {"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy",
         "spec": {"user": "system:anonymous", "readonly": True, "nonResourcePath": "/version"}},
    ]
    policy.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    s = AuthServer(str(tmp_path / "d"), extra_args=[
        "--authorization-mode=ABAC", f"--authorization-policy-file={policy}",
        "--anonymous-auth=true"]).start()
    try:
        alice = As(s, user_kubeconfig(s, str(tmp_path / "a.yaml"), cert_user(s, "alice", [])),
                   str(tmp_path))
        alice("get", "pods", "-n", "kube-system")
        assert alice("auth", "can-i", "watch", "pods").strip() == "yes"
        p = alice.run("delete", "pod", "x", check=False)
        assert 'pods "x" is forbidden: User "alice" cannot delete resource "pods" in API group ' \
               '"" in the namespace "default": No policy matched.' in p.stderr
        assert alice.run("auth", "can-i", "list", "services",
                         check=False).stdout.strip() == "no - No policy matched."
        # anonymous: on, and ABAC lets it read /version only
        assert https(s, "/version")[0] == 200
        code, body = https(s, "/api/v1/namespaces")
        assert code == 403
        assert body["message"] == ('namespaces is forbidden: User "system:anonymous" cannot list '
                                   'resource "namespaces" in API group "" at the cluster scope: '
                                   'No policy matched.')
    finally:
        s.stop()


def test_legacy_service_account_token_secret(srv, admin, ns):
    admin("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "legacy", "namespace": ns,
                     "annotations": {"kubernetes.io/service-account.name": "default"}}}))
    sec = json.loads(admin("get", "secret", "legacy", "-n", ns, "-o", "json"))
    sa = json.loads(admin("get", "sa", "default", "-n", ns, "-o", "json"))
    assert sec["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == \
        sa["metadata"]["uid"]
    assert base64.b64decode(sec["data"]["namespace"]).decode() == ns
    assert base64.b64decode(sec["data"]["ca.crt"]).decode().startswith("-----BEGIN CERTIFICATE")
    token = base64.b64decode(sec["data"]["token"]).decode()
    code, body = https(srv, "/apis/authentication.k8s.io/v1/selfsubjectreviews", token=token,
                       method="POST", body={"kind": "SelfSubjectReview",
                                            "apiVersion": "authentication.k8s.io/v1"})
    assert code == 201
    assert body["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:default"
    admin("delete", "secret", "legacy", "-n", ns)
    deadline = time.monotonic() + 15
    while https(srv, "/api", token=token)[0] != 401:
        assert time.monotonic() < deadline
        time.sleep(0.5)
