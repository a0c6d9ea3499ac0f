"""The node agent end to end: a real `kubeshim server` with its own containerd, CNI bridge and
the busybox test image, driven by kubectl 1.32 and the Python client.

Covers issue 4's "Done when": logs (also -f), the STATUS column of completed, failing,
crash-looping, image-missing and unschedulable pods, init containers and env, pulls with
pull secrets, pod-to-pod and host-to-pod traffic, graceful and forced deletion leaving
nothing in containerd / netns / IPAM, and re-adoption after a restart and a kill -9.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import subprocess
import time
import urllib.request

import pytest

from shim.node.containerd import snapshots_pb2
from shim.node.containerd.managed import ManagedContainerd
from tests.conftest import Kubectl, ServerProcess
from tests.node.conftest import REGISTRY_PASSWORD, REGISTRY_USER

IMAGE = "busybox:test"


def wait_for(fn, timeout: float = 30.0, interval: float = 0.2, what: str = ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or fn}: last={last!r}")


@pytest.fixture(scope="module")
def node_server(node_tmp, busybox_image):
    data = os.path.join(node_tmp, f"srv{random.randint(0, 9999)}")
    os.makedirs(os.path.join(data, "images"))
    os.link(busybox_image.path, os.path.join(data, "images", "busybox.tar"))
    third = random.randint(150, 249)
    s = ServerProcess(data, node=True, extra_args=[
        "--pod-cidr", f"10.42.{third}.0/24", "--cni-bridge", f"kst{third}",
        "--node-name", "node-a"])
    s.subnet_prefix = f"10.42.{third}."
    s.bridge = f"kst{third}"
    s.start()
    yield s
    k = Kubectl(s, "1.32", os.path.join(data, "home"))
    k.run("delete", "pods", "--all", "-A", "--grace-period=0", "--force", check=False)
    try:       # let the agent clean up behind the forced deletions
        wait_for(lambda: not containerd_state(s)[0], 20, what="agent clean-up")
    except AssertionError:
        pass
    s.stop()
    _cleanup(s)


def _cleanup(s: ServerProcess) -> None:
    m = ManagedContainerd(s.data_dir)

    async def go():
        async with m.client() as c:
            for info in await c.list_containers():
                await c.delete(info.id)
    try:
        asyncio.run(go())
    except Exception:
        pass
    pid = m._read_pid()
    if pid:
        m.pid = pid
        m.stop()
    results = os.path.join(s.data_dir, "cni", "results")
    for f in os.listdir(results) if os.path.isdir(results) else []:
        subprocess.run(["ip", "netns", "del", f"ks-{f.removesuffix('.json')}"], capture_output=True)
    subprocess.run(["ip", "link", "del", s.bridge], capture_output=True)


@pytest.fixture(scope="module")
def kc(node_server):
    home = os.path.join(node_server.data_dir, "home")
    os.makedirs(home, exist_ok=True)
    k = Kubectl(node_server, "1.32", home)
    wait_for(lambda: "Ready" in k.run("get", "nodes", check=False).stdout, 30, what="node Ready")
    return k


@pytest.fixture(scope="module")
def core_api(node_server):
    from kubernetes import client, config
    cfg = client.Configuration()
    config.load_kube_config(config_file=node_server.kubeconfig, client_configuration=cfg)
    return client.CoreV1Api(client.ApiClient(cfg))


_n = [0]


@pytest.fixture
def ns(kc):
    _n[0] += 1
    name = f"ag{_n[0]}"
    kc("create", "namespace", name)
    wait_for(lambda: kc.run("get", "sa", "default", "-n", name, check=False).returncode == 0, 10)
    return name


def pod_status_column(kc, ns, name) -> str:
    out = kc("get", "pod", name, "-n", ns, "--no-headers")
    return out.split()[2]


def wait_status(kc, ns, name, want, timeout=30.0) -> str:
    want = {want} if isinstance(want, str) else set(want)
    return wait_for(lambda: (s := pod_status_column(kc, ns, name)) in want and s, timeout,
                    what=f"{name} in {want}")


def get_pod(kc, ns, name) -> dict:
    return json.loads(kc("get", "pod", name, "-n", ns, "-o", "json"))


def apply(kc, ns, manifest: dict) -> None:
    kc("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def pod(name, command, *, restart="Never", image=IMAGE, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": name, "image": image, "command": command}], **spec}}


def containerd_state(s: ServerProcess) -> tuple[list[dict], list[str], list[str]]:
    """(containers with labels, task ids, snapshot keys) of the server's containerd."""
    m = ManagedContainerd(s.data_dir)

    async def go():
        async with m.client() as c:
            containers = [{"id": x.id, **x.labels} for x in await c.list_containers()]
            tasks = list((await c.list_tasks()).keys())
            call = c._stubs().snapshots.List(snapshots_pb2.ListSnapshotsRequest(
                snapshotter="overlayfs"), metadata=c._metadata())
            snaps = []
            async for r in call:
                snaps += [i.name for i in r.info]
            return containers, tasks, snaps
    return asyncio.run(go())


def ipam_ips(s: ServerProcess) -> list[str]:
    d = os.path.join(s.data_dir, "cni", "ipam", "kubeshim")
    try:
        return sorted(n for n in os.listdir(d) if n.startswith(s.subnet_prefix))
    except OSError:
        return []


# ---- logs and statuses -------------------------------------------------------------------

def test_completed_pod_logs_with_kubectl_and_python_client(kc, core_api, ns):
    apply(kc, ns, pod("hello", ["sh", "-c", "echo hello from kubeshim; sleep 0.3; echo to stderr >&2"]))
    assert wait_status(kc, ns, "hello", "Completed") == "Completed"
    out = kc("logs", "hello", "-n", ns)
    assert out.splitlines() == ["hello from kubeshim", "to stderr"]
    assert core_api.read_namespaced_pod_log("hello", ns) == "hello from kubeshim\nto stderr\n"
    assert core_api.read_namespaced_pod_log("hello", ns, tail_lines=1) == "to stderr\n"
    stamped = kc("logs", "hello", "-n", ns, "--timestamps").splitlines()
    assert stamped[0].endswith(" hello from kubeshim")
    assert len(stamped[0].split(" ", 1)[0]) == len("2024-01-01T00:00:00.000000000Z")
    st = get_pod(kc, ns, "hello")["status"]
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert (st["phase"], term["exitCode"], term["reason"]) == ("Succeeded", 0, "Completed")
    assert st["podIP"].startswith(kc.server.subnet_prefix)
    assert st["hostIP"] and st["qosClass"] == "BestEffort"
    events = kc("get", "events", "-n", ns, "--field-selector", "involvedObject.name=hello",
                "-o", "jsonpath={.items[*].reason}").split()
    for reason in ("Scheduled", "Pulled", "Created", "Started"):
        assert reason in events


def test_logs_follow_streams_and_ends_when_container_exits(kc, ns):
    apply(kc, ns, pod("counter", ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.4; done"]))
    wait_status(kc, ns, "counter", ("Running", "Completed"))
    t0 = time.monotonic()
    p = kc.run("logs", "-f", "counter", "-n", ns, timeout=30)
    assert p.stdout.splitlines() == [f"line {i}" for i in range(1, 6)]
    assert time.monotonic() - t0 < 15


def test_statuses_match_a_real_cluster(kc, ns, registry):
    apply(kc, ns, pod("failing", ["sh", "-c", "echo bad; exit 3"]))
    apply(kc, ns, pod("crashing", ["sh", "-c", "exit 1"], restart="Always"))
    apply(kc, ns, pod("noimage", ["true"], image=f"{registry.host}/nothing/here:v1"))
    apply(kc, ns, pod("nowhere", ["true"], nodeSelector={"disk": "none"}))
    apply(kc, ns, pod("running", ["sleep", "300"], restart="Always"))
    assert wait_status(kc, ns, "failing", "Error") == "Error"
    assert wait_status(kc, ns, "crashing", "CrashLoopBackOff", 40) == "CrashLoopBackOff"
    assert wait_status(kc, ns, "noimage", ("ErrImagePull", "ImagePullBackOff")) in \
        ("ErrImagePull", "ImagePullBackOff")
    assert wait_status(kc, ns, "noimage", "ImagePullBackOff", 30) == "ImagePullBackOff"
    assert wait_status(kc, ns, "running", "Running") == "Running"
    assert pod_status_column(kc, ns, "nowhere") == "Pending"

    failing = get_pod(kc, ns, "failing")["status"]
    assert failing["phase"] == "Failed"
    assert failing["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert failing["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"
    crashing = get_pod(kc, ns, "crashing")["status"]["containerStatuses"][0]
    assert crashing["restartCount"] >= 1
    assert crashing["lastState"]["terminated"]["exitCode"] == 1
    assert crashing["state"]["waiting"]["message"].startswith("back-off 10s restarting failed")
    row = kc("get", "pod", "crashing", "-n", ns, "--no-headers").split()
    assert row[1] == "0/1" and row[3].isdigit() and int(row[3]) >= 1
    running = kc("get", "pod", "running", "-n", ns, "--no-headers").split()
    assert running[1:4] == ["1/1", "Running", "0"]
    nowhere = get_pod(kc, ns, "nowhere")["status"]
    scheduled = next(c for c in nowhere["conditions"] if c["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    noimage = get_pod(kc, ns, "noimage")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert noimage["message"] == f'Back-off pulling image "{registry.host}/nothing/here:v1"'
    reasons = kc("get", "events", "-n", ns, "-o",
                 "jsonpath={range .items[*]}{.involvedObject.name}/{.reason} {end}").split()
    for want in ("crashing/BackOff", "noimage/Pulling", "noimage/Failed", "noimage/BackOff",
                 "nowhere/FailedScheduling"):
        assert want in reasons
    # the log errors of the kubelet and of the apiserver, word for word
    p = kc.run("logs", "noimage", "-n", ns, check=False)
    assert 'container "noimage" in pod "noimage" is waiting to start: trying and failing to ' \
           'pull image' in p.stderr
    prev = kc("logs", "crashing", "-n", ns, "--previous", check=False)
    assert prev == ""
    p = kc.run("logs", "running", "-n", ns, "--previous", check=False)
    assert 'previous terminated container "running" in pod "running" not found' in p.stderr


def test_log_container_choice_messages(kc, raw_node, ns):
    manifest = pod("two", ["sleep", "300"], restart="Always")
    manifest["spec"]["containers"].append({"name": "b", "image": IMAGE, "command": ["sleep", "300"]})
    apply(kc, ns, manifest)
    code, body = raw_node("GET", f"/api/v1/namespaces/{ns}/pods/two/log")
    assert code == 400
    assert body["message"] == "a container name must be specified for pod two, choose one of: [two b]"
    code, body = raw_node("GET", f"/api/v1/namespaces/{ns}/pods/two/log?container=zzz")
    assert (code, body["message"]) == (400, "container zzz is not valid for pod two")
    code, body = raw_node("GET", f"/api/v1/namespaces/{ns}/pods/two/log?container=b&tailLines=-1")
    assert code == 422 and "tailLines: Invalid value: -1" in body["message"]


@pytest.fixture(scope="module")
def raw_node(node_server):
    from tests.conftest import Raw
    r = Raw(node_server)

    def call(method, path):
        code, parsed, _, _ = r(method, path)
        return code, parsed
    return call


def test_init_containers_env_and_termination_message(kc, ns):
    kc("create", "configmap", "cfg", "-n", ns, "--from-literal=greeting=hi")
    apply(kc, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ordered"}, "spec": {
        "restartPolicy": "Never",
        "volumes": [{"name": "w", "emptyDir": {}}],
        "initContainers": [
            {"name": "one", "image": IMAGE, "command": ["sh", "-c", "echo one >> /w/order"],
             "volumeMounts": [{"name": "w", "mountPath": "/w"}]},
            {"name": "two", "image": IMAGE, "command": ["sh", "-c", "echo two >> /w/order"],
             "volumeMounts": [{"name": "w", "mountPath": "/w"}]}],
        "containers": [{
            "name": "main", "image": IMAGE, "workingDir": "/w",
            "command": ["sh", "-c"],
            "args": ["cat order; echo $(GREETING)-$(POD) '$$(KEEP)'; hostname; pwd; "
                     "echo $CFG_greeting; echo done-msg > /dev/termination-log"],
            "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg",
                                                                           "key": "greeting"}}}],
            "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}],
            "volumeMounts": [{"name": "w", "mountPath": "/w"}]}]}})
    wait_status(kc, ns, "ordered", "Completed")
    lines = kc("logs", "ordered", "-n", ns, "-c", "main").splitlines()
    assert lines[:2] == ["one", "two"]
    assert lines[2] == "hi-ordered $(KEEP)"
    assert lines[3:6] == ["ordered", "/w", "hi"]
    st = get_pod(kc, ns, "ordered")["status"]
    assert st["containerStatuses"][0]["state"]["terminated"]["message"] == "done-msg\n"
    assert [s["state"]["terminated"]["reason"] for s in st["initContainerStatuses"]] == \
        ["Completed", "Completed"]


def test_missing_configmap_is_create_container_config_error(kc, ns):
    manifest = pod("nocfg", ["true"])
    manifest["spec"]["containers"][0]["env"] = [{"name": "X", "valueFrom": {
        "configMapKeyRef": {"name": "absent", "key": "k"}}}]
    apply(kc, ns, manifest)
    assert wait_status(kc, ns, "nocfg", "CreateContainerConfigError") == "CreateContainerConfigError"
    w = get_pod(kc, ns, "nocfg")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert w["message"] == 'configmap "absent" not found'


# ---- images --------------------------------------------------------------------------------

def test_pull_with_image_pull_secret(kc, ns, auth_registry, busybox_image):
    ref = auth_registry.push(busybox_image.path, "private/bb:secret")
    auth = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    cfg = {"auths": {auth_registry.host: {"auth": auth}}}
    kc("create", "secret", "generic", "regcred", "-n", ns, "--type=kubernetes.io/dockerconfigjson",
       f"--from-literal=.dockerconfigjson={json.dumps(cfg)}")
    apply(kc, ns, pod("nosecret", ["true"], image=ref))
    with_secret = pod("withsecret", ["sh", "-c", "echo pulled"], image=ref,
                      imagePullSecrets=[{"name": "regcred"}])
    with_secret["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    apply(kc, ns, with_secret)
    assert wait_status(kc, ns, "withsecret", "Completed", 40) == "Completed"
    assert kc("logs", "withsecret", "-n", ns) == "pulled\n"
    assert wait_status(kc, ns, "nosecret", ("ErrImagePull", "ImagePullBackOff")) in \
        ("ErrImagePull", "ImagePullBackOff")
    msgs = kc("get", "events", "-n", ns, "--field-selector", "involvedObject.name=withsecret",
              "-o", "jsonpath={range .items[*]}{.reason}:{.message}|{end}").split("|")
    assert f'Pulling:Pulling image "{ref}"' in msgs
    assert any(m.startswith(f'Pulled:Successfully pulled image "{ref}" in ') for m in msgs)
    status = get_pod(kc, ns, "withsecret")["status"]["containerStatuses"][0]
    assert status["imageID"].startswith(f"{auth_registry.host}/private/bb@sha256:")


def test_image_pull_policy_never(kc, ns):
    never = pod("never", ["true"], image="busybox:absent")
    never["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    apply(kc, ns, never)
    assert wait_status(kc, ns, "never", "ErrImageNeverPull") == "ErrImageNeverPull"
    w = get_pod(kc, ns, "never")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert w["message"] == 'Container image "busybox:absent" is not present with pull policy of Never'


# ---- network -------------------------------------------------------------------------------

def test_pods_reach_each_other_and_the_host_reaches_pods(kc, ns):
    web = pod("web", ["sh", "-c", "mkdir -p /www && echo served-by-web > /www/index.html && "
                      "exec busybox httpd -f -p 8080 -h /www"], restart="Always")
    apply(kc, ns, web)
    wait_status(kc, ns, "web", "Running")
    ip = get_pod(kc, ns, "web")["status"]["podIP"]
    body = wait_for(lambda: _fetch(f"http://{ip}:8080/"), 15, what="host -> pod")
    assert body == "served-by-web\n"
    apply(kc, ns, pod("client", ["sh", "-c", f"timeout 10 wget -qO- http://{ip}:8080/ && "
                                 "wget -qO- http://127.0.0.1:1 2>/dev/null; hostname"]))
    wait_status(kc, ns, "client", ("Completed", "Error"))
    assert kc("logs", "client", "-n", ns).splitlines() == ["served-by-web", "client"]


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None


def test_host_network_pod_uses_the_node_ip_and_hostname(kc, node_server, ns):
    import socket
    manifest = pod("hostnet", ["sh", "-c", "hostname"], hostNetwork=True)
    apply(kc, ns, manifest)
    wait_status(kc, ns, "hostnet", "Completed")
    st = get_pod(kc, ns, "hostnet")["status"]
    assert st["podIP"] == st["hostIP"]
    assert kc("logs", "hostnet", "-n", ns).strip() == socket.gethostname()
    uid = get_pod(kc, ns, "hostnet")["metadata"]["uid"]
    assert not os.path.exists(f"/run/netns/ks-{uid}")


def test_containers_of_a_pod_share_localhost(kc, ns):
    manifest = pod("duo", ["sh", "-c", "mkdir -p /www && echo side > /www/index.html && "
                           "exec busybox httpd -f -p 9090 -h /www"], restart="Always")
    manifest["spec"]["containers"].append({
        "name": "reader", "image": IMAGE,
        "command": ["sh", "-c", "until timeout 2 wget -qO- http://127.0.0.1:9090/; do sleep 0.2; "
                    "done; hostname; sleep 300"]})
    apply(kc, ns, manifest)
    wait_for(lambda: kc("logs", "duo", "-n", ns, "-c", "reader", check=False).splitlines()
             == ["side", "duo"], 20, what="reader output")


# ---- deletion and re-adoption --------------------------------------------------------------

def test_graceful_and_forced_deletion_leave_nothing(kc, node_server, ns):
    apply(kc, ns, pod("graceful", ["sh", "-c", "trap 'echo term; exit 0' TERM; "
                                   "while true; do sleep 0.1; done"], restart="Always"))
    apply(kc, ns, pod("forced", ["sleep", "300"], restart="Always"))
    wait_status(kc, ns, "graceful", "Running")
    wait_status(kc, ns, "forced", "Running")
    uids = {n: get_pod(kc, ns, n)["metadata"]["uid"] for n in ("graceful", "forced")}
    ips = {get_pod(kc, ns, n)["status"]["podIP"] for n in uids}
    assert ips <= set(ipam_ips(node_server))
    assert all(os.path.exists(f"/run/netns/ks-{u}") for u in uids.values())
    t0 = time.monotonic()
    kc("delete", "pod", "graceful", "-n", ns, timeout=30)       # waits for the agent
    assert time.monotonic() - t0 < 5                             # the trap exits at once
    kc("delete", "pod", "forced", "-n", ns, "--grace-period=0", "--force")

    def clean():
        containers, tasks, snaps = containerd_state(node_server)
        mine = [c for c in containers if c.get("io.kubernetes.pod.uid") in uids.values()]
        ids = {c["id"] for c in mine}
        return not mine and not (ids & set(tasks)) and not any(
            os.path.exists(f"/run/netns/ks-{u}") for u in uids.values()) and \
            not (ips & set(ipam_ips(node_server))) and \
            not any(os.path.exists(os.path.join(node_server.data_dir, "pods", u))
                    for u in uids.values())
    wait_for(clean, 20, what="clean-up")
    containers, tasks, snaps = containerd_state(node_server)
    live = {c["id"] for c in containers}
    # only image layers (sha256:…) and snapshots of containers that still exist remain
    assert all(s.startswith("sha256:") or s in live for s in snaps)


def test_create_delete_cycles_do_not_leak(kc, node_server, ns):
    before = set(ipam_ips(node_server))
    for i in range(5):
        apply(kc, ns, pod(f"cycle{i}", ["true"]))
    for i in range(5):
        wait_status(kc, ns, f"cycle{i}", "Completed")
    kc("delete", "pods", "-n", ns, "--all", timeout=60)
    # completed pods go from the API at once; the agent cleans up behind them

    def clean():
        containers, _, _ = containerd_state(node_server)
        return not [c for c in containers if c.get("io.kubernetes.pod.namespace") == ns]
    wait_for(clean, 20, what="containers of deleted pods removed")
    assert set(ipam_ips(node_server)) <= before


def test_restart_and_kill9_readopt_running_pods(kc, node_server, ns):
    apply(kc, ns, pod("survivor", ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; "
                                   "sleep 0.3; done"], restart="Always"))
    apply(kc, ns, pod("orphan", ["sleep", "300"], restart="Always"))
    wait_status(kc, ns, "survivor", "Running")
    wait_status(kc, ns, "orphan", "Running")
    before = get_pod(kc, ns, "survivor")["status"]["containerStatuses"][0]
    orphan_uid = get_pod(kc, ns, "orphan")["metadata"]["uid"]

    node_server.stop()                                  # SIGTERM: a clean restart
    node_server.start()
    wait_for(lambda: "Ready" in kc.run("get", "nodes", check=False).stdout, 30)
    after = get_pod(kc, ns, "survivor")["status"]["containerStatuses"][0]
    assert (after["containerID"], after["restartCount"]) == (before["containerID"], 0)
    assert pod_status_column(kc, ns, "survivor") == "Running"

    node_server.kill9()
    # while kubeshim is down the API can't be asked; force-delete the orphan afterwards
    # through a server started without the node agent, so the agent finds it gone at start
    api_only = ServerProcess(node_server.data_dir, port=node_server.port)
    api_only.start()
    kc("delete", "pod", "orphan", "-n", ns, "--grace-period=0", "--force")
    api_only.stop()
    node_server.start()
    wait_for(lambda: "Ready" in kc.run("get", "nodes", check=False).stdout, 30)
    again = get_pod(kc, ns, "survivor")["status"]["containerStatuses"][0]
    assert (again["containerID"], again["restartCount"]) == (before["containerID"], 0)
    containers, _, _ = containerd_state(node_server)
    assert len([c for c in containers if c.get("io.kubernetes.pod.name") == "survivor"]) == 1

    def orphan_gone():
        containers, _, _ = containerd_state(node_server)
        return not [c for c in containers if c.get("io.kubernetes.pod.uid") == orphan_uid] \
            and not os.path.exists(f"/run/netns/ks-{orphan_uid}")
    wait_for(orphan_gone, 20, what="orphan clean-up")
    # the log keeps flowing after re-adoption
    n1 = len(kc("logs", "survivor", "-n", ns).splitlines())
    wait_for(lambda: len(kc("logs", "survivor", "-n", ns).splitlines()) > n1 + 2, 10,
             what="new log lines")
