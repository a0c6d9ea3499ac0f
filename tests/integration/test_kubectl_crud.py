"""kubectl against a real kubeshim server: create/get/describe/apply/edit/label/annotate/patch/
replace/delete/wait on every served kind, with the real wording on errors."""
from __future__ import annotations

import json
import os
import textwrap
import time

import pytest
import yaml

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: ["sleep", "3600"]
"""

# one manifest per served kind (namespaced ones go into the test namespace)
KINDS = {
    "pods": POD,
    "replicationcontrollers": """
apiVersion: v1
kind: ReplicationController
metadata: {name: rc1}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: rc1}}
    spec:
      containers: [{name: c, image: busybox}]
""",
    "services": """
apiVersion: v1
kind: Service
metadata: {name: svc1}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
""",
    "endpoints": """
apiVersion: v1
kind: Endpoints
metadata: {name: ep1}
subsets:
- addresses: [{ip: 10.42.0.5}]
  ports: [{port: 80}]
""",
    "secrets": """
apiVersion: v1
kind: Secret
metadata: {name: s1}
stringData: {password: hunter2}
""",
    "resourcequotas": """
apiVersion: v1
kind: ResourceQuota
metadata: {name: q1}
spec:
  hard: {pods: "10", requests.cpu: "2"}
""",
    "configmaps": """
apiVersion: v1
kind: ConfigMap
metadata: {name: cm1}
data: {a: "1"}
""",
    "serviceaccounts": """
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa1}
""",
    "events": """
apiVersion: v1
kind: Event
metadata: {name: ev1}
involvedObject: {kind: Pod, name: web, namespace: NS}
reason: Testing
message: hello
type: Normal
""",
    "limitranges": """
apiVersion: v1
kind: LimitRange
metadata: {name: lr1}
spec:
  limits: [{type: Container, default: {cpu: 500m}}]
""",
}


def write(tmp_path, name, text, ns="default"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).replace("NS", ns))
    return str(p)


@pytest.mark.parametrize("plural", sorted(KINDS))
def test_create_get_describe_delete_each_kind(kubectl, ns, tmp_path, plural):
    f = write(tmp_path, f"{plural}.yaml", KINDS[plural], ns)
    out = kubectl("create", "-f", f, "-n", ns)
    assert "created" in out
    name = yaml.safe_load(KINDS[plural])["metadata"]["name"]
    got = json.loads(kubectl("get", plural, name, "-n", ns, "-o", "json"))
    assert got["metadata"]["name"] == name and got["metadata"]["uid"]
    assert got["metadata"]["resourceVersion"].isdigit()
    assert kubectl("get", plural, name, "-n", ns, "-o", "name").strip().endswith(f"/{name}")
    assert kubectl("get", plural, "-n", ns, "-o", "jsonpath={.items[*].metadata.name}").split() \
        .count(name) == 1
    table = kubectl("get", plural, "-n", ns)
    if plural == "events":   # the event table has no NAME column (only with -o wide)
        assert table.splitlines()[0].split()[:3] == ["LAST", "SEEN", "TYPE"] and "hello" in table
    else:
        assert name in table and table.splitlines()[0].startswith("NAME")
    assert name in kubectl("describe", plural, name, "-n", ns)
    r = kubectl.run("create", "-f", f, "-n", ns, check=False)
    assert r.returncode == 1
    assert f'Error from server (AlreadyExists): error when creating "{f}": ' in r.stderr
    assert "already exists" in r.stderr
    kubectl("delete", "-f", f, "-n", ns, "--wait=true")
    r = kubectl.run("get", plural, name, "-n", ns, check=False)
    assert r.returncode == 1
    assert f'Error from server (NotFound): {plural} "{name}" not found' in r.stderr


def test_get_not_found_wording(kubectl, ns):
    r = kubectl.run("get", "pods", "nope", "-n", ns, check=False)
    assert r.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    # kubectl >= 1.31 looks the namespace up after a NotFound and names it instead
    r = kubectl.run("get", "pods", "-n", "no-such-namespace", "x", check=False)
    assert 'Error from server (NotFound): namespaces "no-such-namespace" not found' in r.stderr


def test_typed_create_subcommands(kubectl, ns):
    # client-go typed clients send protobuf bodies for these
    kubectl("create", "secret", "generic", "s2", "--from-literal=a=b", "-n", ns)
    s = json.loads(kubectl("get", "secret", "s2", "-n", ns, "-o", "json"))
    assert s["type"] == "Opaque" and s["data"] == {"a": "Yg=="}
    kubectl("create", "configmap", "c2", "--from-literal=k=v", "-n", ns)
    assert json.loads(kubectl("get", "cm", "c2", "-n", ns, "-o", "json"))["data"] == {"k": "v"}
    kubectl("create", "serviceaccount", "robot", "-n", ns)
    kubectl("create", "service", "clusterip", "svc2", "--tcp=80:8080", "-n", ns)
    svc = json.loads(kubectl("get", "svc", "svc2", "-n", ns, "-o", "json"))
    assert svc["spec"]["clusterIP"].startswith("10.43.")
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    kubectl("create", "quota", "q2", "--hard=pods=3,cpu=1", "-n", ns)
    q = json.loads(kubectl("get", "quota", "q2", "-n", ns, "-o", "json"))
    assert q["spec"]["hard"] == {"pods": "3", "cpu": "1"}


def test_get_output_formats_and_selectors(kubectl, ns, tmp_path):
    for i, app in enumerate(["a", "b", "a"]):
        kubectl("create", "-f", write(tmp_path, f"p{i}.yaml", POD.replace("name: web", f"name: p{i}")
                                      .replace("app: web", f"app: {app}"), ns), "-n", ns)
    names = kubectl("get", "pods", "-n", ns, "-l", "app=a", "-o", "name").split()
    assert names == ["pod/p0", "pod/p2"]
    names = kubectl("get", "pods", "-n", ns, "-l", "app in (b)", "-o", "name").split()
    assert names == ["pod/p1"]
    names = kubectl("get", "pods", "-n", ns, "--field-selector", "metadata.name=p1", "-o", "name").split()
    assert names == ["pod/p1"]
    wide = kubectl("get", "pods", "-n", ns, "-o", "wide")
    assert wide.splitlines()[0].split()[:9] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP",
                                                "NODE", "NOMINATED", "NODE"]
    row = [ln for ln in wide.splitlines() if ln.startswith("p0 ")][0].split()
    assert row[1:4] == ["0/1", "Pending", "0"]
    allns = kubectl("get", "pods", "-A")
    assert allns.splitlines()[0].split()[0] == "NAMESPACE"
    assert any(ln.split()[:2] == [ns, "p1"] for ln in allns.splitlines())
    y = yaml.safe_load(kubectl("get", "pods", "-n", ns, "-o", "yaml"))
    assert y["kind"] == "List" and len(y["items"]) == 3
    everything = kubectl("get", "all", "-n", ns)
    assert "pod/p0" in everything
    r = kubectl.run("get", "pods", "-n", ns, "--field-selector", "spec.bogus=1", check=False)
    assert "field label not supported: spec.bogus" in r.stderr
    lbl = kubectl("get", "pods", "-n", ns, "--show-labels")
    assert "app=a" in lbl


def test_label_annotate_patch_replace(kubectl, ns, tmp_path):
    f = write(tmp_path, "pod.yaml", POD, ns)
    kubectl("create", "-f", f, "-n", ns)
    kubectl("label", "pod", "web", "tier=front", "-n", ns)
    kubectl("annotate", "pod", "web", "note=hi", "-n", ns)
    p = json.loads(kubectl("get", "pod", "web", "-n", ns, "-o", "json"))
    assert p["metadata"]["labels"]["tier"] == "front"
    assert p["metadata"]["annotations"]["note"] == "hi"
    kubectl("label", "pod", "web", "tier-", "-n", ns)
    # strategic (default): containers merge by name
    kubectl("patch", "pod", "web", "-n", ns, "-p",
            '{"spec":{"containers":[{"name":"c","image":"busybox:1.37"}]}}')
    p = json.loads(kubectl("get", "pod", "web", "-n", ns, "-o", "json"))
    assert "tier" not in p["metadata"]["labels"]
    assert p["spec"]["containers"][0]["image"] == "busybox:1.37"
    assert p["spec"]["containers"][0]["command"] == ["sleep", "3600"]
    kubectl("patch", "pod", "web", "-n", ns, "--type", "merge", "-p",
            '{"metadata":{"labels":{"m":"1"}}}')
    kubectl("patch", "pod", "web", "-n", ns, "--type", "json", "-p",
            '[{"op":"add","path":"/metadata/labels/j","value":"2"}]')
    p = json.loads(kubectl("get", "pod", "web", "-n", ns, "-o", "json"))
    assert p["metadata"]["labels"] == {"app": "web", "m": "1", "j": "2"}
    r = kubectl.run("patch", "pod", "web", "-n", ns, "--type", "json", "-p",
                    '[{"op":"test","path":"/metadata/name","value":"other"}]', check=False)
    # a failed JSON-patch op is a 422 without causes, as on a real apiserver
    assert r.returncode == 1
    assert r.stderr.strip() == ("The request is invalid: the server rejected our request due to an "
                                "error in our request")
    # replace with the live object (keeps resourceVersion -> optimistic concurrency)
    p["metadata"]["annotations"] = {"replaced": "yes"}
    out = kubectl("replace", "-f", "-", "-n", ns, input=json.dumps(p))
    assert "replaced" in out
    stale = dict(p)
    r = kubectl.run("replace", "-f", "-", "-n", ns, input=json.dumps(stale), check=False)
    assert r.returncode == 1
    assert ("Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be "
            "fulfilled on pods \"web\": the object has been modified; please apply your changes "
            "to the latest version and try again") in r.stderr
    r = kubectl.run("patch", "pod", "web", "-n", ns, "-p", '{"spec":{"restartPolicy":"Never"}}',
                    check=False)
    assert 'The Pod "web" is invalid: spec: Forbidden: pod updates may not change fields' in r.stderr


def test_apply_create_modify_remove_field(kubectl, ns, tmp_path):
    cm = textwrap.dedent("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: applied, labels: {a: "1", b: "2"}}
        data: {x: "1", y: "2"}
    """)
    f = write(tmp_path, "cm.yaml", cm, ns)
    assert "created" in kubectl("apply", "-f", f, "-n", ns)
    assert "unchanged" in kubectl("apply", "-f", f, "-n", ns)
    f2 = write(tmp_path, "cm2.yaml", cm.replace(', b: "2"', "").replace(', y: "2"', ', z: "3"'), ns)
    assert "configured" in kubectl("apply", "-f", f2, "-n", ns)
    got = json.loads(kubectl("get", "cm", "applied", "-n", ns, "-o", "json"))
    assert got["data"] == {"x": "1", "z": "3"}
    assert got["metadata"]["labels"] == {"a": "1"}


def test_edit_with_editor(kubectl, ns, tmp_path):
    kubectl("create", "configmap", "ed", "--from-literal=k=old", "-n", ns)
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/k: old/k: new/' \"$1\"\n")
    editor.chmod(0o755)
    env = kubectl.env()
    env["KUBE_EDITOR"] = str(editor)
    import subprocess
    p = subprocess.run([kubectl.bin, "edit", "cm", "ed", "-n", ns], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(kubectl("get", "cm", "ed", "-n", ns, "-o", "json"))["data"]["k"] == "new"


def test_delete_selector_all_and_wait(kubectl, ns):
    for i in range(3):
        kubectl("create", "configmap", f"d{i}", f"--from-literal=i={i}", "-n", ns)
    kubectl("label", "cm", "d0", "d1", "grp=x", "-n", ns)
    out = kubectl("delete", "cm", "-l", "grp=x", "-n", ns)
    assert 'configmap "d0" deleted' in out and 'configmap "d1" deleted' in out
    w = kubectl.popen("wait", "--for=delete", "configmap/d2", "-n", ns, "--timeout=20s")
    time.sleep(0.5)
    kubectl("delete", "cm", "--all", "-n", ns)
    assert w.wait(30) == 0, w.stderr.read()
    left = kubectl("get", "cm", "-n", ns, "-o", "name").split()
    assert left == ["configmap/kube-root-ca.crt"] or left == []


def test_invalid_object_wording(kubectl, ns, tmp_path):
    bad = POD.replace("name: web", "name: Bad_Name")
    r = kubectl.run("create", "-f", write(tmp_path, "bad.yaml", bad, ns), "-n", ns, check=False)
    assert r.returncode == 1
    assert ('The Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase '
            "RFC 1123 subdomain must consist of") in r.stderr
    unknown = POD.replace("  containers:", "  containerz: 1\n  containers:")
    r = kubectl.run("create", "-f", write(tmp_path, "unk.yaml", unknown, ns), "-n", ns, check=False)
    assert r.returncode == 1
    assert 'strict decoding error: unknown field "spec.containerz"' in r.stderr
    r = kubectl.run("create", "-f", write(tmp_path, "unk.yaml", unknown, ns), "-n", ns,
                    "--validate=warn", check=False)
    assert r.returncode == 0 and 'Warning: unknown field "spec.containerz"' in r.stderr


def test_namespace_lifecycle(kubectl, tmp_path):
    kubectl("create", "namespace", "life")
    kubectl("create", "configmap", "x", "--from-literal=a=b", "-n", "life")
    r = kubectl.run("create", "configmap", "y", "--from-literal=a=b", "-n", "missing-ns", check=False)
    assert 'error: failed to create configmap: namespaces "missing-ns" not found' in r.stderr
    r = kubectl.run("create", "-f", "-", "-n", "missing-ns", check=False,
                    input='{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"z"}}')
    assert 'Error from server (NotFound): error when creating "STDIN": namespaces "missing-ns" not ' \
        'found' in r.stderr
    kubectl("delete", "namespace", "life", "--timeout=30s")
    r = kubectl.run("get", "namespace", "life", check=False)
    assert 'namespaces "life" not found' in r.stderr


def test_system_objects_exist(kubectl):
    names = kubectl("get", "ns", "-o", "name").split()
    for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"namespace/{n}" in names
    svc = json.loads(kubectl("get", "svc", "kubernetes", "-n", "default", "-o", "json"))
    assert svc["spec"]["clusterIP"] == "10.43.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443
    ep = json.loads(kubectl("get", "endpoints", "kubernetes", "-n", "default", "-o", "json"))
    assert ep["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1"
    cm = json.loads(kubectl("get", "cm", "kube-root-ca.crt", "-n", "kube-system", "-o", "json"))
    assert cm["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    kubectl("delete", "sa", "default", "-n", "kube-public")
    deadline = time.monotonic() + 5
    while kubectl.run("get", "sa", "default", "-n", "kube-public", check=False).returncode:
        assert time.monotonic() < deadline, "default service account was not recreated"
        time.sleep(0.05)
