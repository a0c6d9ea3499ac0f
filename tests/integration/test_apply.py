"""Server-side apply, managedFields, dryRun on every write verb, client-side apply round trips
and kubectl diff, driven by the real kubectl and Python client against a kubeshim server."""
from __future__ import annotations

import json
import shutil
import time

import pytest
import yaml

RC = """
apiVersion: v1
kind: ReplicationController
metadata:
  name: {name}
  labels: {{app: {name}, tier: web}}
spec:
  replicas: {replicas}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: c
        image: busybox
        ports: [{{containerPort: 80}}]
"""

CM = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels: {labels}
data: {data}
"""


def cm_yaml(name, data, labels=None):
    return CM.format(name=name, data=json.dumps(data), labels=json.dumps(labels or {}))


def managers(obj):
    return sorted((e["manager"], e["operation"], e.get("subresource", ""))
                  for e in obj["metadata"].get("managedFields") or [])


def get(kubectl, kind, name, ns):
    # kubectl 1.20 always prints managedFields; later ones hide them unless asked
    flags = [] if kubectl.version == "1.20" else ["--show-managed-fields"]
    return json.loads(kubectl("get", kind, name, "-n", ns, "-o", "json", *flags))


# ---- kubectl apply --server-side ------------------------------------------------------------

def test_server_side_apply_twice_is_idempotent(any_kubectl, ns):
    k = any_kubectl
    manifest = RC.format(name="web", replicas=2)
    out = k("apply", "--server-side", "-n", ns, "-f", "-", input=manifest)
    assert out.strip() == "replicationcontroller/web serverside-applied"
    first = get(k, "rc", "web", ns)
    applied = [e for e in first["metadata"]["managedFields"] if e["operation"] == "Apply"]
    assert [e["manager"] for e in applied] == ["kubectl"]
    assert applied[0]["fieldsV1"]["f:spec"]["f:replicas"] == {}
    assert applied[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"c"}']["f:ports"] == {'k:{"containerPort":80,"protocol":"TCP"}': {
            ".": {}, "f:containerPort": {}}}
    # the replication controller writes status meanwhile: wait for it to settle
    time.sleep(0.5)
    before = get(k, "rc", "web", ns)
    out = k("apply", "--server-side", "-n", ns, "-f", "-", input=manifest)
    assert out.strip() == "replicationcontroller/web serverside-applied"
    after = get(k, "rc", "web", ns)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["metadata"]["managedFields"] == before["metadata"]["managedFields"]


def test_conflict_with_client_side_apply_and_force(kubectl, ns):
    kubectl("apply", "-n", ns, "-f", "-", input=RC.format(name="web", replicas=2))
    r = kubectl.run("apply", "--server-side", "--field-manager=deployer", "-n", ns, "-f", "-",
                    input=RC.format(name="web", replicas=3), check=False)
    assert r.returncode == 1
    assert r.stderr.startswith('error: Apply failed with 1 conflict: conflict with '
                               '"kubectl-client-side-apply" using v1: .spec.replicas\n')
    assert "--force-conflicts" in r.stderr
    assert get(kubectl, "rc", "web", ns)["spec"]["replicas"] == 2
    out = kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=deployer",
                  "-n", ns, "-f", "-", input=RC.format(name="web", replicas=3))
    assert "serverside-applied" in out
    rc = get(kubectl, "rc", "web", ns)
    assert rc["spec"]["replicas"] == 3
    owners = {e["manager"]: e for e in rc["metadata"]["managedFields"]}
    assert "f:replicas" in owners["deployer"]["fieldsV1"]["f:spec"]


def test_conflict_status_on_the_wire(kubectl, raw, ns):
    kubectl("create", "configmap", "c", "--from-literal=a=1", "-n", ns)
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                       "data": {"a": "2"}})
    code, st, _, _ = raw("PATCH", f"/api/v1/namespaces/{ns}/configmaps/c?fieldManager=me", body,
                         {"Content-Type": "application/apply-patch+yaml"})
    assert code == 409
    assert st == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": 'Apply failed with 1 conflict: conflict with "kubectl-create" '
                             'using v1: .data.a',
                  "reason": "Conflict",
                  "details": {"causes": [{"reason": "FieldManagerConflict",
                                          "message": 'conflict with "kubectl-create" using v1',
                                          "field": ".data.a"}]},
                  "code": 409}


def test_removing_a_field_from_the_applied_file_removes_it(kubectl, ns):
    kubectl("apply", "--server-side", "-n", ns, "-f", "-",
            input=cm_yaml("c", {"a": "1", "b": "2"}, {"x": "y", "keep": "me"}))
    kubectl("label", "cm", "c", "other=z", "-n", ns)
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=cm_yaml("c", {"a": "1"},
                                                                        {"keep": "me"}))
    c = get(kubectl, "cm", "c", ns)
    assert c["data"] == {"a": "1"}
    # the label kubectl-label owns stays; the one only the applier owned goes
    assert c["metadata"]["labels"] == {"keep": "me", "other": "z"}


def test_apply_status_subresource_and_python_client(core, raw, ns):
    from kubernetes.client.rest import ApiException
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py"},
            "data": {"k": "v"}}
    c = core.patch_namespaced_config_map("py", ns, body, field_manager="me",
                                         _content_type="application/apply-patch+yaml")
    assert c.data == {"k": "v"}
    (e,) = c.metadata.managed_fields
    assert (e.manager, e.operation, e.api_version) == ("me", "Apply", "v1")
    assert e.fields_v1 == {"f:data": {"f:k": {}}}
    with pytest.raises(ApiException) as ei:
        core.patch_namespaced_config_map("py", ns, body,
                                         _content_type="application/apply-patch+yaml")
    assert ei.value.status == 422
    assert json.loads(ei.value.body)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for '
        'apply patch')
    # status subresource apply (creates nothing: the object must exist)
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
          "spec": {"replicas": 0, "selector": {"a": "b"},
                   "template": {"metadata": {"labels": {"a": "b"}},
                                "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    code, got, _, _ = raw("PATCH", f"/api/v1/namespaces/{ns}/replicationcontrollers/r?"
                                   "fieldManager=me", json.dumps(rc),
                          {"Content-Type": "application/apply-patch+yaml"})
    assert code == 201 and got["spec"]["replicas"] == 0
    st = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
          "status": {"replicas": 0, "observedGeneration": 1}}
    code, got, _, _ = raw("PATCH", f"/api/v1/namespaces/{ns}/replicationcontrollers/r/status?"
                                   "fieldManager=statusmgr&force=true", json.dumps(st),
                          {"Content-Type": "application/apply-patch+yaml"})
    assert code == 200, got
    mine = [e for e in got["metadata"]["managedFields"] if e["manager"] == "statusmgr"]
    assert mine[0]["subresource"] == "status" and mine[0]["operation"] == "Apply"
    assert set(mine[0]["fieldsV1"]["f:status"]) == {"f:replicas", "f:observedGeneration"}


def test_apply_request_errors(raw, ns):
    h = {"Content-Type": "application/apply-patch+yaml"}
    base = f"/api/v1/namespaces/{ns}/configmaps"
    code, st, _, _ = raw("PATCH", f"{base}/e?fieldManager=m",
                         "apiVersion: v1\nkind: Secret\nmetadata: {name: e}\n", h)
    assert (code, st["message"]) == (400, "invalid object type: /v1, Kind=Secret")
    code, st, _, _ = raw("PATCH", f"{base}/e?fieldManager=m",
                         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: e\n"
                         "  managedFields: [{manager: x}]\n", h)
    assert (code, st["message"]) == (400, "metadata.managedFields must be nil")
    code, st, _, _ = raw("PATCH", f"{base}/e?fieldManager=m",
                         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: e}\nbogus: 1\n", h)
    assert code == 500
    assert st["message"] == ("failed to create typed patch object (/e; /v1, Kind=ConfigMap): "
                             ".bogus: field not declared in schema")
    code, st, _, _ = raw("PATCH", f"{base}/e?fieldManager=m&fieldValidation=Strict",
                         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: e}\n"
                         "data: {a: '1'}\ndata: {b: '2'}\n", h)
    assert code == 400
    assert st["message"] == ('error strict decoding YAML: error converting YAML to JSON: yaml: '
                             'unmarshal errors:\n  line 5: key "data" already set in map')
    code, st, _, _ = raw("PATCH", f"{base}/e?fieldManager=m&force=true",
                         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: e}\n"
                         "data: {when: 2024-01-01}\n", h)
    assert code == 201 and st["data"] == {"when": "2024-01-01"}
    code, st, _, _ = raw("PATCH", f"{base}/e?force=true", '{"data":{"a":"b"}}',
                         {"Content-Type": "application/merge-patch+json"})
    assert code == 422
    assert st["message"] == ('PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not '
                             'be specified for non-apply patch')


# ---- managedFields on ordinary writes --------------------------------------------------------

def test_managed_fields_after_create_label_scale_and_apply(kubectl, ns):
    kubectl("create", "-n", ns, "-f", "-", input=RC.format(name="m", replicas=1))
    rc = get(kubectl, "rc", "m", ns)
    create = [e for e in rc["metadata"]["managedFields"] if e["manager"] == "kubectl-create"]
    assert create and create[0]["operation"] == "Update" and create[0]["apiVersion"] == "v1"
    assert "f:status" not in create[0]["fieldsV1"]
    assert "f:name" not in create[0]["fieldsV1"]["f:metadata"]
    assert create[0]["fieldsV1"]["f:metadata"]["f:labels"] == {".": {}, "f:app": {}, "f:tier": {}}
    kubectl("label", "rc", "m", "color=blue", "-n", ns)
    kubectl("scale", "rc", "m", "--replicas=2", "-n", ns)
    rc = get(kubectl, "rc", "m", ns)
    by = {e["manager"]: e for e in rc["metadata"]["managedFields"]}
    assert by["kubectl-label"]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:color": {}}}}
    assert by["kubectl"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in by["kubectl-create"]["fieldsV1"]["f:spec"]
    kubectl("apply", "--server-side", "--field-manager=ssa", "--force-conflicts", "-n", ns, "-f",
            "-", input=RC.format(name="m", replicas=3))
    rc = get(kubectl, "rc", "m", ns)
    assert ("ssa", "Apply", "") in managers(rc)
    assert rc["spec"]["replicas"] == 3
    # kubectl get -o yaml hides them unless asked
    plain = yaml.safe_load(kubectl("get", "rc", "m", "-n", ns, "-o", "yaml"))
    assert "managedFields" not in plain["metadata"]


def test_python_client_default_manager(core, ns):
    from kubernetes import client
    c = core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="gen"), data={"a": "b"}))
    (e,) = c.metadata.managed_fields
    assert e.manager == "OpenAPI-Generator" and e.operation == "Update"


# ---- dryRun=All on every write verb -----------------------------------------------------------

def _events_since(raw, path, rv):
    code, _, _, data = raw("GET", f"{path}?watch=1&resourceVersion={rv}&timeoutSeconds=1",
                           timeout=15)
    assert code == 200
    return [json.loads(ln) for ln in data.splitlines() if ln.strip()]


def test_dry_run_on_every_verb_stores_nothing(kubectl, raw, ns):
    base = f"/api/v1/namespaces/{ns}"
    kubectl("create", "configmap", "c", "--from-literal=a=1", "-n", ns)
    kubectl("label", "configmap", "c", "grp=x", "-n", ns)
    kubectl("create", "-n", ns, "-f", "-", input=RC.format(name="r", replicas=0))
    kubectl("run", "p", "--image=nginx", "-n", ns)
    time.sleep(0.5)          # let the controllers settle
    _, lst, _, _ = raw("GET", f"{base}/configmaps")
    rv = lst["metadata"]["resourceVersion"]
    cur = kubectl("get", "cm", "c", "-n", ns, "-o", "json")
    c = json.loads(cur)
    c["data"]["a"] = "changed"
    j = {"Content-Type": "application/json"}
    calls = [
        ("POST", f"{base}/configmaps?dryRun=All",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}}, j, 201),
        ("PUT", f"{base}/configmaps/c?dryRun=All", c, j, 200),
        ("PATCH", f"{base}/configmaps/c?dryRun=All", {"data": {"a": "p"}},
         {"Content-Type": "application/merge-patch+json"}, 200),
        ("PATCH", f"{base}/configmaps/c?dryRun=All&fieldManager=m&force=true",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"a": "ssa"}}, {"Content-Type": "application/apply-patch+yaml"}, 200),
        ("PATCH", f"{base}/configmaps/other?dryRun=All&fieldManager=m",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}},
         {"Content-Type": "application/apply-patch+yaml"}, 201),
        ("DELETE", f"{base}/configmaps/c?dryRun=All", None, j, 200),
        ("DELETE", f"{base}/configmaps?dryRun=All&labelSelector=grp%3Dx", None, j, 200),
        ("PATCH", f"{base}/replicationcontrollers/r/scale?dryRun=All",
         {"spec": {"replicas": 5}}, {"Content-Type": "application/merge-patch+json"}, 200),
        ("PATCH", f"{base}/replicationcontrollers/r/status?dryRun=All",
         {"status": {"replicas": 7}}, {"Content-Type": "application/merge-patch+json"}, 200),
        ("POST", f"{base}/pods/p/binding?dryRun=All",
         {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
          "target": {"kind": "Node", "name": "n1"}}, j, 201),
        ("POST", f"{base}/pods/p/eviction?dryRun=All",
         {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}, j, 201),
        ("DELETE", f"{base}/pods/p?dryRun=All", None, j, 200),
    ]
    for method, path, body, hdrs, want in calls:
        code, got, _, _ = raw(method, path, json.dumps(body) if body is not None else None, hdrs)
        assert code == want, (method, path, got)
    # answers carry the would-be result
    code, got, _, _ = raw("PUT", f"{base}/configmaps/c?dryRun=All", json.dumps(c), j)
    assert got["data"]["a"] == "changed"
    # nothing changed
    assert kubectl("get", "cm", "c", "-n", ns, "-o", "json") == cur
    assert kubectl.run("get", "cm", "new", "-n", ns, check=False).returncode == 1
    assert kubectl.run("get", "cm", "other", "-n", ns, check=False).returncode == 1
    assert get(kubectl, "rc", "r", ns)["spec"]["replicas"] == 0
    pod = get(kubectl, "pod", "p", ns)
    assert not pod["spec"].get("nodeName") and not pod["metadata"].get("deletionTimestamp")
    # and no watch event: the first event after rv is the marker written now
    kubectl("create", "configmap", "marker", "-n", ns)
    evs = _events_since(raw, f"{base}/configmaps", rv)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "marker")]


def test_namespace_finalize_dry_run(kubectl, raw):
    name = f"fin-{int(time.time() * 1000) % 100000}"
    kubectl("create", "namespace", name)
    _, nsobj, _, _ = raw("GET", f"/api/v1/namespaces/{name}")
    nsobj["spec"]["finalizers"] = []
    code, got, _, _ = raw("PUT", f"/api/v1/namespaces/{name}/finalize?dryRun=All",
                          json.dumps(nsobj))
    assert code == 200 and got["spec"].get("finalizers", []) == []
    _, again, _, _ = raw("GET", f"/api/v1/namespaces/{name}")
    assert again["spec"]["finalizers"] == ["kubernetes"]
    assert again["metadata"]["resourceVersion"] == nsobj["metadata"]["resourceVersion"]
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(params=["1.32", "1.35"])
def kubectl_new(request, server, tmp_path_factory):
    """kubectl 1.20 decides dry-run support from /openapi/v2 (not served in full yet)."""
    from tests.conftest import Kubectl
    return Kubectl(server, request.param, str(tmp_path_factory.mktemp("home")))


def test_create_dry_run_server_shows_defaulted_object(kubectl_new, ns):
    any_kubectl = kubectl_new
    out = any_kubectl("run", "dry", "--image=nginx", "--dry-run=server", "-o", "yaml", "-n", ns)
    pod = yaml.safe_load(out)
    c = pod["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "Always"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert pod["spec"]["dnsPolicy"] == "ClusterFirst"
    assert pod["spec"]["schedulerName"] == "default-scheduler"
    assert pod["metadata"]["uid"] and "resourceVersion" not in pod["metadata"]
    r = any_kubectl.run("get", "pod", "dry", "-n", ns, check=False)
    assert r.returncode == 1 and "NotFound" in r.stderr


# ---- client-side apply round trips, prune, diff -----------------------------------------------

def test_client_side_apply_round_trip_removes_dropped_field(any_kubectl, ns):
    k = any_kubectl
    assert "created" in k("apply", "-n", ns, "-f", "-",
                          input=cm_yaml("rt", {"a": "1", "b": "2"}, {"x": "1"}))
    assert "configured" in k("apply", "-n", ns, "-f", "-",
                             input=cm_yaml("rt", {"a": "3", "b": "2"}, {"x": "1"}))
    assert "configured" in k("apply", "-n", ns, "-f", "-", input=cm_yaml("rt", {"a": "3"}, {}))
    c = get(k, "cm", "rt", ns)
    assert c["data"] == {"a": "3"}
    assert not c["metadata"].get("labels")
    last = json.loads(c["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["data"] == {"a": "3"}
    assert "unchanged" in k("apply", "-n", ns, "-f", "-", input=cm_yaml("rt", {"a": "3"}, {}))


def test_apply_prune_deletes_what_left_the_manifest_set(kubectl, ns, tmp_path):
    both = cm_yaml("one", {"a": "1"}, {"app": "x"}) + "---\n" + cm_yaml("two", {"b": "2"}, {"app": "x"})
    kubectl("apply", "-n", ns, "-f", "-", input=both)
    kubectl("create", "configmap", "unrelated", "-n", ns)
    # the default allowlist names kinds kubeshim does not serve (PVCs...): name the kind
    r = kubectl.run("apply", "--prune", "-l", "app=x", "--prune-allowlist=core/v1/ConfigMap",
                    "-n", ns, "-f", "-",
                    input=cm_yaml("one", {"a": "1"}, {"app": "x"}), check=False)
    assert r.returncode == 0, r.stderr
    assert "configmap/two pruned" in r.stdout
    names = kubectl("get", "cm", "-n", ns, "-o", "name").split()
    assert "configmap/one" in names and "configmap/unrelated" in names
    assert "configmap/two" not in names


@pytest.mark.parametrize("server_side", [False, True])
def test_kubectl_diff(kubectl, ns, server_side):
    assert shutil.which("diff"), "kubectl diff needs the diff program"
    flags = ["--server-side"] if server_side else []
    kubectl("apply", *flags, "-n", ns, "-f", "-", input=cm_yaml("d", {"a": "1"}))
    r = kubectl.run("diff", *flags, "-n", ns, "-f", "-", input=cm_yaml("d", {"a": "2"}),
                    check=False)
    assert r.returncode == 1, r.stderr
    assert '-  a: "1"' in r.stdout and '+  a: "2"' in r.stdout
    assert get(kubectl, "cm", "d", ns)["data"] == {"a": "1"}
    # a new object diffs as an addition (POST ?dryRun=All)
    r = kubectl.run("diff", *flags, "-n", ns, "-f", "-", input=cm_yaml("fresh", {"z": "9"}),
                    check=False)
    assert r.returncode == 1 and '+  z: "9"' in r.stdout
    assert kubectl.run("get", "cm", "fresh", "-n", ns, check=False).returncode == 1
    if server_side:
        r = kubectl.run("diff", "--server-side", "-n", ns, "-f", "-",
                        input=cm_yaml("d", {"a": "1"}), check=False)
        assert (r.returncode, r.stdout) == (0, "")
