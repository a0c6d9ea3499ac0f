"""The node agent (the kubelet's pod lifecycle half): pod workers on containerd.

Owns, for the pods bound to this node (a watch with fieldSelector spec.nodeName=<node>):
- one worker per pod, level-triggered: it compares what containerd runs (containers
  labelled with the pod's uid, namespace, name, the container's name and restart count)
  with what the pod asks and closes the gap — the sandbox (network namespace through CNI,
  IPC and UTS namespaces shared by the pod's containers), image pulls per
  imagePullPolicy with pull secrets and back-off, init containers in order, app
  containers, restarts per restartPolicy with crash back-off, and the pod status written
  through pods/status when it changed;
- container exits through containerd's event stream (subscribed before anything starts;
  every worker re-checks its tasks after a reconnect), with the exit recorded in the
  container's labels so that a later kubeshim knows it;
- graceful deletion (SIGTERM, the grace period, SIGKILL, removal of tasks, containers,
  snapshots, cgroups, network and logs, then DELETE with gracePeriodSeconds=0 and a uid
  precondition), clean-up behind force-deleted pods and orphans found at start-up;
- re-adoption after a restart: running containers are found by their labels, their log
  FIFOs re-opened, their restart counts kept;
- the pure parts of a container's start: env ($(VAR) expansion, envFrom, valueFrom),
  command/args against the image's Entrypoint/Cmd, working dir, user, resources.
It is an API client (shim/client.py); it never touches the store.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

from shim.api.errors import StatusError
from shim.node import images as refs
from shim.node import logs, oci, podstatus, probes, volumes
from shim.node.events import NORMAL, WARNING, EventRecorder, container_field_path

log = logging.getLogger("shim.node.agent")

# The agent forks CNI plugins and `unshare` beside a busy grpc channel: grpc's fork handlers
# are not wanted (and each fork would log "skipping fork() handlers").
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

LABEL_UID = "io.kubernetes.pod.uid"
LABEL_POD = "io.kubernetes.pod.name"
LABEL_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_CONTAINER = "io.kubernetes.container.name"
LABEL_RESTART = "io.kubernetes.container.restartCount"
LABEL_MANAGED = "kubeshim.io/managed"
LABEL_NODE = "kubeshim.io/node"
LABEL_IMAGE = "kubeshim.io/image"
LABEL_IMAGE_ID = "kubeshim.io/image-id"
LABEL_STARTED = "kubeshim.io/started-at"
LABEL_FINISHED = "kubeshim.io/finished-at"
LABEL_EXIT = "kubeshim.io/exit-code"
LABEL_REASON = "kubeshim.io/reason"
LABEL_OOM = "kubeshim.io/oom"

CGROUP_PARENT = "/kubeshim"
SANDBOX_NS_DIR = "/run/kubeshim-ns"
MAX_TERMINATION_MESSAGE = 4096
RESYNC = 30.0
FORCE_DELETE_GRACE = 2.0
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---- pure helpers ------------------------------------------------------------------------

def container_id(uid: str, name: str, restart: int) -> str:
    """A stable containerd id per (pod, container, attempt): a retry after a crash meets the
    container it already created instead of making a second one."""
    return hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()[:40] + f"-{restart}"


def expand(s: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, `$$` escapes a `$`, undefined
    references and malformed ones are left as written."""
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            j = s.find(")", i + 2)
            if j < 0:
                out.append("$(")
                i += 2
            else:
                name = s[i + 2:j]
                out.append(env[name] if name in env else f"$({name})")
                i = j + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


class ConfigError(Exception):
    """CreateContainerConfigError: a referenced ConfigMap/Secret/key is missing."""


def field_ref_value(pod: dict, path: str, host_ip: str = "") -> str:
    """The value of an env fieldRef (downward API)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    st = pod.get("status") or {}
    m = re.match(r"^metadata\.(labels|annotations)\['(.*)'\]$", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": st.get("hostIP") or host_ip, "status.podIP": st.get("podIP", ""),
        "status.hostIPs": ",".join(x.get("ip", "") for x in st.get("hostIPs") or []) or host_ip,
        "status.podIPs": ",".join(x.get("ip", "") for x in st.get("podIPs") or []),
    }
    if path == "metadata.labels":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("labels") or {}).items()))
    if path == "metadata.annotations":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("annotations") or {}).items()))
    return str(simple.get(path, ""))


def _decode_secret(v: str) -> str:
    try:
        return base64.b64decode(v).decode(errors="replace")
    except (ValueError, TypeError):
        return ""


async def resolve_env(container: dict, pod: dict, lookup: Callable, host_ip: str = "") -> dict:
    """The container's environment (envFrom, then env in order with $(VAR) expansion against
    what is defined before). `lookup(kind, name)` returns a ConfigMap/Secret dict or None.
    Raises ConfigError with the kubelet's message for missing non-optional references."""
    env: dict[str, str] = {}
    cache: dict[tuple[str, str], dict | None] = {}

    async def get(kind: str, name: str) -> dict | None:
        if (kind, name) not in cache:
            cache[(kind, name)] = await lookup(kind, name)
        return cache[(kind, name)]

    for src in container.get("envFrom") or []:
        prefix = src.get("prefix") or ""
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = src.get(key)
            if not ref:
                continue
            obj = await get(kind, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{ref.get("name", "")}" not found')
            data = dict(obj.get("data") or {})
            if kind == "secret":
                data = {k: _decode_secret(v) for k, v in data.items()}
            for k, v in data.items():
                name = prefix + k
                if _C_IDENTIFIER.match(name):
                    env[name] = v
    for e in container.get("env") or []:
        name = e.get("name", "")
        if "valueFrom" not in e:
            env[name] = expand(e.get("value") or "", env)
            continue
        vf = e["valueFrom"] or {}
        if "fieldRef" in vf:
            env[name] = field_ref_value(pod, vf["fieldRef"].get("fieldPath", ""), host_ip)
        elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
            kind, ref = ("configmap", vf["configMapKeyRef"]) if "configMapKeyRef" in vf \
                else ("secret", vf["secretKeyRef"])
            obj = await get(kind, ref.get("name", ""))
            key = ref.get("key", "")
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind} "{ref.get("name", "")}" not found')
            data = obj.get("data") or {}
            if key not in data and kind == "configmap" and key in (obj.get("binaryData") or {}):
                data = {key: _decode_secret(obj["binaryData"][key])}
            if key not in data:
                if ref.get("optional"):
                    continue
                what = "ConfigMap" if kind == "configmap" else "Secret"
                ns = (pod.get("metadata") or {}).get("namespace", "")
                raise ConfigError(f"couldn't find key {key} in {what} {ns}/{ref.get('name', '')}")
            env[name] = _decode_secret(data[key]) if kind == "secret" else data[key]
        elif "resourceFieldRef" in vf:
            env[name] = resource_field_value(container, vf["resourceFieldRef"])
    return env


def check_non_root(pod: dict, container: str, run_as, image_uid: int | None,
                   image_user: str) -> None:
    """runAsNonRoot against the effective user; ConfigError with the kubelet's message."""
    where = f'(pod: "{podstatus.format_pod(pod)}", container: {container})'
    if run_as is not None:
        if int(run_as) == 0:
            raise ConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    if image_uid is None:
        name = image_user.partition(":")[0]
        raise ConfigError(f"container has runAsNonRoot and image has non-numeric user ({name}), "
                          f"cannot verify user is non-root {where}")
    if image_uid == 0:
        raise ConfigError(f"container has runAsNonRoot and image will run as root {where}")


def resource_field_value(container: dict, ref: dict) -> str:
    """limits.cpu / requests.memory etc. as the downward API gives them (cpu in cores,
    rounded up, divided by the divisor; memory in bytes)."""
    import math
    from shim.resources.quantity import parse_quantity
    res = ref.get("resource", "")
    kind, _, what = res.partition(".")
    v = ((container.get("resources") or {}).get(kind) or {}).get(what)
    if v is None and kind == "requests":
        v = ((container.get("resources") or {}).get("limits") or {}).get(what)
    if v is None:
        return "0" if what != "cpu" else "1"
    try:
        q = parse_quantity(v)
        div = parse_quantity(ref.get("divisor") or "1")
    except Exception:
        return str(v)
    return str(math.ceil(q / div)) if div else str(v)


def command_line(container: dict, image_config: dict, env: dict[str, str]) -> list[str]:
    """command/args with $(VAR) expanded, combined with the image's Entrypoint/Cmd."""
    command = [expand(x, env) for x in container.get("command") or []]
    args = [expand(x, env) for x in container.get("args") or []]
    return oci.resolve_command(image_config, command or None, args or None)


def _milli_cpu(v) -> int | None:
    from shim.resources.quantity import parse_quantity
    if v is None:
        return None
    try:
        import math
        return math.ceil(parse_quantity(v) * 1000)
    except Exception:
        return None


def _bytes(v) -> int | None:
    from shim.resources.quantity import parse_quantity
    if v is None:
        return None
    try:
        import math
        return math.ceil(parse_quantity(v))
    except Exception:
        return None


def docker_credentials(secret: dict, domain: str) -> list[tuple[str, str]]:
    """(user, password) pairs for `domain` from a kubernetes.io/dockerconfigjson (or legacy
    dockercfg) Secret."""
    data = secret.get("data") or {}
    raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
    if not raw:
        return []
    try:
        cfg = json.loads(base64.b64decode(raw))
    except (ValueError, TypeError):
        return []
    auths = cfg.get("auths", cfg) if isinstance(cfg, dict) else {}
    aliases = {domain}
    if domain == refs.DEFAULT_DOMAIN:
        aliases |= {"index.docker.io", "registry-1.docker.io"}
    out = []
    for key, entry in auths.items():
        host = re.sub(r"^https?://", "", key).split("/", 1)[0]
        if host not in aliases or not isinstance(entry, dict):
            continue
        user, pw = entry.get("username"), entry.get("password")
        if (not user or pw is None) and entry.get("auth"):
            try:
                user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
        if user:
            out.append((user, pw or ""))
    return out


def go_duration(seconds: float) -> str:
    """time.Duration.String() approximately: 512ms, 1.234s, 2m3.5s."""
    if seconds < 1:
        ms = round(seconds * 1000, 3)
        return f"{ms:g}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{round(s, 3):g}s"


# ---- runtime state -----------------------------------------------------------------------

@dataclass
class Instance:
    """One container instance in containerd."""
    id: str
    name: str
    restart: int
    labels: dict
    state: str = "created"           # created | running | exited
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int = 0
    reason: str = ""
    oom: bool = False
    message: str = ""

    @classmethod
    def from_labels(cls, cid: str, labels: dict, created_at: float) -> "Instance":
        inst = cls(cid, labels.get(LABEL_CONTAINER, ""), int(labels.get(LABEL_RESTART) or 0),
                   dict(labels), created_at=created_at)
        if labels.get(LABEL_STARTED):
            inst.started_at = float(labels[LABEL_STARTED])
        if labels.get(LABEL_EXIT):
            inst.state = "exited"
            inst.exit_code = int(labels[LABEL_EXIT])
            inst.finished_at = float(labels.get(LABEL_FINISHED) or 0) or None
            inst.reason = labels.get(LABEL_REASON, "")
        inst.oom = labels.get(LABEL_OOM) == "true"
        return inst

    def runtime(self) -> podstatus.RuntimeContainer:
        return podstatus.RuntimeContainer(
            name=self.name, state=self.state, id=self.id, image=self.labels.get(LABEL_IMAGE, ""),
            image_id=self.labels.get(LABEL_IMAGE_ID, ""), created_at=self.created_at,
            started_at=self.started_at, finished_at=self.finished_at, exit_code=self.exit_code,
            reason=self.reason, message=self.message, oom_killed=self.oom,
            restart_count=self.restart)


def _ts(dt) -> float | None:
    return dt.timestamp() if dt is not None else None


# ---- the agent ---------------------------------------------------------------------------

class Agent:
    """The pod workers of one node. `await agent.run()` until cancelled."""

    def __init__(self, client, containerd, *, node_name: str, data_dir: str, cni=None,
                 host_ip: str = "127.0.0.1", insecure_registries: list[str] | None = None,
                 recorder: EventRecorder | None = None, clock: Callable[[], float] = time.time):
        self.client = client
        self.cd = containerd
        self.node_name = node_name
        self.data_dir = os.path.abspath(data_dir)
        self.cni = cni
        self.host_ip = host_ip
        self.insecure = set(insecure_registries or [])
        self.recorder = recorder or EventRecorder(client, "kubelet", node_name)
        self.clock = clock
        self.workers: dict[str, PodWorker] = {}        # pod uid -> worker
        self.by_cid: dict[str, PodWorker] = {}
        self.crash_backoff = podstatus.Backoff()
        self.pull_backoff = podstatus.Backoff()
        self._pull_locks: dict[str, asyncio.Lock] = {}
        self._pull_failed: dict[str, float] = {}
        self._tasks: list[asyncio.Task] = []
        self.synced = asyncio.Event()
        self._subscribed = asyncio.Event()
        self.reflector = None

    # ---- main loops ----
    async def run(self) -> None:
        if self.cni is not None:
            self.cni.write_config()
        events = asyncio.create_task(self._events(), name="agent-containerd-events")
        self._tasks.append(events)
        try:        # exits of what the workers start must not be missed
            await asyncio.wait_for(self._subscribed.wait(), 15.0)
        except asyncio.TimeoutError:
            log.warning("containerd event subscription not ready; continuing")
        try:
            await self._watch_pods()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop the workers without touching the containers (they run on)."""
        for t in self._tasks:
            t.cancel()
        workers = list(self.workers.values())
        for w in workers:
            w.stop()
        await asyncio.gather(*[w.task for w in workers if w.task], *self._tasks,
                             return_exceptions=True)
        for w in workers:
            w.detach_logs()

    async def _watch_pods(self) -> None:
        from shim.client import Reflector
        self.reflector = Reflector(self.client, "pods",
                                   field_selector=f"spec.nodeName={self.node_name}")
        cleaner = asyncio.create_task(self._cleanup_orphans_when_synced())
        self._tasks.append(cleaner)
        async for ev in self.reflector:
            try:
                self._on_pod(ev.type, ev.object)
            except Exception:
                log.exception("pod event %s", ev.type)

    def _on_pod(self, etype: str, pod: dict) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        if not uid:
            return
        w = self.workers.get(uid)
        if etype == "DELETED":
            if w is not None:
                w.update(pod, gone=True)
            return
        if w is None:
            w = self.workers[uid] = PodWorker(self, pod)
            w.start()
        else:
            w.update(pod)

    def worker_done(self, w: "PodWorker") -> None:
        if self.workers.get(w.uid) is w:
            del self.workers[w.uid]
        for cid in list(w.instances):
            if self.by_cid.get(cid) is w:
                del self.by_cid[cid]

    async def _events(self) -> None:
        """Task exits and OOMs from containerd, forwarded to the workers; after a reconnect
        every worker re-checks its containers."""
        delay = 0.2
        first = True
        while True:
            try:
                async with self.cd.subscribe() as sub:
                    self._subscribed.set()
                    delay = 0.2
                    if not first:
                        for w in list(self.workers.values()):
                            w.kick()
                    first = False
                    async for ev in sub:
                        self._on_event(ev)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("containerd events: %s", e)
            self._subscribed.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _on_event(self, ev) -> None:
        w = self.by_cid.get(ev.container_id)
        if w is None:
            return
        if ev.topic == "/tasks/oom":
            inst = w.instances.get(ev.container_id)
            if inst is not None:
                inst.oom = True
        if ev.topic in ("/tasks/exit", "/tasks/oom", "/tasks/delete"):
            w.kick()

    async def _cleanup_orphans_when_synced(self) -> None:
        while self.reflector is None or not self.reflector.synced.is_set():
            await asyncio.sleep(0.05)
        self.synced.set()
        try:
            await self.cleanup_orphans()
        except Exception:
            log.exception("cleaning up orphaned pods")

    async def cleanup_orphans(self) -> None:
        """Containers, networks and pod dirs of pods the API no longer has (force-deleted
        while kubeshim was down)."""
        known = {(p.get("metadata") or {}).get("uid") for p in self.reflector.cache.values()}
        known |= set(self.workers)
        orphans: dict[str, list[str]] = {}
        for c in await self.cd.list_containers({LABEL_MANAGED: "true", LABEL_NODE: self.node_name}):
            uid = c.labels.get(LABEL_UID, "")
            if uid and uid not in known:
                orphans.setdefault(uid, []).append(c.id)
        uids = set(orphans)
        if self.cni is not None:
            uids |= {u for u in self.cni.known_uids() if u not in known}
        try:
            uids |= {u for u in os.listdir(logs.pods_dir(self.data_dir)) if u not in known}
        except OSError:
            pass
        for uid in uids:
            log.info("cleaning up orphaned pod %s", uid)
            for cid in orphans.get(uid, []):
                await self.remove_container(uid, cid)
            await self.teardown_sandbox(uid)
            volumes.unmount_all(os.path.join(logs.pods_dir(self.data_dir), uid))
            shutil.rmtree(os.path.join(logs.pods_dir(self.data_dir), uid), ignore_errors=True)

    # ---- shared runtime operations ----
    async def remove_container(self, uid: str, cid: str) -> None:
        try:
            await self.cd.delete(cid, kill_timeout=10.0)
        except Exception as e:
            log.warning("removing container %s: %s", cid, e)
        oci.remove_cgroup(f"{CGROUP_PARENT}/pod{uid}/{cid}", keep_levels=1)

    def sandbox_ns_dir(self, uid: str) -> str:
        return os.path.join(SANDBOX_NS_DIR, uid)

    async def ensure_sandbox_namespaces(self, uid: str) -> dict[str, str]:
        """Persistent IPC and UTS namespaces for the pod (bind-mounted files)."""
        d = self.sandbox_ns_dir(uid)
        paths = {"ipc": os.path.join(d, "ipc"), "uts": os.path.join(d, "uts")}
        if all(_is_nsfs(p) for p in paths.values()):
            return paths
        os.makedirs(d, exist_ok=True)
        for p in paths.values():
            if not os.path.exists(p):
                open(p, "w").close()
        proc = await asyncio.create_subprocess_exec(
            "unshare", f"--ipc={paths['ipc']}", f"--uts={paths['uts']}", "true",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"creating pod namespaces: {err.decode().strip()}")
        return paths

    async def teardown_sandbox(self, uid: str, pod: dict | None = None) -> None:
        if self.cni is not None:
            try:
                await self.cni.teardown(uid, pod)
            except Exception as e:
                log.warning("network teardown of pod %s: %s", uid, e)
        d = self.sandbox_ns_dir(uid)
        for name in ("ipc", "uts"):
            p = os.path.join(d, name)
            if _is_nsfs(p):
                await asyncio.to_thread(subprocess.run, ["umount", p], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
        oci.remove_cgroup(f"{CGROUP_PARENT}/pod{uid}", keep_levels=1)

    async def exec_in(self, cid: str, argv: list[str], timeout: float) -> tuple[int, str]:
        """Run `argv` in a running container (probes, hooks) -> (exit code, stdout+stderr);
        asyncio.TimeoutError (the process killed) after `timeout` seconds."""
        exec_id = f"probe-{os.getpid()}-{next(_exec_ids)}"
        d = os.path.join(self.data_dir, "probes")
        os.makedirs(d, exist_ok=True)
        out, err = os.path.join(d, exec_id + ".out"), os.path.join(d, exec_id + ".err")
        try:
            await self.cd.exec(cid, exec_id, argv, stdout=out, stderr=err)
            try:
                status = await self.cd.wait(cid, exec_id, timeout=timeout)
            except Exception:
                await self.cd.kill(cid, signal.SIGKILL, exec_id=exec_id)
                raise asyncio.TimeoutError() from None
            finally:
                try:
                    await self.cd.delete_process(cid, exec_id)
                except Exception:
                    pass
            text = b""
            for p in (out, err):
                with open(p, "rb") as f:
                    text += f.read(probes.MAX_OUTPUT)
            return status.code, text.decode(errors="replace")
        finally:
            for p in (out, err):
                try:
                    os.unlink(p)
                except OSError:
                    pass

    async def request_token(self, namespace: str, sa: str, body: dict) -> tuple[str, float]:
        """A TokenRequest through serviceaccounts/NAME/token: (token, expiry as epoch)."""
        import datetime as _dt
        tr = await self.client.create("serviceaccounts", body, namespace, name=sa,
                                      subresource="token")
        st = tr.get("status") or {}
        exp = _dt.datetime.strptime(st.get("expirationTimestamp", ""), "%Y-%m-%dT%H:%M:%SZ")
        return st.get("token", ""), exp.replace(tzinfo=_dt.timezone.utc).timestamp()

    async def lookup(self, namespace: str, kind: str, name: str) -> dict | None:
        plural = "configmaps" if kind == "configmap" else "secrets"
        try:
            return await self.client.get(plural, name, namespace)
        except StatusError as e:
            if e.code == 404:
                return None
            raise

    async def pull_credentials(self, pod: dict, domain: str) -> list[tuple[str, str]]:
        ns = pod["metadata"].get("namespace", "")
        out = []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            secret = await self.lookup(ns, "secret", ref.get("name", ""))
            if secret is not None:
                out += docker_credentials(secret, domain)
        return out

    async def pull(self, pod: dict, image: str, ref: refs.Reference) -> tuple[int, float]:
        """Pull `image` (with the pod's pull secrets, insecure registries over HTTP) once at a
        time per image; returns (size, seconds spent waiting + pulling)."""
        t0 = time.monotonic()
        name = str(ref)
        lock = self._pull_locks.setdefault(name, asyncio.Lock())
        creds = await self.pull_credentials(pod, ref.domain)
        plain = True if ref.domain in self.insecure else None
        async with lock:
            waited = time.monotonic() - t0
            last: Exception | None = None
            for auth in creds + [None]:
                try:
                    await self.cd.pull(name, auth=auth, plain_http=plain)
                    ic = await self.cd.image_config(name)
                    return ic.size, waited
                except Exception as e:      # RegistryError, ContainerdError, OSError
                    last = e
            raise last or RuntimeError("pull failed")

    def node_status_host_ip(self) -> list[str]:
        return [self.host_ip] if self.host_ip else []


_exec_ids = __import__("itertools").count(1)


def _is_nsfs(path: str) -> bool:
    try:
        return os.statvfs(path) is not None and os.stat(path).st_ino != 0 and \
            _fs_type(path) == "nsfs"
    except OSError:
        return False


def _fs_type(path: str) -> str:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 4 and parts[4] == path:
                    sep = parts.index("-")
                    return parts[sep + 1]
    except (OSError, ValueError):
        pass
    return ""


# ---- one pod -----------------------------------------------------------------------------

class PodWorker:
    """Keeps one pod's containers where its spec wants them."""

    def __init__(self, agent: Agent, pod: dict):
        self.agent = agent
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.gone = False
        self.instances: dict[str, Instance] = {}
        self.loaded = False
        self.reasons: dict[str, tuple[str, str]] = {}
        self.writers: dict[str, logs.LogWriter] = {}
        self.network = None
        self.ns_paths: dict[str, str] = {}
        self.last_posted: dict | None = None
        self.next_wake: float | None = None
        self.sandbox_torn_down = False
        self._kick = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.finished = False
        ns = self.meta.get("namespace", "")
        self.volumes = volumes.VolumeManager(
            os.path.join(logs.pods_dir(agent.data_dir), self.uid),
            lambda kind, name: agent.lookup(ns, kind, name),
            lambda sa, body: agent.request_token(ns, sa, body), host_ip=agent.host_ip,
            clock=agent.clock)
        self.probes = probes.ProbeManager(
            exec_fn=agent.exec_in, pod_ip=self.pod_ip, on_change=self.kick,
            on_failure=self._probe_failed,
            event=lambda etype, reason, msg, c: self.event(etype, reason, msg, c),
            clock=agent.clock)

    # ---- plumbing ----
    @property
    def meta(self) -> dict:
        return self.pod.get("metadata") or {}

    @property
    def spec(self) -> dict:
        return self.pod.get("spec") or {}

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name=f"pod-{self.meta.get('name')}")

    def stop(self) -> None:
        self.probes.stop_all()
        if self.task is not None:
            self.task.cancel()

    def kick(self) -> None:
        self._kick.set()

    def update(self, pod: dict, gone: bool = False) -> None:
        if gone:
            self.gone = True
        elif int(_rv(pod) or 0) >= int(_rv(self.pod) or 0):
            self.pod = pod
        self.kick()

    def detach_logs(self) -> None:
        for w in self.writers.values():
            w.detach()
        self.writers.clear()

    async def _loop(self) -> None:
        try:
            while not self.finished:
                self._kick.clear()
                try:
                    await self.sync()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("syncing pod %s/%s", self.meta.get("namespace"),
                                  self.meta.get("name"))
                    self.next_wake = min(self.next_wake or 1e18, self.agent.clock() + 2.0)
                if self.finished:
                    break
                timeout = RESYNC
                if self.next_wake is not None:
                    timeout = max(0.0, min(timeout, self.next_wake - self.agent.clock()))
                try:
                    await asyncio.wait_for(self._kick.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            if self.finished:
                self.agent.worker_done(self)

    def event(self, etype: str, reason: str, message: str, container: str = "") -> None:
        fp = container_field_path(self.pod, container) if container else ""
        self.agent.recorder.emit(self.pod, etype, reason, message, field_path=fp)

    # ---- the sync ----
    async def sync(self) -> None:
        self.next_wake = None
        if not self.loaded:
            await self.load()
        await self.refresh()
        if self.gone:
            await self.terminate(min(FORCE_DELETE_GRACE, self._grace()))
            await self.cleanup()
            self.finished = True
            return
        if self.meta.get("deletionTimestamp"):
            await self.terminate(self._grace())
            await self.cleanup()
            await self.finish_delete()
            self.finished = True
            return
        phase = (self.pod.get("status") or {}).get("phase")
        if phase in podstatus.TERMINAL:
            await self.stop_terminal()
            await self.post_status()
            return
        if not await self.ensure_sandbox() or not await self.ensure_volumes():
            await self.post_status()
            return
        if await self.run_init_containers():
            await self.run_app_containers()
        self._sync_probes()
        status = await self.post_status()
        if status.get("phase") in podstatus.TERMINAL:
            await self.stop_terminal()

    def _grace(self) -> float:
        g = self.meta.get("deletionGracePeriodSeconds")
        if g is None:
            g = self.spec.get("terminationGracePeriodSeconds", 30)
        return float(g or 0)

    async def load(self) -> None:
        """Adopt what containerd has for this pod (after a restart: running containers,
        their restart counts and log FIFOs)."""
        found = await self.agent.cd.list_containers({LABEL_UID: self.uid})
        for c in found:
            inst = Instance.from_labels(c.id, c.labels, _ts(c.created_at) or 0.0)
            self.instances[c.id] = inst
            self.agent.by_cid[c.id] = self
        if self.agent.cni is not None and not self.spec.get("hostNetwork"):
            self.network = self.agent.cni.cached(self.uid)
        for inst in self.instances.values():
            if inst.state != "exited":
                task = await self.agent.cd.get_task(inst.id)
                if task is not None and task.status == "running":
                    self._reattach_logs(inst)
        for inst in self.instances.values():
            self.message_of(inst)
        self.loaded = True

    def _log_path(self, inst: Instance) -> str:
        return logs.log_path(self.agent.data_dir, self.uid, inst.name, inst.restart)

    def _reattach_logs(self, inst: Instance) -> None:
        w = logs.LogWriter(self._log_path(inst))
        if any(os.path.exists(p) for p in w.fifo_paths()):
            w.open()
            w.start()
            self.writers[inst.id] = w

    async def refresh(self) -> None:
        """Update the state of every instance that has not exited yet from its task."""
        for inst in list(self.instances.values()):
            if inst.state == "exited":
                continue
            task = await self.agent.cd.get_task(inst.id)
            if task is None:
                if inst.started_at is None and inst.state == "created":
                    await self._record_exit(inst, 128, self.agent.clock(), "StartError",
                                            "container was never started")
                else:
                    await self._record_exit(inst, 137, self.agent.clock(), "Error", "")
            elif task.status == "running":
                inst.state = "running"
            elif task.status == "stopped":
                await self._record_exit(inst, task.exit_status,
                                        _ts(task.exited_at) or self.agent.clock())
            elif task.status == "created":
                # created but never started (kubeshim died in between): start it now
                try:
                    await self.agent.cd.start(inst.id)
                    await self._mark_started(inst)
                except Exception as e:
                    await self._record_exit(inst, 128, self.agent.clock(), "StartError", str(e))

    async def _record_exit(self, inst: Instance, code: int, finished: float, reason: str = "",
                           message: str = "") -> None:
        w = self.writers.pop(inst.id, None)
        if w is not None:
            try:
                await asyncio.wait_for(w.closed.wait(), 2.0)
            except asyncio.TimeoutError:
                pass
            w.close()
        else:
            logs.mark_done(self._log_path(inst))
        inst.state = "exited"
        inst.exit_code = code
        inst.finished_at = finished
        if not reason:
            reason = "OOMKilled" if inst.oom else ("Completed" if code == 0 else "Error")
        inst.reason = reason
        labels = {LABEL_EXIT: str(code), LABEL_FINISHED: f"{finished:.6f}", LABEL_REASON: reason}
        if inst.oom:
            labels[LABEL_OOM] = "true"
        if message:
            inst.message = message
            self._write_message(inst, message)
        else:
            self.message_of(inst, fresh=True)
        try:
            await self.agent.cd.update_container_labels(inst.id, labels)
            inst.labels.update(labels)
            await self.agent.cd.delete_task(inst.id)
        except Exception as e:
            log.debug("recording exit of %s: %s", inst.id, e)
        self._clean_io(inst)

    def _clean_io(self, inst: Instance) -> None:
        for p in logs.LogWriter(self._log_path(inst)).fifo_paths():
            try:
                os.unlink(p)
            except OSError:
                pass

    def _message_path(self, inst: Instance) -> str:
        return self._log_path(inst)[:-4] + ".termination"

    def _write_message(self, inst: Instance, message: str) -> None:
        try:
            with open(self._message_path(inst) + ".msg", "w") as f:
                f.write(message)
        except OSError:
            pass

    def message_of(self, inst: Instance, fresh: bool = False) -> str:
        """The termination message: the file the container wrote at terminationMessagePath,
        or with FallbackToLogsOnError the tail of its log after a failure."""
        if inst.state != "exited":
            return ""
        if inst.message and not fresh:
            return inst.message
        msg = ""
        try:
            with open(self._message_path(inst) + ".msg") as f:
                msg = f.read()
        except OSError:
            try:
                with open(self._message_path(inst), "rb") as f:
                    msg = f.read(MAX_TERMINATION_MESSAGE).decode(errors="replace")
            except OSError:
                pass
        c = self.container_spec(inst.name) or {}
        if not msg and inst.exit_code != 0 and \
                c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            msg = logs.termination_message_from_log(self._log_path(inst))
        inst.message = msg
        return msg

    def container_spec(self, name: str) -> dict | None:
        for key in ("initContainers", "containers"):
            for c in self.spec.get(key) or []:
                if c.get("name") == name:
                    return c
        return None

    def latest(self, name: str) -> Instance | None:
        found = [i for i in self.instances.values() if i.name == name]
        return max(found, key=lambda i: i.restart) if found else None

    # ---- sandbox ----
    async def ensure_sandbox(self) -> bool:
        if self.spec.get("hostNetwork"):
            if not self.spec.get("hostIPC"):
                self.ns_paths = {"ipc": (await self.agent.ensure_sandbox_namespaces(self.uid))["ipc"]}
            return True
        try:
            paths = await self.agent.ensure_sandbox_namespaces(self.uid)
            self.ns_paths = {"uts": paths["uts"]}
            if not self.spec.get("hostIPC"):
                self.ns_paths["ipc"] = paths["ipc"]
            if self.agent.cni is not None and self.network is None:
                self.network = await self.agent.cni.setup(self.pod)
            if self.network is not None:
                self.ns_paths["network"] = self.network.netns
            self.sandbox_torn_down = False
            self.reasons.pop("__sandbox__", None)
            return True
        except Exception as e:
            msg = f"Failed to create pod sandbox: {e}"
            log.warning("pod %s: %s", self.meta.get("name"), msg)
            self.event(WARNING, "FailedCreatePodSandBox", msg)
            self.next_wake = self.agent.clock() + 5.0
            return False

    # ---- containers ----
    async def run_init_containers(self) -> bool:
        """Run init containers in order; True once all completed."""
        policy = self.spec.get("restartPolicy", "Always")
        for c in self.spec.get("initContainers") or []:
            inst = self.latest(c["name"])
            if inst is not None and inst.state == "exited" and inst.exit_code == 0:
                continue
            if inst is not None and inst.state == "running":
                return False
            if inst is not None and inst.state == "exited":
                if policy == "Never":
                    return False
                if not self._may_restart(c, inst):
                    return False
                await self.start_container(c, inst.restart + 1, init=True)
                return False
            await self.start_container(c, 0, init=True)
            return False
        return True

    async def run_app_containers(self) -> None:
        for c in self.spec.get("containers") or []:
            inst = self.latest(c["name"])
            if inst is None:
                await self.start_container(c, 0)
                continue
            if inst.state != "exited":
                continue
            runtime = podstatus.PodRuntime(containers=[inst.runtime()])
            if not podstatus.should_restart(c, self.pod, runtime):
                continue
            if self._may_restart(c, inst):
                await self.start_container(c, inst.restart + 1)

    def _may_restart(self, c: dict, inst: Instance) -> bool:
        """Crash back-off: False (with CrashLoopBackOff) while the container must wait."""
        now = self.agent.clock()
        finished = inst.finished_at or now
        backing, msg = podstatus.crash_backoff(self.agent.crash_backoff, self.pod, c["name"],
                                               finished, now)
        if backing:
            self.reasons[c["name"]] = (podstatus.CRASH_LOOP_BACK_OFF, msg)
            key = f"{self.uid}/{c['name']}"
            wake = finished + self.agent.crash_backoff.get(key)
            self.next_wake = min(self.next_wake or wake, wake)
            self.event(WARNING, "BackOff",
                       f"Back-off restarting failed container {c['name']} in pod "
                       f"{podstatus.format_pod(self.pod)}", c["name"])
            return False
        return True

    async def ensure_image(self, c: dict) -> str | None:
        """The stored image name to run, pulling per imagePullPolicy; None (with the waiting
        reason recorded) when the image is not there."""
        image = c.get("image", "")
        name = c["name"]
        try:
            ref = refs.parse(image)
        except refs.ReferenceError as e:
            msg = f'Failed to apply default image tag "{image}": couldn\'t parse image name ' \
                  f'"{image}": {e}'
            self.reasons[name] = (podstatus.INVALID_IMAGE_NAME, msg)
            self.event(WARNING, "InspectFailed", msg, name)
            self.event(WARNING, "Failed", f"Error: {podstatus.INVALID_IMAGE_NAME}", name)
            return None
        norm = str(ref)
        policy = c.get("imagePullPolicy") or refs.default_pull_policy(image)
        present = await self.agent.cd.get_image(norm) is not None
        if policy == refs.PULL_NEVER and not present:
            msg = refs.never_pull_message(image)
            self.reasons[name] = (podstatus.ERR_IMAGE_NEVER_PULL, msg)
            self.event(WARNING, "ErrImageNeverPull", msg, name)
            self.event(WARNING, "Failed", f"Error: {podstatus.ERR_IMAGE_NEVER_PULL}", name)
            self.next_wake = min(self.next_wake or 1e18, self.agent.clock() + 10)
            return None
        if not refs.should_pull(policy, present):
            self.event(NORMAL, "Pulled", f'Container image "{image}" already present on machine',
                       name)
            return norm
        key = f"{self.uid}/{norm}"
        now = self.agent.clock()
        failed_at = self.agent._pull_failed.get(key)
        if failed_at is not None and self.agent.pull_backoff.in_backoff_since(key, failed_at, now):
            msg = podstatus.image_pull_backoff_message(image)
            self.reasons[name] = (podstatus.IMAGE_PULL_BACK_OFF, msg)
            self.event(NORMAL, "BackOff", msg, name)
            self.event(WARNING, "Failed", f"Error: {podstatus.IMAGE_PULL_BACK_OFF}", name)
            wake = failed_at + self.agent.pull_backoff.get(key)
            self.next_wake = min(self.next_wake or wake, wake)
            return None
        self.event(NORMAL, "Pulling", f'Pulling image "{image}"', name)
        t0 = time.monotonic()
        try:
            size, waited = await self.agent.pull(self.pod, image, ref)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            err = f'failed to pull and unpack image "{norm}": {e}'
            self.agent._pull_failed[key] = self.agent.clock()
            self.agent.pull_backoff.next(key, self.agent.clock())
            self.reasons[name] = (podstatus.ERR_IMAGE_PULL, err)
            self.event(WARNING, "Failed", f'Failed to pull image "{image}": {err}', name)
            self.event(WARNING, "Failed", f"Error: {podstatus.ERR_IMAGE_PULL}", name)
            wake = self.agent.clock() + self.agent.pull_backoff.get(key)
            self.next_wake = min(self.next_wake or wake, wake)
            return None
        took = time.monotonic() - t0
        self.agent._pull_failed.pop(key, None)
        self.agent.pull_backoff.reset(key)
        self.event(NORMAL, "Pulled",
                   f'Successfully pulled image "{image}" in {go_duration(took - waited)} '
                   f'({go_duration(took)} including waiting). Image size: {size} bytes.', name)
        return norm

    async def start_container(self, c: dict, restart: int, init: bool = False) -> None:
        name = c["name"]
        image = await self.ensure_image(c)
        if image is None:
            return
        cid = container_id(self.uid, name, restart)
        try:
            spec, labels = await self.build(c, image, cid, restart)
        except ConfigError as e:
            self.reasons[name] = (podstatus.CREATE_CONTAINER_CONFIG_ERROR, str(e))
            self.event(WARNING, "Failed", f"Error: {e}", name)
            self.next_wake = min(self.next_wake or 1e18, self.agent.clock() + 10)
            return
        inst = Instance(cid, name, restart, labels, created_at=self.agent.clock())
        writer = logs.LogWriter(self._log_path(inst))
        out, err = writer.fifos()
        writer.open()
        cd = self.agent.cd
        try:
            try:
                await cd.create_container(cid, image, spec, labels=labels)
            except Exception as e:
                if not getattr(e, "already_exists", False):
                    raise
                await cd.delete(cid)                 # left over from an interrupted attempt
                await cd.create_container(cid, image, spec, labels=labels)
        except asyncio.CancelledError:
            writer.detach()
            raise
        except Exception as e:
            writer.detach()
            msg = str(getattr(e, "message", e))
            self.reasons[name] = (podstatus.CREATE_CONTAINER_ERROR, msg)
            self.event(WARNING, "Failed", f"Error: {msg}", name)
            self.next_wake = min(self.next_wake or 1e18, self.agent.clock() + 10)
            return
        self.instances[cid] = inst
        self.agent.by_cid[cid] = self
        self.reasons.pop(name, None)
        self.event(NORMAL, "Created", f"Created container {name}", name)
        try:
            await cd.create_task(cid, stdout=out, stderr=err)
            writer.start()
            self.writers[cid] = writer
            await cd.start(cid)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            msg = str(getattr(e, "message", e))
            self.event(WARNING, "Failed", f"Error: {msg}", name)
            await self._record_exit(inst, 128, self.agent.clock(), "StartError", msg)
            await self._prune(name)
            return
        await self._mark_started(inst)
        self.event(NORMAL, "Started", f"Started container {name}", name)
        await self._post_start(c, inst)
        await self._prune(name)

    async def _mark_started(self, inst: Instance) -> None:
        inst.state = "running"
        inst.started_at = self.agent.clock()
        try:
            await self.agent.cd.update_container_labels(
                inst.id, {LABEL_STARTED: f"{inst.started_at:.6f}"})
            inst.labels[LABEL_STARTED] = f"{inst.started_at:.6f}"
        except Exception as e:
            log.debug("labelling %s: %s", inst.id, e)

    async def _prune(self, name: str) -> None:
        """Keep the newest two instances of a container (the current and the previous)."""
        mine = sorted((i for i in self.instances.values() if i.name == name),
                      key=lambda i: i.restart, reverse=True)
        for old in mine[2:]:
            if old.state == "running":
                continue
            await self.agent.remove_container(self.uid, old.id)
            self.instances.pop(old.id, None)
            self.agent.by_cid.pop(old.id, None)
            path = self._log_path(old)
            for p in [path, path + logs.DONE_SUFFIX, self._message_path(old),
                      self._message_path(old) + ".msg"] + logs.rotated_files(path):
                try:
                    os.unlink(p)
                except OSError:
                    pass

    async def build(self, c: dict, image: str, cid: str, restart: int) -> tuple[dict, dict]:
        """The OCI spec and labels of a container instance."""
        agent = self.agent
        ns = self.meta.get("namespace", "")
        ic = await agent.cd.image_config(image)
        icfg = ic.config or {}

        async def lookup(kind, name):
            return await agent.lookup(ns, kind, name)
        env = await resolve_env(c, self.pod, lookup, agent.host_ip)
        links = getattr(agent, "service_links", None)    # shim/node/network/services.py
        if links is not None:
            env = {**links(ns, self.spec.get("enableServiceLinks") is not False), **env}
        args = command_line(c, icfg, env)
        if not args:
            raise ConfigError("no command specified")
        sc = c.get("securityContext") or {}
        psc = self.spec.get("securityContext") or {}
        uid_, gid_ = oci.parse_user(icfg.get("User", ""))
        run_as = sc.get("runAsUser", psc.get("runAsUser"))
        run_group = sc.get("runAsGroup", psc.get("runAsGroup"))
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            check_non_root(self.pod, c["name"], run_as, uid_, icfg.get("User", ""))
        uid_ = int(run_as) if run_as is not None else (uid_ if uid_ is not None else 0)
        gid_ = int(run_group) if run_group is not None else (gid_ if gid_ is not None else 0)
        groups = [int(g) for g in psc.get("supplementalGroups") or []]
        if psc.get("fsGroup") is not None:
            groups.append(int(psc["fsGroup"]))
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        cdir = logs.container_dir(agent.data_dir, self.uid, c["name"])
        os.makedirs(cdir, exist_ok=True)
        term_file = os.path.join(cdir, f"{restart}.termination")
        open(term_file, "w").close()
        os.chmod(term_file, 0o666)
        mounts = [oci.bind_mount(term_file, c.get("terminationMessagePath") or "/dev/termination-log")]
        hosts = self._hosts_file()
        if hosts:
            mounts.append(oci.bind_mount(hosts, "/etc/hosts"))
        from shim.node.network.dns import write_resolv_conf      # dnsPolicy
        resolv = write_resolv_conf(os.path.join(logs.pods_dir(agent.data_dir), self.uid),
                                   self.pod, getattr(agent, "cluster_dns", ""))
        if resolv:
            mounts.append(oci.bind_mount(resolv, "/etc/resolv.conf"))
        mounts += self._volume_mounts(c)
        host_ns = []
        if self.spec.get("hostNetwork"):
            host_ns += ["network", "uts"]
        if self.spec.get("hostPID"):
            host_ns.append("pid")
        if self.spec.get("hostIPC"):
            host_ns.append("ipc")
        hostname = "" if self.spec.get("hostNetwork") else \
            (self.spec.get("hostname") or self.meta.get("name", ""))[:63]
        privileged = bool(sc.get("privileged"))
        caps = sc.get("capabilities") or {}
        spec = oci.build_spec(
            args, env=oci.image_env(icfg, env), cwd=c.get("workingDir") or icfg.get("WorkingDir") or "/",
            uid=uid_, gid=gid_, additional_gids=groups, hostname=hostname, mounts=mounts,
            namespace_paths=self.ns_paths, host_namespaces=host_ns,
            cgroups_path=f"{CGROUP_PARENT}/pod{self.uid}/{cid}",
            cpu_request_milli=_milli_cpu(req.get("cpu") or lim.get("cpu")),
            cpu_limit_milli=_milli_cpu(lim.get("cpu")), memory_limit=_bytes(lim.get("memory")),
            cap_add=caps.get("add") or (), cap_drop=caps.get("drop") or (), privileged=privileged,
            readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
            terminal=bool(c.get("tty")))
        digest = ic.target_digest
        ref = refs.parse(image)
        labels = {
            LABEL_MANAGED: "true", LABEL_NODE: agent.node_name, LABEL_UID: self.uid,
            LABEL_POD: self.meta.get("name", ""), LABEL_NAMESPACE: ns,
            LABEL_CONTAINER: c["name"], LABEL_RESTART: str(restart), LABEL_IMAGE: image,
            LABEL_IMAGE_ID: f"{ref.repository}@{digest}" if digest else "",
        }
        return spec, labels

    def _hosts_file(self) -> str:
        """/etc/hosts for the pod (localhost and the pod's own name), as the kubelet writes it."""
        if self.spec.get("hostNetwork"):
            return ""
        pdir = os.path.join(logs.pods_dir(self.agent.data_dir), self.uid)
        path = os.path.join(pdir, "etc-hosts")
        ip = self.network.ips[0] if self.network is not None and self.network.ips else ""
        name = self.spec.get("hostname") or self.meta.get("name", "")
        lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
                 "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
                 "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
        if ip:
            sub = self.spec.get("subdomain")
            fqdn = f"{name}.{sub}.{self.meta.get('namespace')}.svc.cluster.local" if sub else ""
            lines.append(f"{ip}\t{fqdn + chr(9) if fqdn else ''}{name}")
        for ha in self.spec.get("hostAliases") or []:
            lines.append(f"\n# Entries added by HostAliases.\n{ha.get('ip', '')}\t"
                         + "\t".join(ha.get("hostnames") or []))
        os.makedirs(pdir, exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _volume_mounts(self, c: dict) -> list[dict]:
        """The container's volumeMounts as OCI bind mounts (volumes set up by ensure_volumes)."""
        try:
            return self.volumes.mounts(c)
        except (ValueError, OSError) as e:
            raise ConfigError(str(e)) from None

    async def ensure_volumes(self) -> bool:
        """Set up (or refresh) the pod's volumes; False with a FailedMount event on failure."""
        try:
            await self.volumes.setup(self.pod)
        except volumes.MountError as e:
            log.info("pod %s: %s", self.meta.get("name"), e.event_message())
            self.event(WARNING, "FailedMount", e.event_message())
            self.next_wake = min(self.next_wake or 1e18, self.agent.clock() + 3.0)
            return False
        if volumes.has_user_api_data(self.pod):     # ConfigMap/Secret edits reach the files
            self.next_wake = min(self.next_wake or 1e18,
                                 self.agent.clock() + volumes.REFRESH_PERIOD)
        return True

    # ---- status ----
    def runtime(self) -> podstatus.PodRuntime:
        ips = list(self.network.ips) if self.network is not None else []
        if not ips:
            ips = [p.get("ip") for p in (self.pod.get("status") or {}).get("podIPs") or []
                   if p.get("ip")]
        for inst in self.instances.values():
            self.message_of(inst)
        ready = not self.sandbox_torn_down and (self.network is not None or
                                                bool(self.spec.get("hostNetwork")) or
                                                self.agent.cni is None) and bool(self.ns_paths)
        return podstatus.PodRuntime(containers=[i.runtime() for i in self.instances.values()],
                                    sandbox_ready=ready, pod_ips=ips, reasons=dict(self.reasons),
                                    readiness=self.probes.readiness(),
                                    startup=self.probes.startup())

    async def post_status(self) -> dict:
        old = self.pod.get("status") or {}
        new = podstatus.generate_pod_status(self.pod, self.runtime(),
                                            host_ips=self.agent.node_status_host_ip(),
                                            now=self.agent.clock())
        if new == old or new == self.last_posted:
            return new
        patch = dict(new)
        for k in old:
            if k not in new:
                patch[k] = None
        try:
            pod = await self.agent.client.patch("pods", self.meta["name"], {"status": patch},
                                                self.meta.get("namespace"), subresource="status",
                                                type="merge")
            self.last_posted = new
            if int(_rv(pod) or 0) >= int(_rv(self.pod) or 0):
                self.pod = pod
        except StatusError as e:
            if e.code == 404:
                self.gone = True
                self.kick()
            else:
                log.warning("pod %s status: %s", self.meta.get("name"), e.message)
                self.next_wake = self.agent.clock() + 1.0
        return new

    # ---- stopping ----
    async def kill_running(self, grace: float) -> None:
        """SIGTERM every running container, SIGKILL what is left after `grace` seconds."""
        running = [i for i in self.instances.values() if i.state == "running"]
        if not running:
            return
        cd = self.agent.cd
        t0 = self.agent.clock()
        await asyncio.gather(*[self._pre_stop(i, grace) for i in running])
        grace = max(grace - (self.agent.clock() - t0), min(grace, 2.0))
        for inst in running:
            self.event(NORMAL, "Killing", f"Stopping container {inst.name}", inst.name)
            await cd.kill(inst.id, signal.SIGTERM)
        waits = [asyncio.ensure_future(self._wait_exit(i.id)) for i in running]
        if grace > 0:
            await asyncio.wait(waits, timeout=grace)
        for inst, w in zip(running, waits):
            if not w.done():
                await cd.kill(inst.id, signal.SIGKILL, all=True)
        await asyncio.wait(waits, timeout=10.0)
        for w in waits:
            w.cancel()
        await self.refresh()

    # ---- probes and hooks ----
    def pod_ip(self) -> str:
        if self.spec.get("hostNetwork"):
            return self.agent.host_ip
        if self.network is not None and self.network.ips:
            return self.network.ips[0]
        return (self.pod.get("status") or {}).get("podIP", "")

    def _sync_probes(self) -> None:
        running = []
        for c in self.spec.get("containers") or []:
            inst = self.latest(c["name"])
            if inst is not None and inst.state == "running":
                running.append((c, inst.id, inst.started_at or self.agent.clock()))
        self.probes.sync(running)

    async def _probe_failed(self, name: str, cid: str, kind: str) -> None:
        """A liveness/startup probe reached its failureThreshold: kill the container (the
        sync restarts it per restartPolicy)."""
        inst = self.instances.get(cid)
        if inst is None or inst.state != "running":
            return
        c = self.container_spec(name) or {}
        probe = c.get(probes.SPEC_KEYS[kind]) or {}
        grace = probe.get("terminationGracePeriodSeconds")
        grace = float(grace if grace is not None else self._grace())
        self.event(NORMAL, "Killing",
                   f"Container {name} failed {kind.lower()} probe, will be restarted", name)
        await self._pre_stop(inst, grace)
        await self.agent.cd.kill(cid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self._wait_exit(cid), grace)
        except asyncio.TimeoutError:
            await self.agent.cd.kill(cid, signal.SIGKILL, all=True)
        self.kick()

    async def _post_start(self, c: dict, inst: Instance) -> None:
        """The postStart hook; a failure kills the container (FailedPostStartHook)."""
        handler = (c.get("lifecycle") or {}).get("postStart")
        if not handler:
            return
        err = await probes.run_handler(handler, c, inst.id, self.pod_ip(), self.agent.exec_in,
                                       self._grace() or 30.0)
        if not err:
            return
        self.event(WARNING, "FailedPostStartHook", self._hook_message(handler, c, err), c["name"])
        await self.agent.cd.kill(inst.id, signal.SIGKILL, all=True)
        self.kick()

    async def _pre_stop(self, inst: Instance, grace: float) -> None:
        """The preStop hook of a running container, bounded by the grace period."""
        c = self.container_spec(inst.name) or {}
        handler = (c.get("lifecycle") or {}).get("preStop")
        if not handler or grace <= 0:
            return
        try:
            err = await asyncio.wait_for(probes.run_handler(
                handler, c, inst.id, self.pod_ip(), self.agent.exec_in, grace), grace)
        except asyncio.TimeoutError:
            err = f"PreStopHook timed out after {int(grace)}s"
        if err:
            self.event(WARNING, "FailedPreStopHook", self._hook_message(handler, c, err),
                       inst.name)

    def _hook_message(self, handler: dict, c: dict, err: str) -> str:
        pod = podstatus.format_pod(self.pod)
        if handler.get("exec") is not None:
            cmd = " ".join((handler["exec"] or {}).get("command") or [])
            return f'Exec lifecycle hook ([{cmd}]) for Container "{c["name"]}" in Pod "{pod}" ' \
                   f'failed - error: {err}'
        return f'HTTP lifecycle hook ({(handler.get("httpGet") or {}).get("path", "")}) for ' \
               f'Container "{c["name"]}" in Pod "{pod}" failed - error: {err}'

    async def _wait_exit(self, cid: str) -> None:
        try:
            await self.agent.cd.wait(cid)
        except Exception:
            pass

    async def terminate(self, grace: float) -> None:
        self.probes.stop_all()
        await self.kill_running(grace)

    async def stop_terminal(self) -> None:
        """A pod in a terminal phase: nothing runs, the sandbox (network) is released."""
        self.probes.stop_all()
        await self.kill_running(self._grace())
        if not self.sandbox_torn_down:
            await self.agent.teardown_sandbox(self.uid, self.pod)
            self.sandbox_torn_down = True
            self.network = None

    async def cleanup(self) -> None:
        """Remove every trace of the pod on this node."""
        for inst in list(self.instances.values()):
            w = self.writers.pop(inst.id, None)
            if w is not None:
                w.close()
            await self.agent.remove_container(self.uid, inst.id)
        await self.agent.teardown_sandbox(self.uid, self.pod)
        self.network = None
        volumes.unmount_all(os.path.join(logs.pods_dir(self.agent.data_dir), self.uid))
        shutil.rmtree(os.path.join(logs.pods_dir(self.agent.data_dir), self.uid),
                      ignore_errors=True)

    async def finish_delete(self) -> None:
        try:
            await self.agent.client.delete("pods", self.meta["name"], self.meta.get("namespace"),
                                           grace_period_seconds=0,
                                           preconditions={"uid": self.uid})
        except StatusError as e:
            if e.code not in (404, 409):
                raise


def _rv(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")


# ---- wiring into `kubeshim server` -------------------------------------------------------

class NodeRuntime:
    """Everything the node half of `kubeshim server` runs: containerd (a managed child unless
    a socket is given), the Node object and its heartbeats, CNI, the agent, and the pods/log
    handler. `await NodeRuntime.start(server)`; `await runtime.stop()` leaves pods running."""

    def __init__(self):
        self.managed = None
        self.cd = None
        self.client = None
        self.agent: Agent | None = None
        self.node_status = None
        self.tasks: list[asyncio.Task] = []
        self.node_name = ""

    @classmethod
    async def start(cls, server) -> "NodeRuntime":
        from shim.client import Client
        from shim.node import nodestatus
        from shim.node.containerd.client import Containerd
        from shim.node.containerd.managed import ManagedContainerd
        from shim.node.network.cni import CNI, pod_subnet
        s = server.settings
        rt = cls()
        if s.containerd:
            rt.cd = Containerd(s.containerd, "kubeshim")
        else:
            rt.managed = await ManagedContainerd(s.data_dir).astart()
            rt.cd = rt.managed.client()
        version = (await rt.cd.version()).get("version", "unknown")
        await import_image_dir(rt.cd, s.data_dir)
        facts = nodestatus.host_facts(s.data_dir)
        rt.node_name = (s.node_name or facts.hostname).lower()
        rt.client = Client.from_kubeconfig(server.kubeconfig)
        rt.node_status = nodestatus.NodeStatus(
            rt.client, nodestatus.NodeConfig(name=rt.node_name,
                                             runtime_version=f"containerd://{version}"), facts)
        subnet = s.pod_cidr or pod_subnet(s.cluster_cidr, 0)
        cni = CNI(s.data_dir, subnet=subnet, bridge=s.cni_bridge,
                  routes=[s.cluster_cidr, s.service_cidr])
        rt.agent = Agent(rt.client, rt.cd, node_name=rt.node_name, data_dir=s.data_dir, cni=cni,
                         host_ip=facts.internal_ip, insecure_registries=s.insecure_registries)
        install_log_handler(server.app, s.data_dir, lambda: {rt.node_name})
        rt.tasks = [asyncio.create_task(rt.node_status.run(), name="node-status"),
                    asyncio.create_task(rt._pod_cidr(subnet), name="node-pod-cidr"),
                    asyncio.create_task(rt.agent.run(), name="node-agent")]
        from shim.node.network.services import ServiceProxy      # services dataplane (nft)
        rt.proxy = ServiceProxy(rt.client, bridge=s.cni_bridge, service_cidr=s.service_cidr)
        rt.tasks.append(asyncio.create_task(rt.proxy.run(), name="service-proxy"))
        rt.agent.service_links = rt.proxy.link_env
        from shim.node.network import dns                        # cluster DNS
        rt.agent.cluster_dns = dns.cluster_dns_ip(s.service_cidr)
        rt.tasks.append(asyncio.create_task(dns.ClusterDNS(
            rt.client, listen_ip=cni.gateway, service_ip=rt.agent.cluster_dns).run(),
            name="cluster-dns"))
        return rt

    async def _pod_cidr(self, subnet: str) -> None:
        """spec.podCIDR(s) of the Node once it is registered (what node IPAM would set)."""
        while self.node_status.node is None:
            await asyncio.sleep(0.1)
        spec = self.node_status.node.get("spec") or {}
        if spec.get("podCIDR"):
            return
        try:
            await self.client.patch("nodes", self.node_name,
                                    {"spec": {"podCIDR": subnet, "podCIDRs": [subnet]}})
        except (StatusError, ConnectionError) as e:
            log.warning("setting podCIDR of node %s: %s", self.node_name, e)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if getattr(self, "proxy", None) is not None:
            await self.proxy.shutdown()
        if self.agent is not None:
            await self.agent.shutdown()
        if self.client is not None:
            await self.client.close()
        if self.cd is not None:
            await self.cd.close()
        if self.managed is not None:
            await self.managed.astop()


def install_log_handler(app, data_dir: str, node_names: Callable[[], set[str]]) -> None:
    """Serve pods/log from this node's files (other nodes keep the fallback answer)."""
    from shim.api import subresources
    app.subresource_handlers[("pods", "log")] = logs.LogHandler(
        data_dir, node_names, fallback=subresources.node_stream_unavailable)


async def import_image_dir(cd, data_dir: str) -> list[str]:
    """Import every OCI archive in <data-dir>/images (air-gapped start); returns the names."""
    d = os.path.join(os.path.abspath(data_dir), "images")
    names: list[str] = []
    if not os.path.isdir(d):
        return names
    for f in sorted(os.listdir(d)):
        if not f.endswith((".tar", ".tar.gz", ".tgz", ".oci")):
            continue
        try:
            names += [i.name for i in await cd.import_archive(os.path.join(d, f))]
        except Exception as e:
            log.warning("importing %s: %s", f, e)
    return names


async def images_command(settings, cmd: str, files: list[str]) -> int:
    """`kubeshim images import FILE...` / `kubeshim images ls` (prints like `ctr images ls`)."""
    from shim.node.containerd.client import Containerd
    from shim.node.containerd.managed import ManagedContainerd
    managed = None
    if settings.containerd:
        cd = Containerd(settings.containerd, "kubeshim")
    else:
        managed = ManagedContainerd(settings.data_dir)
        await managed.astart()
        cd = managed.client()
    try:
        if cmd == "import":
            for f in files:
                for info in await cd.import_archive(f):
                    print(f"imported {info.name} ({info.digest})")
            return 0
        rows = [("REF", "DIGEST", "SIZE")]
        for info in sorted(await cd.list_images(), key=lambda i: i.name):
            try:
                size = (await cd.image_config(info.name)).size
            except Exception:
                size = info.size
            rows.append((info.name, info.digest, _human(size)))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            print("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        return 0
    finally:
        await cd.close()
        if managed is not None and not managed.reused:
            await managed.astop()


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)
