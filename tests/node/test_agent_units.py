"""The node agent's pure parts: $(VAR) expansion, env resolution, command lines, pull secrets,
container ids, CRI log lines (split, parse, tail, rotation, a real FIFO reader), the log
subresource's rules and messages, and the CNI configuration builders."""
from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest

from shim.api.errors import StatusError
from shim.node import agent, logs
from shim.node.network import cni


# ---- env and command -----------------------------------------------------------------------

@pytest.mark.parametrize("text,want", [
    ("$(A)-$(B)", "1-$(B)"),
    ("$$(A)", "$(A)"),
    ("x$(A", "x$(A"),
    ("$x$(A)", "$x1"),
    ("cost $", "cost $"),
    ("$(A)$(A)", "11"),
])
def test_expand(text, want):
    assert agent.expand(text, {"A": "1"}) == want


def _lookup(objects):
    async def lookup(kind, name):
        return objects.get((kind, name))
    return lookup


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
       "spec": {"nodeName": "n1"}, "status": {"podIP": "10.42.0.9"}}


def test_resolve_env_order_expansion_and_sources():
    secret = {"data": {"pw": base64.b64encode(b"s3cret").decode()}}
    cm = {"data": {"a": "1", "b-bad": "2", "c": "3"}}
    c = {"envFrom": [{"prefix": "CM_", "configMapRef": {"name": "cm"}},
                     {"configMapRef": {"name": "gone", "optional": True}}],
         "env": [{"name": "FIRST", "value": "v"},
                 {"name": "SECOND", "value": "$(FIRST)-$(CM_a)-$(LATER)"},
                 {"name": "LATER", "value": "l"},
                 {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "APP", "valueFrom": {"fieldRef": {
                     "fieldPath": "metadata.labels['app']"}}},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                 {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "s", "key": "x",
                                                                "optional": True}}}]}
    env = asyncio.run(agent.resolve_env(c, POD, _lookup({("configmap", "cm"): cm,
                                                         ("secret", "s"): secret})))
    assert env == {"CM_a": "1", "CM_c": "3", "FIRST": "v", "SECOND": "v-1-$(LATER)",
                   "LATER": "l", "POD": "p", "APP": "web", "IP": "10.42.0.9", "PW": "s3cret"}


def test_resolve_env_missing_references():
    c = {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(agent.ConfigError, match='^configmap "nope" not found$'):
        asyncio.run(agent.resolve_env(c, POD, _lookup({})))
    c = {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}
    with pytest.raises(agent.ConfigError, match="^couldn't find key k in ConfigMap ns/cm$"):
        asyncio.run(agent.resolve_env(c, POD, _lookup({("configmap", "cm"): {"data": {}}})))
    c = {"envFrom": [{"secretRef": {"name": "s"}}]}
    with pytest.raises(agent.ConfigError, match='^secret "s" not found$'):
        asyncio.run(agent.resolve_env(c, POD, _lookup({})))


def test_command_line_combines_with_image_config():
    image = {"Entrypoint": ["/entry"], "Cmd": ["default"]}
    env = {"N": "5"}
    assert agent.command_line({}, image, env) == ["/entry", "default"]
    assert agent.command_line({"args": ["x", "$(N)"]}, image, env) == ["/entry", "x", "5"]
    assert agent.command_line({"command": ["sh", "-c"]}, image, env) == ["sh", "-c"]
    assert agent.command_line({"command": ["echo"], "args": ["$(N)$$(N)"]}, image, env) == \
        ["echo", "5$(N)"]


def test_docker_credentials_from_pull_secrets():
    cfg = {"auths": {
        "https://reg.example:5000/v1/": {"auth": base64.b64encode(b"u1:p:w").decode()},
        "reg.example:5000": {"username": "u2", "password": "p2"},
        "https://index.docker.io/v1/": {"username": "hub", "password": "h"},
        "other.example": {"username": "x", "password": "y"}}}
    secret = {"type": "kubernetes.io/dockerconfigjson",
              "data": {".dockerconfigjson": base64.b64encode(json.dumps(cfg).encode()).decode()}}
    assert agent.docker_credentials(secret, "reg.example:5000") == [("u1", "p:w"), ("u2", "p2")]
    assert agent.docker_credentials(secret, "docker.io") == [("hub", "h")]
    assert agent.docker_credentials(secret, "nowhere") == []
    legacy = {"data": {".dockercfg": base64.b64encode(json.dumps(
        {"old.example": {"username": "o", "password": "p"}}).encode()).decode()}}
    assert agent.docker_credentials(legacy, "old.example") == [("o", "p")]


def test_container_ids_are_stable_per_attempt():
    a0 = agent.container_id("uid-1", "web", 0)
    assert a0 == agent.container_id("uid-1", "web", 0)
    assert a0.endswith("-0") and agent.container_id("uid-1", "web", 7).endswith("-7")
    assert a0 != agent.container_id("uid-1", "db", 0) != agent.container_id("uid-2", "web", 0)
    assert logs.restart_of(f"containerd://{agent.container_id('u', 'c', 12)}") == 12
    assert len(a0) <= 76


def test_go_duration():
    assert agent.go_duration(0.5123) == "512.3ms"
    assert agent.go_duration(1.25) == "1.25s"
    assert agent.go_duration(125.5) == "2m5.5s"


# ---- CRI log lines -------------------------------------------------------------------------

def test_split_output_full_partial_and_long_lines():
    long = b"x" * (logs.MAX_LINE + 10)
    records, rest = logs.split_output(b"a\nb\n" + long + b"\ntail")
    assert records == [(b"a", False), (b"b", False), (b"x" * logs.MAX_LINE, True),
                       (b"x" * 10, False)]
    assert rest == b"tail"
    assert logs.split_output(b"tail", final=True) == ([(b"tail", True)], b"")


def test_line_roundtrip_select_and_render():
    ts = logs.format_ts(0, ns=1_700_000_000_123_000_000)
    assert ts == "2023-11-14T22:13:20.123000000Z"
    assert logs.parse_ts(ts) == pytest.approx(1_700_000_000.123)
    assert logs.parse_ts("2023-11-14T23:13:20+01:00") == 1_700_000_000
    raw = [logs.encode_line(logs.format_ts(100 + i), "stdout", f"l{i}".encode()) for i in range(4)]
    raw.insert(2, logs.encode_line(logs.format_ts(101.5), "stderr", b"part-", partial=True))
    lines = [logs.parse_line(r) for r in raw]
    assert lines[2].partial and lines[2].stream == "stderr"
    assert logs.render(lines, False) == b"l0\nl1\npart-l2\nl3\n"
    tail = logs.select(lines, logs.LogOptions(tail_lines=2), now=200)
    assert logs.render(tail, False) == b"part-l2\nl3\n"
    since = logs.select(lines, logs.LogOptions(since_seconds=98), now=200)
    assert logs.render(since, False) == b"l2\nl3\n"
    stamped = logs.render(lines[:1], True)
    assert stamped == logs.format_ts(100).encode() + b" l0\n"
    assert logs.parse_line(b"garbage") is None


def test_log_file_rotation_keeps_max_files(tmp_path):
    path = str(tmp_path / "0.log")
    f = logs.LogFile(path, max_size=200, max_files=2, clock=lambda: 1.0)
    for i in range(30):
        f.write("stdout", [(f"line {i:02d} ".encode() * 3, False)])
    f.close()
    rotated = logs.rotated_files(path)
    assert len(rotated) == 1
    lines = logs.read_lines(rotated + [path])
    assert lines[-1].content.startswith(b"line 29")
    assert all(ln.content.startswith(b"line ") for ln in lines)


def test_log_writer_reads_fifos_into_cri_lines(tmp_path):
    path = str(tmp_path / "c" / "0.log")

    async def go():
        w = logs.LogWriter(path)
        out, err = w.fifos()
        w.open()
        fo = os.open(out, os.O_WRONLY)
        fe = os.open(err, os.O_WRONLY)
        w.start()
        os.write(fo, b"one\ntw")
        await asyncio.sleep(0.05)
        os.write(fo, b"o\n")
        os.write(fe, b"oops\nno newline")
        await asyncio.sleep(0.05)
        os.close(fo)
        os.close(fe)
        await asyncio.wait_for(w.closed.wait(), 5)
        return w
    w = asyncio.run(go())
    lines = logs.read_lines([path])
    got = sorted((ln.stream, ln.content, ln.partial) for ln in lines)
    assert got == [("stderr", b"no newline", True), ("stderr", b"oops", False),
                   ("stdout", b"one", False), ("stdout", b"two", False)]
    assert logs.is_done(path)
    assert not any(os.path.exists(p) for p in w.fifo_paths())


def test_follow_log_yields_until_done(tmp_path):
    path = str(tmp_path / "0.log")
    f = logs.LogFile(path)
    f.write("stdout", [(b"first", False)])

    async def go():
        got = []

        async def writer():
            await asyncio.sleep(0.15)
            f.write("stdout", [(b"second", False)])
            await asyncio.sleep(0.15)
            f.close()
            logs.mark_done(path)
        t = asyncio.create_task(writer())
        async for chunk in logs.follow_log(path, logs.LogOptions(follow=True), poll=0.02):
            got.append(chunk)
        await t
        return b"".join(got)
    assert asyncio.run(asyncio.wait_for(go(), 5)) == b"first\nsecond\n"


# ---- the pods/log rules --------------------------------------------------------------------

def _pod(**status):
    return {"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}],
                     "initContainers": [{"name": "i"}]},
            "status": status}


def test_choose_container_messages():
    with pytest.raises(StatusError) as e:
        logs.choose_container(_pod(), "p", "")
    assert (e.value.code, e.value.message) == (
        400, "a container name must be specified for pod p, choose one of: [a b] or one of "
             "the init containers: [i]")
    with pytest.raises(StatusError) as e:
        logs.choose_container(_pod(), "p", "z")
    assert e.value.message == "container z is not valid for pod p"
    assert logs.choose_container(_pod(), "p", "i") == "i"
    single = {"spec": {"containers": [{"name": "only"}]}}
    assert logs.choose_container(single, "p", "") == "only"


def test_container_id_for_logs_follows_the_kubelet():
    run = {"name": "a", "containerID": "containerd://x-3", "state": {"running": {}},
           "lastState": {"terminated": {"containerID": "containerd://x-2"}}}
    pod = _pod(containerStatuses=[run])
    assert logs.container_id_for_logs(pod, "a", False) == "containerd://x-3"
    assert logs.container_id_for_logs(pod, "a", True) == "containerd://x-2"
    crash = {"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"containerID": "containerd://x-4"}}}
    assert logs.container_id_for_logs(_pod(containerStatuses=[crash]), "a", False) == \
        "containerd://x-4"
    for reason, why in (("ContainerCreating", "ContainerCreating"),
                        ("ErrImagePull", "image can't be pulled"),
                        ("ImagePullBackOff", "trying and failing to pull image")):
        waiting = {"name": "a", "state": {"waiting": {"reason": reason}}, "lastState": {}}
        with pytest.raises(StatusError) as e:
            logs.container_id_for_logs(_pod(containerStatuses=[waiting]), "a", False)
        assert e.value.message == f'container "a" in pod "p" is waiting to start: {why}'
    with pytest.raises(StatusError) as e:
        logs.container_id_for_logs(pod, "b", False)
    assert e.value.message == 'container "b" in pod "p" is not available'
    fresh = {"name": "a", "state": {"running": {}}, "lastState": {}, "containerID": "c://y-0"}
    with pytest.raises(StatusError) as e:
        logs.container_id_for_logs(_pod(containerStatuses=[fresh]), "a", True)
    assert e.value.message == 'previous terminated container "a" in pod "p" not found'


def test_log_options_validation():
    o = logs.parse_options({"tailLines": "3", "timestamps": "true", "follow": "1",
                            "sinceTime": "2024-01-01T00:00:00Z"}, "p")
    assert (o.tail_lines, o.timestamps, o.follow) == (3, True, True)
    assert o.since_time == 1704067200.0
    with pytest.raises(StatusError) as e:
        logs.parse_options({"tailLines": "-1", "limitBytes": "0"}, "p")
    assert e.value.code == 422
    assert 'PodLogOptions "p" is invalid' in e.value.message
    assert "tailLines: Invalid value: -1: must be greater than or equal to 0" in e.value.message
    assert "limitBytes: Invalid value: 0: must be greater than 0" in e.value.message


# ---- CNI configuration ---------------------------------------------------------------------

def test_cni_config_builders():
    assert cni.pod_subnet("10.42.0.0/16", 0) == "10.42.0.0/24"
    assert cni.pod_subnet("10.42.0.0/16", 3) == "10.42.3.0/24"
    net = cni.network_list(bridge="br0", subnet="10.42.7.0/24", ipam_dir="/d",
                           routes=["10.42.0.0/16", "10.43.0.0/16"])
    bridge, portmap = net["plugins"]
    assert (bridge["type"], bridge["isGateway"], bridge["ipMasq"]) == ("bridge", True, False)
    assert bridge["ipam"] == {"type": "host-local", "ranges": [[{"subnet": "10.42.7.0/24"}]],
                              "routes": [{"dst": "10.42.0.0/16"}, {"dst": "10.43.0.0/16"}],
                              "dataDir": "/d"}
    pod = {"spec": {"containers": [{"ports": [{"containerPort": 80, "hostPort": 8080},
                                              {"containerPort": 53, "protocol": "UDP"}]}]}}
    pm = cni.port_mappings(pod)
    assert pm == [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    conf = cni.plugin_config(net, portmap, {"ips": []}, {"portMappings": pm, "other": 1})
    assert conf["runtimeConfig"] == {"portMappings": pm}
    assert (conf["name"], conf["cniVersion"], conf["prevResult"]) == \
        ("kubeshim", cni.CNI_VERSION, {"ips": []})
    assert "runtimeConfig" not in cni.plugin_config(net, bridge, None, {"portMappings": pm})
    assert cni.result_ips({"ips": [{"address": "fd00::5/64"}, {"address": "10.42.7.5/24"}]}) == \
        ["10.42.7.5", "fd00::5"]
