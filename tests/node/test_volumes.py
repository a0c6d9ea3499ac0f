"""Pod volumes on the node: payloads, the atomic writer, hostPath checks (pure, no server), then
end to end with one `kubeshim server` with its own containerd: secret/configMap/downwardAPI/
emptyDir(Memory)/hostPath volumes, subPath and readOnly mounts, the service-account token
mount that authenticates against the API, a Secret update reaching the file, and FailedMount
for a missing Secret / failing hostPath check.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import time
import urllib.request

import pytest

from shim.node import volumes as V
from tests.node.test_agent import (IMAGE, apply, get_pod, kc, node_server,  # noqa: F401
                                   ns, wait_for, wait_status)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# ---- payloads ----------------------------------------------------------------------------

def test_secret_payload_all_keys_items_modes_and_optional():
    sec = {"data": {"a": b64("A"), "b": b64("B")}}
    assert V.secret_payload(sec, {"secretName": "s"}) == {"a": (b"A", 0o644), "b": (b"B", 0o644)}
    src = {"secretName": "s", "defaultMode": 0o400,
           "items": [{"key": "a", "path": "x/y"}, {"key": "b", "path": "bee", "mode": 0o600}]}
    assert V.secret_payload(sec, src) == {"x/y": (b"A", 0o400), "bee": (b"B", 0o600)}
    with pytest.raises(ValueError, match="^references non-existent secret key: zz$"):
        V.secret_payload(sec, {"secretName": "s", "items": [{"key": "zz", "path": "p"}]})
    assert V.secret_payload(sec, {"secretName": "s", "optional": True,
                                  "items": [{"key": "zz", "path": "p"}]}) == {}
    with pytest.raises(ValueError, match='^secret "gone" not found$'):
        V.secret_payload(None, {"secretName": "gone"})
    assert V.secret_payload(None, {"secretName": "gone", "optional": True}) == {}


def test_configmap_payload_with_binary_data_and_missing_key():
    cm = {"data": {"k": "v"}, "binaryData": {"bin": b64("\x00\x01")}}
    assert V.configmap_payload(cm, {"name": "c"}) == {"k": (b"v", 0o644),
                                                      "bin": (b"\x00\x01", 0o644)}
    with pytest.raises(ValueError, match="^configmap references non-existent config key: q$"):
        V.configmap_payload(cm, {"name": "c", "items": [{"key": "q", "path": "q"}]})
    with pytest.raises(ValueError, match='^configmap "c" not found$'):
        V.configmap_payload(None, {"name": "c"})


def test_downward_payload_fields_and_resources():
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u1",
                        "labels": {"b": "2", "a": "1"}},
           "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}]}}
    items = [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
             {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o600},
             {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
             {"path": "mem", "resourceFieldRef": {"containerName": "c",
                                                  "resource": "limits.memory", "divisor": "1Mi"}}]
    assert V.downward_payload(pod, items, 0o644) == {
        "labels": (b'a="1"\nb="2"', 0o644), "name": (b"p", 0o600), "uid": (b"u1", 0o644),
        "mem": (b"64", 0o644)}


def test_token_request_body_binds_to_the_pod():
    pod = {"metadata": {"name": "p", "uid": "u1"}}
    body = V.token_request_body(pod, {"expirationSeconds": 3607, "path": "token"})
    assert body["spec"] == {"expirationSeconds": 3607, "boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u1"}}
    assert V.token_request_body(pod, {"audience": "vault"})["spec"]["audiences"] == ["vault"]
    assert not V.needs_refresh(1000.0, 1000.0 + 3600, 1000.0 + 2000)
    assert V.needs_refresh(1000.0, 1000.0 + 3600, 1000.0 + 2900)


# ---- the atomic writer -------------------------------------------------------------------

def test_atomic_writer_layout_update_and_removal(tmp_path):
    d = str(tmp_path / "vol")
    assert V.write_atomic(d, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert os.readlink(os.path.join(d, "a")) == "..data/a"
    assert os.readlink(os.path.join(d, "dir")) == "..data/dir"
    first = os.readlink(os.path.join(d, "..data"))
    assert first.startswith("..") and not first.startswith("../")
    assert open(os.path.join(d, "dir", "b")).read() == "2"
    assert oct(os.stat(os.path.join(d, "dir", "b")).st_mode & 0o777) == "0o600"
    assert not V.write_atomic(d, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})   # unchanged
    assert V.write_atomic(d, {"a": (b"new", 0o644)})
    second = os.readlink(os.path.join(d, "..data"))
    assert second != first and not os.path.exists(os.path.join(d, first))
    assert sorted(os.listdir(d)) == sorted(["..data", second, "a"])
    assert open(os.path.join(d, "a")).read() == "new"
    assert V.read_payload(d) == {"a": (b"new", 0o644)}


def test_host_path_type_checks(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    V.check_host_path(str(f), "File")
    V.check_host_path(str(tmp_path), "Directory")
    V.check_host_path(str(tmp_path / "nothing"), "")          # no check
    with pytest.raises(ValueError, match=f"^hostPath type check failed: {f} is not a directory$"):
        V.check_host_path(str(f), "Directory")
    with pytest.raises(ValueError, match="is not a socket file$"):
        V.check_host_path(str(f), "Socket")
    with pytest.raises(ValueError, match="is not a file$"):
        V.check_host_path(str(tmp_path / "missing"), "File")
    V.check_host_path(str(tmp_path / "made" / "here"), "DirectoryOrCreate")
    assert (tmp_path / "made" / "here").is_dir()
    V.check_host_path(str(tmp_path / "new.txt"), "FileOrCreate")
    assert (tmp_path / "new.txt").is_file()


def test_manager_mounts_subpath_and_read_only(tmp_path):
    async def lookup(kind, name):
        return {"data": {"k": b64("v")}} if kind == "secret" else None

    async def token(sa, body):
        return f"tok-{sa}", time.time() + 3600
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u"},
           "spec": {"serviceAccountName": "robot", "volumes": [
               {"name": "s", "secret": {"secretName": "s"}},
               {"name": "e", "emptyDir": {}},
               {"name": "t", "projected": {"sources": [
                   {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]}}
    m = V.VolumeManager(str(tmp_path), lookup, token)
    asyncio.run(m.setup(pod))
    c = {"volumeMounts": [{"name": "s", "mountPath": "/s"},
                          {"name": "e", "mountPath": "/e", "subPath": "sub"},
                          {"name": "t", "mountPath": "/t"}]}
    mounts = {x["destination"]: x for x in m.mounts(c)}
    sdir = os.path.join(str(tmp_path), "volumes", V.SECRET, "s")
    assert mounts["/s"]["source"] == sdir and "ro" in mounts["/s"]["options"]
    assert mounts["/e"]["source"] == os.path.join(str(tmp_path), "volumes", V.EMPTY_DIR, "e",
                                                  "sub")
    assert "rw" in mounts["/e"]["options"]
    tdir = os.path.join(str(tmp_path), "volumes", V.PROJECTED, "t")
    assert open(os.path.join(tdir, "token")).read() == "tok-robot"
    with pytest.raises(ValueError, match="not within volume path"):
        m.mounts({"volumeMounts": [{"name": "e", "mountPath": "/x", "subPath": "../../.."}]})


# ---- end to end --------------------------------------------------------------------------

def _logs(kc, ns, name) -> str:
    return kc.run("logs", name, "-n", ns, check=False).stdout


def test_volumes_in_a_running_pod_and_secret_update(kc, node_server, ns):
    kc("create", "secret", "generic", "creds", "-n", ns, "--from-literal=password=one",
       "--from-literal=other=x")
    kc("create", "configmap", "conf", "-n", ns, "--from-literal=a.txt=alpha",
       "--from-literal=b.txt=beta")
    host_dir = os.path.join(node_server.data_dir, "hostpath-test")
    script = "; ".join([
        "echo SECRET=$(cat /etc/sec/pw)",
        "echo MODE=$(stat -L -c %a /etc/sec/pw)",
        "echo CM=$(cat /etc/cm/a.txt)/$(cat /etc/cm/b.txt)",
        "echo SUB=$(cat /etc/only-b)",
        "echo NAME=$(cat /etc/pod/name)",
        "echo LABELS=$(cat /etc/pod/labels)",
        "echo MEM=$(grep ' /mem ' /proc/mounts | cut -d' ' -f3)",
        "touch /etc/cm/x 2>/dev/null && echo CM-RW || echo CM-RO",
        "echo hi > /host/from-pod && echo HOST-OK",
        "echo NS=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)",
        "test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo TOKEN-OK",
        "test -s /var/run/secrets/kubernetes.io/serviceaccount/ca.crt && echo CA-OK",
        "while true; do echo NOW=$(cat /etc/sec/pw); sleep 1; done"])
    apply(kc, ns, {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "vols", "labels": {"app": "vols"}},
                   "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "c", "image": IMAGE,
                                            "command": ["sh", "-c", script],
                                            "volumeMounts": [
                                                {"name": "sec", "mountPath": "/etc/sec"},
                                                {"name": "cm", "mountPath": "/etc/cm"},
                                                {"name": "cm", "mountPath": "/etc/only-b",
                                                 "subPath": "b.txt"},
                                                {"name": "pod", "mountPath": "/etc/pod"},
                                                {"name": "mem", "mountPath": "/mem"},
                                                {"name": "host", "mountPath": "/host"}]}],
                            "volumes": [
                                {"name": "sec", "secret": {"secretName": "creds", "items": [
                                    {"key": "password", "path": "pw", "mode": 0o400}]}},
                                {"name": "cm", "configMap": {"name": "conf"}},
                                {"name": "pod", "downwardAPI": {"items": [
                                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                                    {"path": "labels",
                                     "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                                {"name": "mem", "emptyDir": {"medium": "Memory",
                                                             "sizeLimit": "8Mi"}},
                                {"name": "host", "hostPath": {"path": host_dir,
                                                              "type": "DirectoryOrCreate"}}]}})
    wait_status(kc, ns, "vols", "Running", 60)
    out = wait_for(lambda: "NOW=" in (o := _logs(kc, ns, "vols")) and o, 30, what="logs")
    lines = set(out.splitlines())
    for want in ("SECRET=one", "MODE=400", "CM=alpha/beta", "SUB=beta", "NAME=vols",
                 'LABELS=app="vols"', "MEM=tmpfs", "CM-RO", "HOST-OK", f"NS={ns}", "TOKEN-OK",
                 "CA-OK"):
        assert want in lines, (want, out)
    assert open(os.path.join(host_dir, "from-pod")).read() == "hi\n"
    # a Secret update reaches the file atomically, without a restart
    kc("patch", "secret", "creds", "-n", ns, "-p", json.dumps({"data": {"password": b64("two")}}))
    wait_for(lambda: "NOW=two" in _logs(kc, ns, "vols"), 45, interval=1, what="secret update")
    assert get_pod(kc, ns, "vols")["status"]["containerStatuses"][0]["restartCount"] == 0


def _token_file(node_server, pod: dict) -> str:
    uid = pod["metadata"]["uid"]
    vol = next(v["name"] for v in pod["spec"]["volumes"]
               if v["name"].startswith("kube-api-access-"))
    return os.path.join(node_server.data_dir, "pods", uid, "volumes", V.PROJECTED, vol, "token")


def test_service_account_token_authenticates_against_the_api(kc, node_server, ns):
    apply(kc, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sa"},
                   "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "c", "image": IMAGE,
                                            "command": ["sleep", "300"]}]}})
    wait_status(kc, ns, "sa", "Running", 60)
    pod = get_pod(kc, ns, "sa")
    token = open(_token_file(node_server, pod)).read()
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1",
                       "kind": "SelfSubjectReview"}).encode()
    req = urllib.request.Request(node_server.url + "/apis/authentication.k8s.io/v1/"
                                 "selfsubjectreviews", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        info = json.loads(resp.read())["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{ns}:default"
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["sa"]
    ca = os.path.join(os.path.dirname(_token_file(node_server, pod)), "ca.crt")
    root = json.loads(kc("get", "configmap", "kube-root-ca.crt", "-n", ns, "-o", "json"))
    assert open(ca).read() == root["data"]["ca.crt"]


def test_missing_secret_and_bad_host_path_give_failed_mount(kc, ns):
    def vol_pod(name, volume):
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                         "automountServiceAccountToken": False,
                         "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "300"],
                                         "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                         "volumes": [{"name": "v", **volume}]}}
    apply(kc, ns, vol_pod("nosecret", {"secret": {"secretName": "later"}}))
    apply(kc, ns, vol_pod("nohost", {"hostPath": {"path": "/nonexistent-kubeshim",
                                                   "type": "Directory"}}))

    def failed_mount(name):
        out = kc("get", "events", "-n", ns, "--field-selector",
                 f"involvedObject.name={name},reason=FailedMount", "-o",
                 "jsonpath={.items[*].message}")
        return out.strip()
    assert wait_for(lambda: failed_mount("nosecret"), 30) == \
        'MountVolume.SetUp failed for volume "v" : secret "later" not found'
    assert wait_for(lambda: failed_mount("nohost"), 30) == \
        'MountVolume.SetUp failed for volume "v" : hostPath type check failed: ' \
        '/nonexistent-kubeshim is not a directory'
    assert wait_status(kc, ns, "nosecret", "ContainerCreating") == "ContainerCreating"
    kc("create", "secret", "generic", "later", "-n", ns, "--from-literal=k=v")
    wait_status(kc, ns, "nosecret", "Running", 30)


def test_fs_group_owns_api_data_files(tmp_path):
    async def lookup(kind, name):
        return {"data": {"k": b64("v")}}
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u"},
           "spec": {"securityContext": {"fsGroup": 4321}, "volumes": [
               {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o400}},
               {"name": "e", "emptyDir": {}}]}}
    m = V.VolumeManager(str(tmp_path), lookup)
    asyncio.run(m.setup(pod))
    f = os.path.join(str(tmp_path), "volumes", V.SECRET, "s", "k")
    st = os.stat(f)
    assert (st.st_gid, oct(st.st_mode & 0o777)) == (4321, "0o440")
    e = os.stat(os.path.join(str(tmp_path), "volumes", V.EMPTY_DIR, "e"))
    assert (e.st_gid, oct(e.st_mode & 0o7777)) == (4321, "0o2777")
    before = os.readlink(os.path.join(str(tmp_path), "volumes", V.SECRET, "s", "..data"))
    asyncio.run(m.setup(pod))                     # unchanged: not rewritten
    assert os.readlink(os.path.join(str(tmp_path), "volumes", V.SECRET, "s", "..data")) == before
