"""A pod's API status computed the way the kubelet computes it — pure functions, no I/O.

Input: the pod as the API has it (its current `.status` is the "old status") and a
`PodRuntime` describing what the container runtime reports (one `RuntimeContainer` per
container instance, newest and older ones) plus what the pod worker knows (the reason
cache of the last failed start, probe results, whether the sandbox is ready).
Output: the new `.status` dict, ready for PUT/PATCH pods/status.

Mirrors pkg/kubelet/kubelet_pods.go (generateAPIPodStatus, convertToAPIContainerStatuses,
getPhase), pkg/kubelet/status/generate.go (the conditions), the status manager's
transition-time and startTime bookkeeping, the prober manager's ready/started flags, and
the crash-loop / image-pull back-off (flowcontrol.Backoff: 10 s doubling to 5 min,
forgotten after twice the maximum without a failure).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

# waiting reasons (pkg/kubelet/kuberuntime, pkg/kubelet/images, pkg/kubelet/container)
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE_NAME = "InvalidImageName"
CREATE_CONTAINER_ERROR = "CreateContainerError"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
RUN_CONTAINER_ERROR = "RunContainerError"
# terminated reasons
COMPLETED, ERROR, OOM_KILLED = "Completed", "Error", "OOMKilled"
STATUS_UNKNOWN = "ContainerStatusUnknown"
# condition reasons (status/generate.go)
UNKNOWN_CONTAINER_STATUSES = "UnknownContainerStatuses"
POD_COMPLETED = "PodCompleted"
POD_FAILED = "PodFailed"
CONTAINERS_NOT_READY = "ContainersNotReady"
CONTAINERS_NOT_INITIALIZED = "ContainersNotInitialized"
READINESS_GATES_NOT_READY = "ReadinessGatesNotReady"

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled")
TERMINAL = ("Succeeded", "Failed")

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0


def rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RuntimeContainer:
    """One container instance as the runtime reports it."""
    name: str
    state: str                      # "created" | "running" | "exited" | "unknown"
    id: str = ""                    # runtime id; containerID is "containerd://<id>"
    image: str = ""                 # image reference the runtime ran ("docker.io/library/x:1")
    image_id: str = ""              # digested reference ("docker.io/library/x@sha256:…")
    created_at: float = 0.0         # orders the instances of one container
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int = 0
    reason: str = ""                # terminated reason; derived (Completed/Error/OOMKilled) if ""
    message: str = ""               # termination message
    oom_killed: bool = False
    restart_count: int = 0          # the kubelet keeps it in a container label
    runtime: str = "containerd"

    @property
    def container_id(self) -> str:
        return f"{self.runtime}://{self.id}" if self.id else ""


@dataclass
class PodRuntime:
    """Everything the kubelet knows about a pod besides the API object."""
    containers: list[RuntimeContainer] = field(default_factory=list)   # all instances
    sandbox_ready: bool = False         # sandbox (network namespace) created and ready
    pod_ips: list[str] = field(default_factory=list)
    # reason cache: container -> (reason, message) of its last failed (re)start, e.g.
    # ("CrashLoopBackOff", "back-off 10s restarting failed container=…"),
    # ("ErrImagePull", "…"), ("ImagePullBackOff", 'Back-off pulling image "x"')
    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)
    readiness: dict[str, bool] = field(default_factory=dict)  # containers with a readiness probe
    startup: dict[str, bool] = field(default_factory=dict)    # containers with a startup probe

    def latest(self, name: str) -> RuntimeContainer | None:
        found = [c for c in self.containers if c.name == name]
        return max(found, key=lambda c: c.created_at) if found else None


# ---- helpers on the spec ----------------------------------------------------------------

def is_sidecar(container: dict) -> bool:
    """A restartable init container (restartPolicy: Always)."""
    return container.get("restartPolicy") == "Always"


def _status_of(statuses: list[dict], name: str) -> dict | None:
    for s in statuses:
        if s.get("name") == name:
            return s
    return None


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def go_duration(seconds: float) -> str:
    """time.Duration.String() for whole seconds: 10s, 1m20s, 5m0s, 1h0m0s."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    return f"{s // 3600}h{s % 3600 // 60}m{s % 60}s"


def format_pod(pod: dict) -> str:
    """format.Pod: `name_namespace(uid)`."""
    m = pod.get("metadata") or {}
    return f"{m.get('name', '')}_{m.get('namespace', '')}({m.get('uid', '')})"


def crash_loop_message(backoff: float, container: str, pod: dict) -> str:
    return f"back-off {go_duration(backoff)} restarting failed container={container} " \
           f"pod={format_pod(pod)}"


def image_pull_backoff_message(image: str) -> str:
    return f'Back-off pulling image "{image}"'


def should_restart(container: dict, pod: dict, runtime: PodRuntime) -> bool:
    """kubecontainer.ShouldContainerBeRestarted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    cur = runtime.latest(container["name"])
    if cur is None or cur.state in ("unknown", "created"):
        return True
    if cur.state == "running":
        return False
    policy = container.get("restartPolicy") or (pod.get("spec") or {}).get("restartPolicy",
                                                                           "Always")
    if policy == "Never":
        return False
    if policy == "OnFailure" and cur.exit_code == 0:
        return False
    return True


# ---- container statuses ------------------------------------------------------------------

def _terminated(rc: RuntimeContainer) -> dict:
    reason = rc.reason or (OOM_KILLED if rc.oom_killed else
                           COMPLETED if rc.exit_code == 0 else ERROR)
    t = {"exitCode": rc.exit_code, "reason": reason}
    if rc.message:
        t["message"] = rc.message
    t["startedAt"] = rfc3339(rc.started_at)
    t["finishedAt"] = rfc3339(rc.finished_at)
    if rc.container_id:
        t["containerID"] = rc.container_id
    return t


def _convert(rc: RuntimeContainer, old: dict | None, spec_image: str) -> dict:
    """convertContainerStatus: one runtime instance as an API container status."""
    st: dict = {"name": rc.name, "state": {}, "lastState": {}, "ready": False,
                "restartCount": rc.restart_count, "image": rc.image or spec_image,
                "imageID": rc.image_id}
    if rc.container_id:
        st["containerID"] = rc.container_id
    if old and old.get("volumeMounts"):
        st["volumeMounts"] = old["volumeMounts"]
    if rc.state == "running":
        st["state"] = {"running": {"startedAt": rfc3339(rc.started_at)}}
    elif rc.state == "exited":
        st["state"] = {"terminated": _terminated(rc)}
    elif rc.state == "unknown" and old and "running" in (old.get("state") or {}):
        st["state"] = {"terminated": {
            "exitCode": 137, "reason": STATUS_UNKNOWN,
            "message": "The container could not be located when the pod was terminated",
            "startedAt": None, "finishedAt": None}}
        st["restartCount"] = int(old.get("restartCount") or 0) + 1
    else:
        st["state"] = {"waiting": {}}
    return st


def _volume_mounts(container: dict) -> list[dict]:
    out = []
    for vm in container.get("volumeMounts") or []:
        m = {"name": vm.get("name", ""), "mountPath": vm.get("mountPath", "")}
        if vm.get("readOnly"):
            m["readOnly"] = True
            m["recursiveReadOnly"] = "Enabled" if vm.get("recursiveReadOnly") == "Enabled" \
                else "Disabled"
        out.append(m)
    return out


def container_statuses(pod: dict, runtime: PodRuntime, containers: list[dict],
                       previous: list[dict], *, is_init: bool) -> list[dict]:
    """convertToAPIContainerStatuses for one list of containers (regular or init)."""
    spec = pod.get("spec") or {}
    has_init = bool(spec.get("initContainers"))
    default_reason = POD_INITIALIZING if has_init else CONTAINER_CREATING
    olds = {s.get("name"): s for s in previous or []}
    statuses: dict[str, dict] = {}
    for c in containers:
        st = {"name": c["name"], "state": {"waiting": {"reason": default_reason}},
              "lastState": {}, "ready": False, "restartCount": 0, "image": c.get("image", ""),
              "imageID": ""}
        mounts = _volume_mounts(c)
        if mounts:
            st["volumeMounts"] = mounts
        old = olds.get(c["name"])
        if old is not None:
            if "terminated" in (old.get("state") or {}):
                st = _copy(old)
            else:
                st["restartCount"] = int(old.get("restartCount") or 0)
                st["lastState"] = _copy(old.get("lastState") or {})
        statuses[c["name"]] = st

    seen_names = {rc.name for rc in runtime.containers}
    for c in containers:
        name = c["name"]
        if name in seen_names:
            continue
        old = olds.get(name)
        if not old or "terminated" in (old.get("state") or {}) \
                or "running" not in (old.get("state") or {}):
            continue
        st = statuses[name]
        if (st["state"].get("waiting") or {}).get("reason") != default_reason:
            continue
        if "terminated" in (st.get("lastState") or {}):
            continue
        st["lastState"] = {"terminated": {
            "exitCode": 137, "reason": STATUS_UNKNOWN,
            "message": "The container could not be located when the pod was deleted.  "
                       "The container used to be Running",
            "startedAt": None, "finishedAt": None}}
        if not (pod.get("metadata") or {}).get("deletionTimestamp"):
            st["restartCount"] += 1

    spec_images = {c["name"]: c.get("image", "") for c in containers}
    seen: dict[str, int] = {}
    for rc in sorted(runtime.containers, key=lambda r: r.created_at, reverse=True):
        if rc.name not in statuses or seen.get(rc.name, 0) >= 2:
            continue
        conv = _convert(rc, olds.get(rc.name), spec_images[rc.name])
        if seen.get(rc.name, 0) == 0:
            if "volumeMounts" in statuses[rc.name] and "volumeMounts" not in conv:
                conv["volumeMounts"] = statuses[rc.name]["volumeMounts"]
            statuses[rc.name] = conv
        else:
            statuses[rc.name]["lastState"] = conv["state"]
        seen[rc.name] = seen.get(rc.name, 0) + 1

    for c in containers:
        name = c["name"]
        latest = runtime.latest(name)
        if is_init and latest is not None and latest.state == "exited" and latest.exit_code == 0:
            continue
        if not should_restart(c, pod, runtime) or name not in runtime.reasons:
            continue
        reason, message = runtime.reasons[name]
        st = statuses[name]
        if "terminated" in st["state"]:
            st["lastState"] = st["state"]
        waiting = {"reason": reason}
        if message:
            waiting["message"] = message
        st["state"] = {"waiting": waiting}

    if is_init:
        return [statuses[c["name"]] for c in containers]
    return [statuses[n] for n in sorted(statuses)]


def _copy(d: dict) -> dict:
    import copy
    return copy.deepcopy(d)


def apply_probe_results(pod: dict, statuses: list[dict], init_statuses: list[dict],
                        runtime: PodRuntime) -> None:
    """The prober manager's UpdatePodStatus: `started` and `ready` of every container."""
    for st in statuses:
        running = "running" in st["state"]
        started = running and runtime.startup.get(st["name"], True)
        st["started"] = started
        st["ready"] = bool(started and runtime.readiness.get(st["name"], True))
    by_name = {c["name"]: c for c in (pod.get("spec") or {}).get("initContainers") or []}
    for st in init_statuses:
        c = by_name.get(st["name"], {})
        running = "running" in st["state"]
        if is_sidecar(c):
            started = running and runtime.startup.get(st["name"], True)
            st["started"] = started
            st["ready"] = bool(started and runtime.readiness.get(st["name"], True))
        else:
            st["started"] = running
            term = st["state"].get("terminated")
            st["ready"] = bool(term and term.get("exitCode") == 0)


# ---- phase ------------------------------------------------------------------------------

def _has_regular_started(spec: dict, statuses: list[dict]) -> bool:
    """kubecontainer.HasAnyRegularContainerStarted."""
    for c in spec.get("containers") or []:
        st = _status_of(statuses, c["name"])
        if st is None:
            continue
        s = st.get("state") or {}
        if "running" in s or "terminated" in s:
            return True
        if "terminated" in (st.get("lastState") or {}):
            return True
    return False


def get_phase(pod: dict, statuses: list[dict], pod_is_terminal: bool = False) -> str:
    """getPhase: statuses are the regular and init container statuses together."""
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy", "Always")
    pending_init = failed_init = 0
    for c in spec.get("initContainers") or []:
        if is_sidecar(c):
            continue
        st = _status_of(statuses, c["name"])
        if st is None:
            pending_init += 1
            continue
        s, last = st.get("state") or {}, st.get("lastState") or {}
        if "running" in s:
            pending_init += 1
        elif "terminated" in s:
            if s["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif "waiting" in s:
            if "terminated" in last:
                if last["terminated"].get("exitCode", 0) != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1

    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("initContainers") or []:
        if not is_sidecar(c):
            continue
        st = _status_of(statuses, c["name"])
        if st is None:
            unknown += 1
            continue
        s, last = st.get("state") or {}, st.get("lastState") or {}
        if "running" in s:
            if not st.get("started"):
                pending_init += 1
            running += 1
        elif "terminated" in s:
            pass
        elif "waiting" in s:
            if "terminated" not in last:
                pending_init += 1
                waiting += 1
        else:
            pending_init += 1
            unknown += 1

    for c in spec.get("containers") or []:
        st = _status_of(statuses, c["name"])
        if st is None:
            unknown += 1
            continue
        s, last = st.get("state") or {}, st.get("lastState") or {}
        if "running" in s:
            running += 1
        elif "terminated" in s:
            stopped += 1
            if s["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in s:
            if "terminated" in last:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    if failed_init > 0 and policy == "Never":
        return "Failed"
    if (pending_init > 0 and not _has_regular_started(spec, statuses)) or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


# ---- conditions --------------------------------------------------------------------------

def _cond(ctype: str, status: str, reason: str = "", message: str = "") -> dict:
    c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": None}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def ready_to_start_condition(runtime: PodRuntime) -> dict:
    return _cond("PodReadyToStartContainers", "True" if runtime.sandbox_ready else "False")


def initialized_condition(pod: dict, statuses: list[dict], phase: str) -> dict:
    spec = pod.get("spec") or {}
    init = spec.get("initContainers") or []
    if statuses is None and init:
        return _cond("Initialized", "False", UNKNOWN_CONTAINER_STATUSES)
    unknown, incomplete = [], []
    for c in init:
        st = _status_of(statuses, c["name"])
        if st is None:
            unknown.append(c["name"])
        elif (is_sidecar(c) and not st.get("started")) or (not is_sidecar(c) and not st.get("ready")):
            incomplete.append(c["name"])
    if phase == "Succeeded" and not unknown:
        return _cond("Initialized", "True", POD_COMPLETED)
    if _has_regular_started(spec, statuses):
        return _cond("Initialized", "True")
    msgs = []
    if unknown:
        msgs.append(f"containers with unknown status: {_go_list(unknown)}")
    if incomplete:
        msgs.append(f"containers with incomplete status: {_go_list(incomplete)}")
    if msgs:
        return _cond("Initialized", "False", CONTAINERS_NOT_INITIALIZED, ", ".join(msgs))
    return _cond("Initialized", "True")


def containers_ready_condition(pod: dict, statuses: list[dict], phase: str) -> dict:
    if statuses is None:
        return _cond("ContainersReady", "False", UNKNOWN_CONTAINER_STATUSES)
    spec = pod.get("spec") or {}
    unknown, unready = [], []
    for c in [c for c in spec.get("initContainers") or [] if is_sidecar(c)] + \
            list(spec.get("containers") or []):
        st = _status_of(statuses, c["name"])
        if st is None:
            unknown.append(c["name"])
        elif not st.get("ready"):
            unready.append(c["name"])
    if phase == "Succeeded" and not unknown:
        return _cond("ContainersReady", "False", POD_COMPLETED)
    if phase == "Failed":
        return _cond("ContainersReady", "False", POD_FAILED)
    msgs = []
    if unknown:
        msgs.append(f"containers with unknown status: {_go_list(unknown)}")
    if unready:
        msgs.append(f"containers with unready status: {_go_list(unready)}")
    if msgs:
        return _cond("ContainersReady", "False", CONTAINERS_NOT_READY, ", ".join(msgs))
    return _cond("ContainersReady", "True")


def ready_condition(pod: dict, conditions: list[dict], statuses: list[dict], phase: str) -> dict:
    cr = containers_ready_condition(pod, statuses, phase)
    if cr["status"] != "True":
        return _cond("Ready", cr["status"], cr.get("reason", ""), cr.get("message", ""))
    msgs = []
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        ctype = gate.get("conditionType", "")
        c = next((x for x in conditions if x.get("type") == ctype), None)
        if c is None:
            msgs.append(f'corresponding condition of pod readiness gate "{ctype}" does not exist.')
        elif c.get("status") != "True":
            msgs.append(f'the status of pod readiness gate "{ctype}" is not "True", but '
                        f'{c.get("status")}')
    if msgs:
        return _cond("Ready", "False", READINESS_GATES_NOT_READY, ", ".join(msgs))
    return _cond("Ready", "True")


def keep_transition_times(new: dict, old: dict, now: float) -> None:
    """Status manager: a condition keeps its lastTransitionTime while its status is unchanged."""
    olds = {c.get("type"): c for c in old.get("conditions") or []}
    for c in new.get("conditions") or []:
        if c.get("type") not in KUBELET_CONDITIONS:
            continue
        prev = olds.get(c["type"])
        if prev is not None and prev.get("status") == c.get("status") \
                and prev.get("lastTransitionTime"):
            c["lastTransitionTime"] = prev["lastTransitionTime"]
        else:
            c["lastTransitionTime"] = rfc3339(now)


# ---- the whole status --------------------------------------------------------------------

def generate_pod_status(pod: dict, runtime: PodRuntime, *, host_ips: list[str], now: float,
                        pod_is_terminal: bool = False) -> dict:
    """generateAPIPodStatus + the status manager's merge: the pod's new `.status`."""
    from shim.resources.defaults import qos_class
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    s: dict = {}
    init_specs = list(spec.get("initContainers") or [])
    statuses = container_statuses(pod, runtime, list(spec.get("containers") or []),
                                  old.get("containerStatuses") or [], is_init=False)
    init_statuses = container_statuses(pod, runtime, init_specs,
                                       old.get("initContainerStatuses") or [], is_init=True)
    apply_probe_results(pod, statuses, init_statuses, runtime)
    everything = statuses + init_statuses
    phase = get_phase(pod, everything, pod_is_terminal)
    if phase not in TERMINAL and old.get("phase") in TERMINAL:
        phase = old["phase"]                   # no way out of a terminal phase
    s["phase"] = phase
    if phase == old.get("phase"):
        for k in ("reason", "message"):
            if old.get(k):
                s[k] = old[k]

    conditions = [c for c in old.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
    conditions.append(ready_to_start_condition(runtime))
    all_statuses = init_statuses + statuses
    conditions.append(initialized_condition(pod, all_statuses, phase))
    conditions.append(ready_condition(pod, conditions, all_statuses, phase))
    conditions.append(containers_ready_condition(pod, all_statuses, phase))
    conditions.append(_cond("PodScheduled", "True"))
    s["conditions"] = conditions
    keep_transition_times(s, old, now)

    if host_ips:
        s["hostIP"] = host_ips[0]
        s["hostIPs"] = [{"ip": ip} for ip in host_ips]
    pod_ips = list(runtime.pod_ips)
    if spec.get("hostNetwork") and host_ips:
        pod_ips = [p["ip"] for p in old.get("podIPs") or []] or host_ips[:1]
    if pod_ips:
        s["podIP"] = pod_ips[0]
        s["podIPs"] = [{"ip": ip} for ip in pod_ips]
    s["startTime"] = old.get("startTime") or rfc3339(now)
    if init_statuses:
        s["initContainerStatuses"] = init_statuses
    s["containerStatuses"] = statuses
    s["qosClass"] = old.get("qosClass") or qos_class(pod)
    return s


# ---- back-off ----------------------------------------------------------------------------

@dataclass
class _Entry:
    backoff: float
    last_update: float


class Backoff:
    """flowcontrol.Backoff: per-key exponential back-off (10 s doubling to 5 min) that is
    forgotten when the next event comes more than twice the maximum after the last one —
    so a container that ran for 10 minutes starts again at 10 s."""

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX):
        self.initial = initial
        self.maximum = maximum
        self._items: dict[str, _Entry] = {}

    def _expired(self, event_time: float, last_update: float) -> bool:
        return event_time - last_update > 2 * self.maximum

    def get(self, key: str) -> float:
        e = self._items.get(key)
        return e.backoff if e else 0.0

    def next(self, key: str, event_time: float) -> float:
        """Record a failure at event_time; returns the new back-off."""
        e = self._items.get(key)
        if e is None or self._expired(event_time, e.last_update):
            e = self._items[key] = _Entry(self.initial, event_time)
        else:
            e.backoff = min(e.backoff * 2, self.maximum)
            e.last_update = event_time
        return e.backoff

    def in_backoff_since(self, key: str, event_time: float, now: float) -> bool:
        """Is a restart after a failure at event_time still held back at `now`?"""
        e = self._items.get(key)
        if e is None or self._expired(event_time, e.last_update):
            return False
        return now - event_time < e.backoff

    def reset(self, key: str) -> None:
        self._items.pop(key, None)


def crash_backoff(backoff: Backoff, pod: dict, container: str, finished_at: float,
                  now: float) -> tuple[bool, str]:
    """The kubelet's doBackOff for a dead container: (still backing off?, message).
    When not backing off, the failure is recorded and the caller restarts the container."""
    key = f"{(pod.get('metadata') or {}).get('uid', '')}/{container}"
    if backoff.in_backoff_since(key, finished_at, now):
        return True, crash_loop_message(backoff.get(key), container, pod)
    backoff.next(key, finished_at)
    return False, ""
