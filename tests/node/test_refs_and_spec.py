"""Pure parts of the node agent's lower half: image references, pull policy, the OCI spec
builder, registry helpers (challenge parsing, platform selection)."""
from __future__ import annotations

import pytest

from shim.node import images, oci
from shim.node.containerd.client import label_filter
from shim.node.containerd.registry import (
    RegistryError, basic_authorization, is_loopback, parse_challenge, select_manifest,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref,want", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("me/app:v1", "docker.io/me/app:v1"),
    ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:1", "localhost:5000/app:1"),
    ("127.0.0.1:5000/a/b/c:dev", "127.0.0.1:5000/a/b/c:dev"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}"),
    ("Registry.Example.com/app", "Registry.Example.com/app:latest"),
    ("a__b/c-d--e.f:tag_1.2-x", "docker.io/a__b/c-d--e.f:tag_1.2-x"),
])
def test_normalize(ref, want):
    assert images.normalize(ref) == want


def test_reference_parts():
    r = images.parse("127.0.0.1:5000/test/busybox:1")
    assert (r.domain, r.path, r.tag, r.digest) == ("127.0.0.1:5000", "test/busybox", "1", "")
    assert r.object == "1" and r.endpoint_host == "127.0.0.1:5000"
    d = images.parse(f"busybox@{DIGEST}")
    assert d.tag == "" and d.object == DIGEST
    assert d.endpoint_host == "registry-1.docker.io"
    assert images.parse("busybox").familiar() == "busybox:latest"
    assert images.parse("me/app:v1").familiar() == "me/app:v1"
    assert images.parse("quay.io/x/y:z").familiar() == "quay.io/x/y:z"


@pytest.mark.parametrize("ref,message", [
    ("", "invalid reference format"),
    ("BusyBox", "invalid reference format: repository name must be lowercase"),
    ("docker.io/Library/busybox", "invalid reference format: repository name must be lowercase"),
    ("busybox:", "invalid reference format"),
    ("busybox:-x", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("a/" * 130 + "b", "repository name must not be more than 255 characters"),
    ("ab" * 32, "invalid repository name (" + "ab" * 32
     + "), cannot specify 64-byte hexadecimal strings"),
])
def test_invalid_references(ref, message):
    with pytest.raises(images.ReferenceError) as e:
        images.parse(ref)
    assert str(e.value) == message


def test_pull_policy():
    assert images.default_pull_policy("busybox") == "Always"
    assert images.default_pull_policy("busybox:latest") == "Always"
    assert images.default_pull_policy("busybox:1.36") == "IfNotPresent"
    assert images.default_pull_policy(f"busybox@{DIGEST}") == "IfNotPresent"
    assert images.default_pull_policy(f"busybox:latest@{DIGEST}") == "Always"
    assert images.should_pull("Always", present=True) is True
    assert images.should_pull("IfNotPresent", present=True) is False
    assert images.should_pull("IfNotPresent", present=False) is True
    assert images.should_pull("Never", present=False) is False
    assert images.never_pull_message("x:1") == \
        'Container image "x:1" is not present with pull policy of Never'


def test_default_spec_matches_containerd_defaults():
    s = oci.build_spec(["sh"], cgroups_path="/kubeshim/pod/c", hostname="web-0")
    p = s["process"]
    assert p["args"] == ["sh"] and p["cwd"] == "/"
    assert p["user"] == {"uid": 0, "gid": 0}
    assert p["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert len(p["capabilities"]["bounding"]) == 14
    assert "CAP_NET_BIND_SERVICE" in p["capabilities"]["effective"]
    assert "CAP_SYS_ADMIN" not in p["capabilities"]["permitted"]
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert p["noNewPrivileges"] is True
    assert s["root"] == {"path": "rootfs", "readonly": False}
    assert [m["destination"] for m in s["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/run"]
    assert s["mounts"][3]["options"] == ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
    assert [n["type"] for n in s["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount", "network"]
    assert s["linux"]["cgroupsPath"] == "/kubeshim/pod/c"
    assert s["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "/proc/kcore" in s["linux"]["maskedPaths"] and "/proc/sys" in s["linux"]["readonlyPaths"]
    assert s["hostname"] == "web-0"


def test_spec_knobs():
    s = oci.build_spec(
        ["app"], env={"A": "1", "PATH": "/bin"}, cwd="/srv", uid=1000, gid=2000,
        additional_gids=[3000], namespace_paths={"network": "/var/run/netns/p1"},
        cpu_request_milli=250, cpu_limit_milli=500, memory_limit=64 << 20,
        cap_add=["NET_ADMIN"], cap_drop=["kill", "CAP_CHOWN"], readonly_rootfs=True,
        mounts=[oci.bind_mount("/host/x", "/data", readonly=True),
                {"destination": "/dev/shm", "type": "bind", "source": "/pod/shm",
                 "options": ["rbind"]}],
        rlimits=[{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}])
    p = s["process"]
    assert p["env"] == ["A=1", "PATH=/bin"]
    assert p["cwd"] == "/srv"
    assert p["user"] == {"uid": 1000, "gid": 2000, "additionalGids": [3000]}
    caps = p["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in caps and "CAP_KILL" not in caps and "CAP_CHOWN" not in caps
    assert len(caps) == 13
    assert p["rlimits"][0]["hard"] == 4096
    net = [n for n in s["linux"]["namespaces"] if n["type"] == "network"][0]
    assert net == {"type": "network", "path": "/var/run/netns/p1"}
    res = s["linux"]["resources"]
    assert res["cpu"] == {"shares": 256, "quota": 50000, "period": 100000}
    assert res["memory"] == {"limit": 64 << 20}
    assert s["root"]["readonly"] is True
    dests = [m["destination"] for m in s["mounts"]]
    assert dests.count("/dev/shm") == 1 and dests[-2:] == ["/data", "/dev/shm"]
    assert s["mounts"][-2]["options"] == ["rbind", "rprivate", "ro"]


def test_host_namespaces_and_drop_all():
    s = oci.build_spec(["x"], host_namespaces=["network"], cap_drop=["ALL"], cap_add=["NET_RAW"])
    assert [n["type"] for n in s["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount"]
    assert s["process"]["capabilities"]["effective"] == ["CAP_NET_RAW"]
    with pytest.raises(ValueError):
        oci.build_spec([])


def test_cpu_conversions_like_the_kubelet():
    assert oci.cpu_shares(0) == 2 and oci.cpu_shares(1) == 2 and oci.cpu_shares(1000) == 1024
    assert oci.cpu_quota(0) == 0 and oci.cpu_quota(5) == 1000 and oci.cpu_quota(1500) == 150000


def test_resolve_command_and_env():
    cfg = {"Entrypoint": ["/entry"], "Cmd": ["--serve"], "Env": ["PATH=/img", "X=img"]}
    assert oci.resolve_command(cfg, None, None) == ["/entry", "--serve"]
    assert oci.resolve_command(cfg, ["/bin/sh"], None) == ["/bin/sh"]
    assert oci.resolve_command(cfg, None, ["--debug"]) == ["/entry", "--debug"]
    assert oci.resolve_command(cfg, ["/bin/sh"], ["-c", "x"]) == ["/bin/sh", "-c", "x"]
    assert oci.image_env(cfg, {"X": "pod", "Y": "1"}) == ["PATH=/img", "X=pod", "Y=1"]
    assert oci.parse_user("") == (0, 0)
    assert oci.parse_user("1000") == (1000, 0)
    assert oci.parse_user("1000:50") == (1000, 50)
    assert oci.parse_user("nobody") == (None, None)


def test_exec_process_inherits_container_process():
    spec = oci.build_spec(["sleep", "1"], env={"A": "1"}, uid=7, cwd="/w")
    proc = oci.exec_process(spec, ["echo", "x"], env={"B": "2"}, terminal=True)
    assert proc["args"] == ["echo", "x"] and proc["terminal"] is True
    assert proc["user"]["uid"] == 7 and proc["cwd"] == "/w"
    assert proc["env"][-2:] == ["A=1", "B=2"]
    assert spec["process"]["args"] == ["sleep", "1"]          # not mutated


def test_cgroup_dirs_and_removal(tmp_path):
    for h in ("memory", "cpu", "unified"):
        (tmp_path / h / "kubeshim" / "pod1" / "c1").mkdir(parents=True)
    (tmp_path / "cpu" / "kubeshim" / "pod2").mkdir()
    assert oci.cgroup_dirs("/kubeshim/pod1", str(tmp_path)) == [
        str(tmp_path / h / "kubeshim" / "pod1") for h in ("cpu", "memory", "unified")]
    oci.remove_cgroup("/kubeshim/pod1/c1", keep_levels=0, root=str(tmp_path))
    assert not (tmp_path / "memory" / "kubeshim").exists()
    assert (tmp_path / "cpu" / "kubeshim" / "pod2").exists()     # busy parent kept
    assert not (tmp_path / "cpu" / "kubeshim" / "pod1").exists()


def test_registry_helpers():
    assert parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                           'scope="repository:a/b:pull"') == (
        "bearer", {"realm": "https://auth.example/token", "service": "registry.example",
                   "scope": "repository:a/b:pull"})
    assert parse_challenge('Basic realm="kubeshim-test"') == ("basic", {"realm": "kubeshim-test"})
    assert basic_authorization("u", "p") == "Basic dTpw"
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost:1") and is_loopback("[::1]:5")
    assert not is_loopback("registry.example:443")
    index = {"manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:arm",
         "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "sha256:amd",
         "size": 2, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    assert select_manifest(index).digest == "sha256:amd"
    with pytest.raises(RegistryError) as e:
        select_manifest(index, "windows", "amd64")
    assert e.value.not_found


def test_label_filter_quotes():
    assert label_filter({"b": "2", "io.kubeshim/pod": 'x"y'}) == \
        'labels."b"=="2",labels."io.kubeshim/pod"=="x\\"y"'
