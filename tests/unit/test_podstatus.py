"""shim/node/podstatus.py against the kubelet's rules (generateAPIPodStatus, getPhase,
status/generate.go, the status manager, flowcontrol.Backoff)."""
from __future__ import annotations

import pytest

from shim.node import podstatus as ps
from shim.node.podstatus import PodRuntime, RuntimeContainer as RC

T0 = 1_700_000_000.0          # 2023-11-14T22:13:20Z


def ts(t: float) -> str:
    return ps.rfc3339(t)


def pod(containers=("app",), init=(), restart="Always", status=None, **spec_extra) -> dict:
    spec = {"containers": [{"name": n, "image": f"img-{n}"} for n in containers],
            "restartPolicy": restart, **spec_extra}
    if init:
        spec["initContainers"] = [{"name": n, "image": f"img-{n}"} if isinstance(n, str) else n
                                  for n in init]
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"}, "spec": spec,
            "status": status or {"phase": "Pending", "qosClass": "BestEffort",
                                 "conditions": [{"type": "PodScheduled", "status": "True",
                                                 "lastProbeTime": None,
                                                 "lastTransitionTime": ts(T0 - 100)}]}}


def running(name, started=T0, restarts=0, cid="c1"):
    return RC(name, "running", id=cid, image=f"docker.io/library/img-{name}:latest",
              image_id=f"docker.io/library/img-{name}@sha256:aa", created_at=started,
              started_at=started, restart_count=restarts)


def exited(name, code, started=T0, finished=T0 + 5, restarts=0, cid="c1", **kw):
    return RC(name, "exited", id=cid, image=f"img-{name}", image_id="sha256:bb",
              created_at=started, started_at=started, finished_at=finished, exit_code=code,
              restart_count=restarts, **kw)


def gen(p, rt, now=T0 + 10, **kw):
    return ps.generate_pod_status(p, rt, host_ips=["10.0.0.5"], now=now, **kw)


def cond(status, ctype):
    return next(c for c in status["conditions"] if c["type"] == ctype)


def test_fresh_pod_is_container_creating():
    s = gen(pod(), PodRuntime())
    assert s["phase"] == "Pending"
    cs = s["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert cs["lastState"] == {} and cs["ready"] is False and cs["started"] is False
    assert cs["restartCount"] == 0 and cs["image"] == "img-app" and cs["imageID"] == ""
    assert "containerID" not in cs
    assert [c["type"] for c in s["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert cond(s, "PodReadyToStartContainers")["status"] == "False"
    assert cond(s, "Initialized")["status"] == "True"
    ready = cond(s, "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "ContainersNotReady", "containers with unready status: [app]")
    # the scheduler's PodScheduled transition time is kept
    assert cond(s, "PodScheduled")["lastTransitionTime"] == ts(T0 - 100)
    assert cond(s, "Ready")["lastTransitionTime"] == ts(T0 + 10)
    assert s["hostIP"] == "10.0.0.5" and s["hostIPs"] == [{"ip": "10.0.0.5"}]
    assert s["startTime"] == ts(T0 + 10) and s["qosClass"] == "BestEffort"
    assert "podIP" not in s


def test_running_pod_ready_and_transition_times_kept():
    p = pod()
    rt = PodRuntime([running("app")], sandbox_ready=True, pod_ips=["10.42.0.7"])
    s1 = gen(p, rt, now=T0 + 10)
    assert s1["phase"] == "Running"
    cs = s1["containerStatuses"][0]
    assert cs["state"] == {"running": {"startedAt": ts(T0)}}
    assert cs["ready"] is True and cs["started"] is True
    assert cs["containerID"] == "containerd://c1"
    assert cs["image"] == "docker.io/library/img-app:latest"
    assert cs["imageID"] == "docker.io/library/img-app@sha256:aa"
    assert s1["podIP"] == "10.42.0.7" and s1["podIPs"] == [{"ip": "10.42.0.7"}]
    for t in ("Ready", "ContainersReady", "PodReadyToStartContainers", "Initialized"):
        c = cond(s1, t)
        assert c["status"] == "True" and "reason" not in c and c["lastProbeTime"] is None
    p["status"] = s1
    s2 = gen(p, rt, now=T0 + 50)
    assert cond(s2, "Ready")["lastTransitionTime"] == ts(T0 + 10)
    assert s2["startTime"] == ts(T0 + 10)


def test_readiness_probe_failing_keeps_pod_not_ready():
    rt = PodRuntime([running("app")], sandbox_ready=True, readiness={"app": False})
    s = gen(pod(), rt)
    assert s["phase"] == "Running"
    assert s["containerStatuses"][0]["ready"] is False
    assert s["containerStatuses"][0]["started"] is True
    assert cond(s, "ContainersReady")["message"] == "containers with unready status: [app]"


def test_startup_probe_not_passed_means_not_started():
    rt = PodRuntime([running("app")], sandbox_ready=True, startup={"app": False})
    cs = gen(pod(), rt)["containerStatuses"][0]
    assert cs["started"] is False and cs["ready"] is False


@pytest.mark.parametrize("restart,code,phase,reason", [
    ("Never", 0, "Succeeded", "Completed"),
    ("Never", 1, "Failed", "Error"),
    ("OnFailure", 0, "Succeeded", "Completed"),
    ("Always", 0, "Running", "Completed"),   # about to be restarted
])
def test_exited_container_phase(restart, code, phase, reason):
    s = gen(pod(restart=restart), PodRuntime([exited("app", code)], sandbox_ready=True))
    assert s["phase"] == phase
    term = s["containerStatuses"][0]["state"]["terminated"]
    assert term == {"exitCode": code, "reason": reason, "startedAt": ts(T0),
                    "finishedAt": ts(T0 + 5), "containerID": "containerd://c1"}
    if phase == "Succeeded":
        assert cond(s, "Ready")["reason"] == "PodCompleted"
        assert cond(s, "Initialized")["reason"] == "PodCompleted"
    if phase == "Failed":
        assert cond(s, "ContainersReady")["reason"] == "PodFailed"


def test_oom_killed_and_termination_message():
    rt = PodRuntime([exited("app", 137, oom_killed=True, message="out of memory\n")])
    term = gen(pod(restart="Never"), rt)["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["message"] == "out of memory\n"
    assert term["exitCode"] == 137


def test_crash_loop_back_off_shows_waiting_with_last_state():
    p = pod()
    msg = ps.crash_loop_message(20, "app", p)
    assert msg == "back-off 20s restarting failed container=app pod=p_ns(u-1)"
    rt = PodRuntime([exited("app", 1, restarts=2, cid="c3")], sandbox_ready=True,
                    reasons={"app": ("CrashLoopBackOff", msg)})
    s = gen(p, rt)
    cs = s["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": msg}}
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["restartCount"] == 2 and cs["ready"] is False
    assert s["phase"] == "Running"          # waiting with a last termination counts as stopped


def test_restarted_container_last_state_from_previous_instance():
    rt = PodRuntime([exited("app", 2, started=T0, finished=T0 + 3, cid="old"),
                     running("app", started=T0 + 20, restarts=1, cid="new")], sandbox_ready=True)
    cs = gen(pod(), rt, now=T0 + 30)["containerStatuses"][0]
    assert cs["state"]["running"]["startedAt"] == ts(T0 + 20)
    assert cs["lastState"]["terminated"]["containerID"] == "containerd://old"
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["restartCount"] == 1 and cs["containerID"] == "containerd://new"


def test_image_pull_backoff_keeps_pod_pending():
    rt = PodRuntime(sandbox_ready=True, reasons={"app": (
        "ImagePullBackOff", ps.image_pull_backoff_message("nope:1"))})
    s = gen(pod(), rt)
    assert s["phase"] == "Pending"
    assert s["containerStatuses"][0]["state"] == {"waiting": {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "nope:1"'}}


def test_never_restarted_container_does_not_show_reason():
    # restartPolicy Never and the container finished: the reason cache is not consulted
    rt = PodRuntime([exited("app", 1)], reasons={"app": ("CrashLoopBackOff", "x")})
    s = gen(pod(restart="Never"), rt)
    assert "terminated" in s["containerStatuses"][0]["state"]
    assert s["phase"] == "Failed"


def test_init_containers_pod_initializing():
    p = pod(init=("init1", "init2"))
    rt = PodRuntime([running("init1")], sandbox_ready=True)
    s = gen(p, rt)
    assert s["phase"] == "Pending"
    init = s["initContainerStatuses"]
    assert [c["name"] for c in init] == ["init1", "init2"]
    assert init[1]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert s["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    ini = cond(s, "Initialized")
    assert (ini["status"], ini["reason"], ini["message"]) == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [init1 init2]")


def test_init_done_then_app_running():
    p = pod(init=("init1",))
    rt = PodRuntime([exited("init1", 0, cid="i1"), running("app", started=T0 + 6, cid="a1")],
                    sandbox_ready=True)
    s = gen(p, rt)
    assert s["phase"] == "Running"
    init = s["initContainerStatuses"][0]
    assert init["ready"] is True and init["state"]["terminated"]["reason"] == "Completed"
    assert cond(s, "Initialized")["status"] == "True"
    assert cond(s, "Ready")["status"] == "True"


def test_failed_init_container_with_restart_never_fails_pod():
    s = gen(pod(init=("init1",), restart="Never"), PodRuntime([exited("init1", 3)]))
    assert s["phase"] == "Failed"


def test_failed_init_container_with_restart_always_is_pending_in_backoff():
    p = pod(init=("init1",))
    rt = PodRuntime([exited("init1", 3)], reasons={"init1": ("CrashLoopBackOff", "m")})
    s = gen(p, rt)
    assert s["phase"] == "Pending"
    assert s["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"


def test_sidecar_running_counts_in_containers_ready():
    side = {"name": "side", "image": "s", "restartPolicy": "Always"}
    p = pod(init=(side,))
    rt = PodRuntime([running("side", cid="s1"), running("app", cid="a1")], sandbox_ready=True)
    s = gen(p, rt)
    assert s["phase"] == "Running"
    assert s["initContainerStatuses"][0]["ready"] is True
    assert cond(s, "ContainersReady")["status"] == "True"
    rt.readiness["side"] = False
    s = gen(p, rt)
    assert cond(s, "ContainersReady")["message"] == "containers with unready status: [side]"


def test_container_statuses_sorted_by_name():
    s = gen(pod(containers=("zeta", "alpha")), PodRuntime())
    assert [c["name"] for c in s["containerStatuses"]] == ["alpha", "zeta"]


def test_terminal_phase_is_sticky_and_reason_kept():
    p = pod(restart="Never")
    p["status"]["phase"] = "Failed"
    p["status"]["reason"] = "Evicted"
    s = gen(p, PodRuntime([running("app")]))
    assert s["phase"] == "Failed" and s["reason"] == "Evicted"


def test_pod_is_terminal_decides_failed_even_with_restart_always():
    s = gen(pod(), PodRuntime([exited("app", 143)]), pod_is_terminal=True)
    assert s["phase"] == "Failed"


def test_readiness_gates():
    p = pod(readinessGates=[{"conditionType": "example.com/gate"}])
    rt = PodRuntime([running("app")], sandbox_ready=True)
    r = cond(gen(p, rt), "Ready")
    assert (r["status"], r["reason"]) == ("False", "ReadinessGatesNotReady")
    assert r["message"] == 'corresponding condition of pod readiness gate "example.com/gate" ' \
                           'does not exist.'
    p["status"]["conditions"].append({"type": "example.com/gate", "status": "True"})
    s = gen(p, rt)
    assert cond(s, "Ready")["status"] == "True"
    assert cond(s, "example.com/gate")["status"] == "True"      # foreign conditions kept


def test_vanished_running_container_becomes_status_unknown():
    p = pod()
    p["status"] = gen(p, PodRuntime([running("app")], sandbox_ready=True))
    s = gen(p, PodRuntime(sandbox_ready=True))
    cs = s["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["restartCount"] == 1
    assert s["phase"] == "Running"


def test_host_network_pod_gets_host_ip():
    s = gen(pod(hostNetwork=True), PodRuntime([running("app")], sandbox_ready=True))
    assert s["podIP"] == "10.0.0.5"


def test_volume_mounts_reported():
    p = pod()
    p["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "tok", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
         "readOnly": True}]
    cs = gen(p, PodRuntime([running("app")]))["containerStatuses"][0]
    assert cs["volumeMounts"] == [{"name": "tok", "readOnly": True, "recursiveReadOnly": "Disabled",
                                   "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]


def test_backoff_doubles_caps_and_resets():
    b = ps.Backoff()
    k = "u/app"
    assert [b.next(k, T0 + i) for i in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert b.in_backoff_since(k, T0 + 6, now=T0 + 100) is True
    assert b.in_backoff_since(k, T0 + 6, now=T0 + 307) is False
    # a failure more than 10 minutes after the last one starts again at 10 s
    assert b.next(k, T0 + 6 + 601) == 10


def test_crash_backoff_flow():
    b = ps.Backoff()
    p = pod()
    assert ps.crash_backoff(b, p, "app", finished_at=T0, now=T0) == (False, "")
    backing, msg = ps.crash_backoff(b, p, "app", finished_at=T0, now=T0 + 5)
    assert backing and msg == "back-off 10s restarting failed container=app pod=p_ns(u-1)"
    assert ps.crash_backoff(b, p, "app", finished_at=T0, now=T0 + 11) == (False, "")
    assert ps.crash_backoff(b, p, "app", finished_at=T0 + 12, now=T0 + 13)[1].startswith(
        "back-off 20s")


def test_go_duration():
    assert [ps.go_duration(s) for s in (10, 80, 160, 300, 3600)] == \
        ["10s", "1m20s", "2m40s", "5m0s", "1h0m0s"]
