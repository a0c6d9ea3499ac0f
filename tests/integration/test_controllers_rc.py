"""ReplicationController controller and garbage collector through kubectl and the Python
client against a real server (--no-node: pods stay Pending; readiness is set through
pods/status by the test)."""
from __future__ import annotations

import json
import time

import pytest

RC = """
apiVersion: v1
kind: ReplicationController
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: nginx
"""


def wait_for(fn, timeout=15.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def rc_pods(core, ns, name):
    return [p for p in core.list_namespaced_pod(ns, label_selector=f"app={name}").items
            if p.metadata.deletion_timestamp is None]


def make_rc(kubectl, ns, name, replicas):
    kubectl("apply", "-n", ns, "-f", "-", input=RC.format(name=name, replicas=replicas))


def test_scale_up_and_down_converges(kubectl, core, ns):
    make_rc(kubectl, ns, "web", 2)
    wait_for(lambda: len(rc_pods(core, ns, "web")) == 2, what="2 pods")
    kubectl("scale", "rc", "web", "--replicas=7", "-n", ns)
    wait_for(lambda: len(rc_pods(core, ns, "web")) == 7, what="7 pods")
    kubectl("scale", "rc", "web", "--replicas=1", "-n", ns)
    wait_for(lambda: len(rc_pods(core, ns, "web")) == 1, what="1 pod")
    rc = wait_for(lambda: (lambda r: r if r.status.replicas == 1 and
                           r.status.observed_generation == r.metadata.generation else None)(
        core.read_namespaced_replication_controller("web", ns)), what="status")
    assert rc.status.fully_labeled_replicas == 1
    pod = rc_pods(core, ns, "web")[0]
    ref = pod.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == \
        ("ReplicationController", "web", rc.metadata.uid, True, True)
    assert pod.metadata.generate_name == "web-" and pod.metadata.name.startswith("web-")
    out = kubectl("get", "rc", "web", "-n", ns)
    assert out.split("\n")[1].split()[:4] == ["web", "1", "1", "0"]
    reasons = kubectl("get", "events", "-n", ns, "--field-selector",
                      "involvedObject.kind=ReplicationController", "-o",
                      "jsonpath={range .items[*]}{.reason}:{.message}{'\\n'}{end}")
    assert "SuccessfulCreate:Created pod: web-" in reasons
    assert "SuccessfulDelete:Deleted pod: web-" in reasons


def test_deleted_pod_is_replaced_quickly(kubectl, core, ns):
    make_rc(kubectl, ns, "rep", 3)
    before = {p.metadata.name for p in wait_for(lambda: (lambda ps: ps if len(ps) == 3 else None)(
        rc_pods(core, ns, "rep")), what="3 pods")}
    victim = sorted(before)[0]
    core.delete_namespaced_pod(victim, ns)
    t0 = time.monotonic()
    now = wait_for(lambda: (lambda ps: ps if len(ps) == 3 and victim not in
                            {p.metadata.name for p in ps} else None)(rc_pods(core, ns, "rep")),
                   timeout=2.0, interval=0.02, what="replacement within 2 s")
    assert time.monotonic() - t0 < 2.0
    assert len({p.metadata.name for p in now} - before) == 1


def test_adopts_orphans_and_releases_mismatches(kubectl, core, ns):
    orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "ad"}},
              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    core.create_namespaced_pod(ns, orphan)
    make_rc(kubectl, ns, "ad", 2)
    rc = core.read_namespaced_replication_controller("ad", ns)
    pod = wait_for(lambda: (lambda p: p if p.metadata.owner_references else None)(
        core.read_namespaced_pod("stray", ns)), what="adoption")
    assert pod.metadata.owner_references[0].uid == rc.metadata.uid
    wait_for(lambda: len(rc_pods(core, ns, "ad")) == 2, what="2 pods incl. the adopted one")
    # relabel one pod: it is released (ownerReferences removed) and replaced
    core.patch_namespaced_pod("stray", ns, {"metadata": {"labels": {"app": "other"}}})
    pod = wait_for(lambda: (lambda p: p if not p.metadata.owner_references else None)(
        core.read_namespaced_pod("stray", ns)), what="release")
    assert pod.metadata.labels == {"app": "other"}
    wait_for(lambda: len(rc_pods(core, ns, "ad")) == 2, what="replacement of the released pod")


def _set_ready(raw, ns, name, ready: bool):
    for _ in range(20):   # the scheduler writes PodScheduled too: re-read on 409 like a kubelet
        code, pod, _, _ = raw("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        assert code == 200
        conds = [c for c in pod["status"].get("conditions") or [] if c["type"] != "Ready"]
        conds.append({"type": "Ready", "status": "True" if ready else "False",
                      "lastTransitionTime": "2024-01-01T00:00:00Z"})
        pod["status"]["conditions"] = conds
        code, body, _, _ = raw("PUT", f"/api/v1/namespaces/{ns}/pods/{name}/status",
                               json.dumps(pod))
        if code != 409:
            break
    assert code == 200, body


def test_get_rc_ready_follows_readiness(kubectl, core, raw, ns):
    make_rc(kubectl, ns, "rdy", 3)
    pods = wait_for(lambda: (lambda ps: ps if len(ps) == 3 else None)(rc_pods(core, ns, "rdy")),
                    what="3 pods")
    names = sorted(p.metadata.name for p in pods)

    def ready_col():
        line = kubectl("get", "rc", "rdy", "-n", ns, "--no-headers")
        return line.split()[3]
    _set_ready(raw, ns, names[0], True)
    _set_ready(raw, ns, names[1], True)
    wait_for(lambda: ready_col() == "2", what="READY 2")
    rc = core.read_namespaced_replication_controller("rdy", ns)
    assert rc.status.ready_replicas == 2 and rc.status.available_replicas == 2
    _set_ready(raw, ns, names[0], False)
    wait_for(lambda: ready_col() == "1", what="READY 1")
    # a ready pod is kept when scaling down: the not-ready ones go first
    kubectl("scale", "rc", "rdy", "--replicas=1", "-n", ns)
    left = wait_for(lambda: (lambda ps: ps if len(ps) == 1 else None)(rc_pods(core, ns, "rdy")),
                    what="1 pod")
    assert left[0].metadata.name == names[1]


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_delete_rc_cascade(kubectl, core, ns, cascade):
    name = f"cas-{cascade[:2]}"
    make_rc(kubectl, ns, name, 3)
    pods = wait_for(lambda: (lambda ps: ps if len(ps) == 3 else None)(rc_pods(core, ns, name)),
                    what="3 pods")
    kubectl("delete", "rc", name, "-n", ns, f"--cascade={cascade}")
    assert kubectl.run("get", "rc", name, "-n", ns, check=False).returncode != 0
    if cascade == "orphan":
        time.sleep(0.5)
        left = core.list_namespaced_pod(ns, label_selector=f"app={name}").items
        assert sorted(p.metadata.name for p in left) == sorted(p.metadata.name for p in pods)
        assert all(not p.metadata.owner_references for p in left)
        raw_pod = kubectl("get", "pod", left[0].metadata.name, "-n", ns, "-o", "json")
        assert "ownerReferences" not in json.loads(raw_pod)["metadata"]
    else:
        wait_for(lambda: not core.list_namespaced_pod(ns, label_selector=f"app={name}").items,
                 what="dependents collected")


def test_foreground_keeps_owner_until_blocking_dependents_go(core, raw, ns):
    """An owner with a blocking dependent that has a finalizer stays (with the
    foregroundDeletion finalizer) until that dependent is gone."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}
    code, owner, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/configmaps", json.dumps(cm))
    assert code == 201
    dep = {"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "dep", "finalizers": ["example.com/hold"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                             "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}]}}
    code, _, _, _ = raw("POST", f"/api/v1/namespaces/{ns}/secrets", json.dumps(dep))
    assert code == 201
    code, body, _, _ = raw("DELETE", f"/api/v1/namespaces/{ns}/configmaps/owner",
                           json.dumps({"propagationPolicy": "Foreground"}))
    assert code == 200
    sec = wait_for(lambda: (lambda s: s if s["metadata"].get("deletionTimestamp") else None)(
        raw("GET", f"/api/v1/namespaces/{ns}/secrets/dep")[1]), what="dependent deleting")
    code, cur, _, _ = raw("GET", f"/api/v1/namespaces/{ns}/configmaps/owner")
    assert code == 200 and cur["metadata"]["finalizers"] == ["foregroundDeletion"]
    raw("PATCH", f"/api/v1/namespaces/{ns}/secrets/dep", json.dumps({"metadata": {"finalizers": None}}),
        headers={"Content-Type": "application/merge-patch+json"})
    wait_for(lambda: raw("GET", f"/api/v1/namespaces/{ns}/configmaps/owner")[0] == 404,
             what="owner removed")
    assert sec["metadata"]["name"] == "dep"


def test_dependents_of_missing_owner_are_collected(core, raw, ns):
    dep = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "dangling", "ownerReferences": [{"apiVersion": "v1", "kind": "Secret",
                                                 "name": "never-existed",
                                                 "uid": "00000000-0000-0000-0000-000000000001"}]}}
    keep = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "foreign", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                "name": "x", "uid": "00000000-0000-0000-0000-000000000002"}]}}
    for o in (dep, keep):
        assert raw("POST", f"/api/v1/namespaces/{ns}/configmaps", json.dumps(o))[0] == 201
    wait_for(lambda: raw("GET", f"/api/v1/namespaces/{ns}/configmaps/dangling")[0] == 404,
             what="dangling dependent collected")
    time.sleep(0.3)
    assert raw("GET", f"/api/v1/namespaces/{ns}/configmaps/foreign")[0] == 200
