"""A containerd child process that kubeshim owns (as k3s does).

Owns the private instance's layout under `<data-dir>/containerd` (config.toml,
root/, state/, the gRPC, ttrpc and debug sockets, runc's root, the log and a pid
file), starting Debian's `containerd` with the CRI plugin disabled, waiting
until it answers, re-using an instance already serving the socket (so running
pods survive a kubeshim restart: containers live in their shims, not in
containerd), and stopping it (SIGTERM, then SIGKILL).
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import grpc

from shim.node.containerd import version_pb2_grpc
from google.protobuf import empty_pb2

UNIX_PATH_MAX = 107
DISABLED_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.internal.v1.opt",       # would create /opt/containerd
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
)


def probe(socket_path: str, timeout: float = 0.5) -> bool:
    """Whether a containerd answers Version on this socket."""
    if not os.path.exists(socket_path):
        return False
    with grpc.insecure_channel(f"unix://{socket_path}") as ch:
        try:
            version_pb2_grpc.VersionStub(ch).Version(empty_pb2.Empty(), timeout=timeout)
            return True
        except grpc.RpcError:
            return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ManagedContainerd:
    """containerd under `<data_dir>/containerd`; `socket` is what clients dial."""

    def __init__(self, data_dir: str, *, binary: str = "containerd", log_level: str = "info",
                 stop_timeout: float = 10.0):
        self.dir = os.path.join(os.path.abspath(data_dir), "containerd")
        self.binary = binary
        self.log_level = log_level
        self.stop_timeout = stop_timeout
        self.socket = os.path.join(self.dir, "containerd.sock")
        self.ttrpc_socket = self.socket + ".ttrpc"
        self.debug_socket = os.path.join(self.dir, "debug.sock")
        self.root = os.path.join(self.dir, "root")
        self.state = os.path.join(self.dir, "state")
        self.runc_root = os.path.join(self.dir, "runc")
        self.config_path = os.path.join(self.dir, "config.toml")
        self.log_path = os.path.join(self.dir, "containerd.log")
        self.pid_path = os.path.join(self.dir, "containerd.pid")
        self.pid: int | None = None
        self.reused = False
        self._proc: subprocess.Popen | None = None
        if len(self.ttrpc_socket) > UNIX_PATH_MAX:
            raise ValueError(f"data dir too long for a unix socket path: {self.ttrpc_socket}")

    # ---- config ---------------------------------------------------------------------------

    def config(self) -> str:
        """The config.toml (version 2) of the private instance."""
        disabled = ", ".join(f'"{p}"' for p in DISABLED_PLUGINS)
        return (
            "version = 2\n"
            f'root = "{self.root}"\n'
            f'state = "{self.state}"\n'
            f"disabled_plugins = [{disabled}]\n"
            "oom_score = -999\n\n"
            "[grpc]\n"
            f'  address = "{self.socket}"\n\n'
            "[ttrpc]\n"
            f'  address = "{self.ttrpc_socket}"\n\n'
            "[debug]\n"
            f'  address = "{self.debug_socket}"\n'
            f'  level = "{self.log_level}"\n\n'
            "[metrics]\n"
            '  address = ""\n'
        )

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> "ManagedContainerd":
        """Start (or re-use) the instance and return once it answers. Blocking; see `astart`."""
        if probe(self.socket):
            self.reused = True
            self.pid = self._read_pid()
            return self
        os.makedirs(self.dir, mode=0o711, exist_ok=True)
        os.makedirs(self.runc_root, mode=0o711, exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(self.config())
        for stale in (self.socket, self.ttrpc_socket, self.debug_socket):
            if os.path.exists(stale):
                os.unlink(stale)
        log = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(
                [self.binary, "--config", self.config_path], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True, close_fds=True)
        finally:
            log.close()
        self.pid = self._proc.pid
        self.reused = False
        with open(self.pid_path, "w") as f:
            f.write(str(self.pid))
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"containerd exited with {self._proc.returncode}; "
                                   f"see {self.log_path}: {self._log_tail()}")
            if probe(self.socket, timeout=1.0):
                return
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        raise TimeoutError(f"containerd did not answer on {self.socket} within {timeout}s")

    def _log_tail(self, n: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _read_pid(self) -> int | None:
        """The pid from the pid file, if that process is still a containerd."""
        try:
            with open(self.pid_path) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if self.config_path.encode() in cmd else None

    def stop(self) -> None:
        """SIGTERM the instance (ours or the re-used one from the pid file), SIGKILL after
        `stop_timeout`. Running containers keep running in their shims."""
        pid = self.pid
        if pid is None or not _alive(pid):
            self._reap()
            return
        os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, self.stop_timeout):
            os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 5.0)
        self._reap()
        self.pid = None

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.pid == pid:
                if self._proc.poll() is not None:
                    return True
            elif not _alive(pid):
                return True
            time.sleep(0.01)
        return False

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None

    async def astart(self, timeout: float = 15.0) -> "ManagedContainerd":
        """`start` without blocking the event loop."""
        return await asyncio.to_thread(self.start, timeout)

    async def astop(self) -> None:
        """`stop` without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    def client(self, namespace: str = "kubeshim"):
        """A `Containerd` client for this instance, with runc's root under the data dir."""
        from shim.node.containerd.client import Containerd
        return Containerd(self.socket, namespace, runc_root=self.runc_root)
