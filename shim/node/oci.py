"""OCI runtime spec builder: the config.json a container runs with under runc.

Owns the defaults (the same as containerd's default Unix spec: mounts for /proc,
/dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, /run; pid/ipc/uts/mount/network
namespaces; the default capability set; RLIMIT_NOFILE 1024; masked and
read-only /proc paths) and the knobs the node agent turns: process args, env,
cwd, user, extra mounts, namespace paths (a pod's network namespace), cgroups
path, CPU/memory limits, rlimits, capabilities, hostname. Also the image-config
merge (Entrypoint/Cmd vs. a pod's command/args) and cgroup directory clean-up.
Specs are plain JSON-shaped dicts.
"""
from __future__ import annotations

import copy
import os
from typing import Iterable

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

DEFAULT_NAMESPACES = ("pid", "ipc", "uts", "mount", "network")

MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

CPU_PERIOD_US = 100_000          # the kubelet's CFS period
MIN_CPU_SHARES = 2
SHARES_PER_CPU = 1024
MIN_QUOTA_US = 1000

CGROUP_ROOT = "/sys/fs/cgroup"


def default_mounts() -> list[dict]:
    """containerd's default Linux mounts, in its order."""
    def m(dest, typ, src, *opts):
        return {"destination": dest, "type": typ, "source": src, "options": list(opts)}
    return [
        m("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        m("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        m("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666",
          "mode=0620", "gid=5"),
        m("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
        m("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        m("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        m("/run", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
    ]


def bind_mount(source: str, destination: str, *, readonly: bool = False,
               propagation: str = "rprivate") -> dict:
    """A bind mount of a host path (volumes, /etc/hosts, service-account tokens)."""
    opts = ["rbind", propagation, "ro" if readonly else "rw"]
    return {"destination": destination, "type": "bind", "source": source, "options": opts}


def capabilities(add: Iterable[str] = (), drop: Iterable[str] = (),
                 privileged: bool = False) -> dict:
    """The capability sets: the default set plus `add` minus `drop` (names with or without CAP_).

    `drop` may contain "ALL". Privileged containers get every capability the
    kernel knows (read from /proc/sys/kernel/cap_last_cap).
    """
    def norm(c: str) -> str:
        c = c.upper()
        return c if c.startswith("CAP_") or c == "ALL" else "CAP_" + c
    if privileged:
        caps = all_capabilities()
    else:
        dropped = {norm(c) for c in drop}
        caps = [] if "ALL" in dropped else [c for c in DEFAULT_CAPABILITIES if c not in dropped]
        for c in map(norm, add):
            if c == "ALL":
                caps = all_capabilities()
            elif c not in caps:
                caps.append(c)
    return {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)}


_CAP_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)


def all_capabilities() -> list[str]:
    """Every capability the running kernel supports, by number order."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = len(_CAP_NAMES) - 1
    return ["CAP_" + n for n in _CAP_NAMES[:last + 1]]


def cpu_shares(milli_cpu: int) -> int:
    """CPU request in millicores -> cgroup v1 cpu.shares (the kubelet's MilliCPUToShares)."""
    if milli_cpu <= 0:
        return MIN_CPU_SHARES
    return max(MIN_CPU_SHARES, milli_cpu * SHARES_PER_CPU // 1000)


def cpu_quota(milli_cpu: int, period: int = CPU_PERIOD_US) -> int:
    """CPU limit in millicores -> CFS quota in µs for `period` (the kubelet's MilliCPUToQuota)."""
    if milli_cpu <= 0:
        return 0
    return max(MIN_QUOTA_US, milli_cpu * period // 1000)


def resources(*, cpu_request_milli: int | None = None, cpu_limit_milli: int | None = None,
              memory_limit: int | None = None) -> dict:
    """linux.resources: the deny-all device rule plus CPU shares/quota and a memory limit (bytes)."""
    res: dict = {"devices": [{"allow": False, "access": "rwm"}]}
    cpu: dict = {}
    if cpu_request_milli is not None:
        cpu["shares"] = cpu_shares(cpu_request_milli)
    if cpu_limit_milli:
        cpu["quota"] = cpu_quota(cpu_limit_milli)
        cpu["period"] = CPU_PERIOD_US
    if cpu:
        res["cpu"] = cpu
    if memory_limit:
        res["memory"] = {"limit": int(memory_limit)}
    return res


def process(args: list[str], *, env: Iterable[str] | dict | None = None, cwd: str = "/",
            uid: int = 0, gid: int = 0, additional_gids: Iterable[int] = (),
            terminal: bool = False, caps: dict | None = None,
            rlimits: list[dict] | None = None, no_new_privileges: bool = True) -> dict:
    """An OCI `process` object (also the exec process spec). `env` is KEY=VALUE strings or a dict."""
    if not args:
        raise ValueError("process args must not be empty")
    return {
        "terminal": terminal,
        "user": {"uid": uid, "gid": gid,
                 **({"additionalGids": list(additional_gids)} if additional_gids else {})},
        "args": list(args),
        "env": env_list(env),
        "cwd": cwd or "/",
        "capabilities": caps if caps is not None else capabilities(),
        "rlimits": rlimits if rlimits is not None else [
            {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": no_new_privileges,
    }


def _env_items(env: Iterable[str] | dict | None) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()] if isinstance(env, dict) else list(env or ())


def env_list(*layers: Iterable[str] | dict | None) -> list[str]:
    """KEY=VALUE strings from layers of env (later layers and later keys win), with the
    default PATH first when no layer sets one."""
    merged: dict[str, str] = {}
    for layer in layers:
        for item in _env_items(layer):
            key = item.split("=", 1)[0]
            merged.pop(key, None)
            merged[key] = item
    if "PATH" not in merged:
        merged = {"PATH": DEFAULT_PATH_ENV, **merged}
    return list(merged.values())


def namespaces(paths: dict[str, str] | None = None,
               share_host: Iterable[str] = ()) -> list[dict]:
    """linux.namespaces: the default five; `paths` joins existing ones (e.g. {"network": netns}),
    `share_host` leaves some out (the container stays in the host's, e.g. hostNetwork)."""
    paths = paths or {}
    host = set(share_host)
    out = []
    for ns in DEFAULT_NAMESPACES:
        if ns in host:
            continue
        entry = {"type": ns}
        if paths.get(ns):
            entry["path"] = paths[ns]
        out.append(entry)
    return out


def build_spec(args: list[str], *, env: Iterable[str] | dict | None = None, cwd: str = "/",
               uid: int = 0, gid: int = 0, additional_gids: Iterable[int] = (),
               hostname: str = "", mounts: Iterable[dict] = (),
               namespace_paths: dict[str, str] | None = None, host_namespaces: Iterable[str] = (),
               cgroups_path: str = "", cpu_request_milli: int | None = None,
               cpu_limit_milli: int | None = None, memory_limit: int | None = None,
               rlimits: list[dict] | None = None, cap_add: Iterable[str] = (),
               cap_drop: Iterable[str] = (), privileged: bool = False, readonly_rootfs: bool = False,
               terminal: bool = False, annotations: dict[str, str] | None = None,
               sysctls: dict[str, str] | None = None) -> dict:
    """A complete OCI runtime spec (dict) for runc.

    Extra `mounts` replace default mounts with the same destination. The rootfs is
    `rootfs` inside the bundle, as containerd's shim expects.
    """
    caps = capabilities(cap_add, cap_drop, privileged)
    spec = {
        "ociVersion": OCI_VERSION,
        "process": process(args, env=env, cwd=cwd, uid=uid, gid=gid,
                           additional_gids=additional_gids, terminal=terminal, caps=caps,
                           rlimits=rlimits, no_new_privileges=not privileged),
        "root": {"path": "rootfs", "readonly": readonly_rootfs},
        "mounts": merge_mounts(default_mounts(), mounts),
        "linux": {
            "resources": resources(cpu_request_milli=cpu_request_milli,
                                   cpu_limit_milli=cpu_limit_milli, memory_limit=memory_limit),
            "namespaces": namespaces(namespace_paths, host_namespaces),
        },
    }
    if hostname:
        spec["hostname"] = hostname
    if cgroups_path:
        spec["linux"]["cgroupsPath"] = cgroups_path
    if not privileged:
        spec["linux"]["maskedPaths"] = list(MASKED_PATHS)
        spec["linux"]["readonlyPaths"] = list(READONLY_PATHS)
    if sysctls:
        spec["linux"]["sysctl"] = dict(sysctls)
    if annotations:
        spec["annotations"] = dict(annotations)
    return spec


def merge_mounts(base: list[dict], extra: Iterable[dict]) -> list[dict]:
    """`base` with `extra` appended; an extra mount replaces a base one at the same destination."""
    extra = [copy.deepcopy(m) for m in extra]
    taken = {os.path.normpath(m["destination"]) for m in extra}
    return [m for m in base if os.path.normpath(m["destination"]) not in taken] + extra


def exec_process(container_spec: dict, args: list[str], *, env: Iterable[str] | dict | None = None,
                 cwd: str | None = None, uid: int | None = None, gid: int | None = None,
                 terminal: bool = False) -> dict:
    """The process spec for an exec in a running container: the container's own process
    (user, env, capabilities, rlimits) with new args and optional overrides."""
    proc = copy.deepcopy(container_spec.get("process") or {})
    if not proc:
        proc = process(args)
    proc["args"] = list(args)
    proc["terminal"] = terminal
    if env is not None:
        proc["env"] = env_list(proc.get("env"), env)
    if cwd:
        proc["cwd"] = cwd
    if uid is not None:
        proc.setdefault("user", {})["uid"] = uid
    if gid is not None:
        proc.setdefault("user", {})["gid"] = gid
    return proc


def resolve_command(image_config: dict, command: list[str] | None,
                    args: list[str] | None) -> list[str]:
    """The argv the kubelet runs: a pod's command replaces the image Entrypoint (and drops its
    Cmd), a pod's args replace the image Cmd. `image_config` is the image config's `config`."""
    entrypoint = list(image_config.get("Entrypoint") or [])
    cmd = list(image_config.get("Cmd") or [])
    if command:
        return list(command) + list(args or [])
    if args:
        return entrypoint + list(args)
    return entrypoint + cmd


def image_env(image_config: dict, env: Iterable[str] | dict | None = None) -> list[str]:
    """The image's Env overlaid with the container's env (container wins)."""
    return env_list(image_config.get("Env"), env)


def parse_user(user: str) -> tuple[int | None, int | None]:
    """An image config `User` as numeric uid/gid (names need the rootfs' /etc/passwd: None)."""
    if not user:
        return 0, 0
    u, _, g = user.partition(":")
    uid = int(u) if u.isdigit() else None
    gid = int(g) if g.isdigit() else (None if g else (0 if uid is not None else None))
    return uid, gid


def cgroup_dirs(cgroups_path: str, root: str = CGROUP_ROOT) -> list[str]:
    """The directories of an absolute cgroupfs path in every mounted hierarchy (v1 and unified)."""
    rel = cgroups_path.strip("/")
    if not rel or not os.path.isdir(root):
        return []
    out = []
    for entry in sorted(os.listdir(root)):
        hier = os.path.join(root, entry)
        if os.path.isdir(hier) and not os.path.islink(hier):
            out.append(os.path.join(hier, rel))
    return out


def remove_cgroup(cgroups_path: str, keep_levels: int = 0, root: str = CGROUP_ROOT) -> None:
    """rmdir a cgroup and its parents up to `keep_levels` from the top, deepest first,
    in every hierarchy; missing or still-busy directories are left alone."""
    parts = cgroups_path.strip("/").split("/")
    for depth in range(len(parts), keep_levels, -1):
        for d in cgroup_dirs("/".join(parts[:depth]), root):
            try:
                os.rmdir(d)
            except OSError:
                pass
