"""Fixtures for the node tests: a private containerd, local registries, a busybox image.

Everything runs as child processes under a short temporary directory (unix socket
paths are limited to 108 bytes) and is stopped by PID at the end of the session;
nothing touches /run/containerd's system instance or /var/lib/containerd.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt          # bcrypt hashes via libxcrypt; deprecated, still in Python 3.11/3.12

from shim.node.containerd.managed import ManagedContainerd
from tests.node.images import BuiltImage, build_archive

REGISTRY_USER = "kubeshim"
REGISTRY_PASSWORD = "s3cret-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """Debian's docker-registry (distribution 2.x) on 127.0.0.1, optionally with htpasswd."""

    def __init__(self, directory: str, auth: bool = False):
        self.dir = directory
        self.auth = auth
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> "Registry":
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        cfg = [
            "version: 0.1",
            "log: {level: warn}",
            "storage:",
            f"  filesystem: {{rootdirectory: {self.dir}/data}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: {self.host}",
        ]
        if self.auth:
            htpasswd = os.path.join(self.dir, "htpasswd")
            # bcrypt cost 4 ($2b$04$): cost 12 would take ~200 ms per request
            hashed = crypt.crypt(REGISTRY_PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
            with open(htpasswd, "w") as f:
                f.write(f"{REGISTRY_USER}:{hashed}\n")
            cfg += ["auth:", "  htpasswd:", "    realm: kubeshim-test", f"    path: {htpasswd}"]
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as f:
            f.write("\n".join(cfg) + "\n")
        log = open(os.path.join(self.dir, "registry.log"), "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=log,
                                     stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self            # 401 with auth: it answers
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"docker-registry exited: see {self.dir}/registry.log")
                time.sleep(0.02)
        raise TimeoutError("docker-registry did not answer")

    def push(self, archive: str, repo_tag: str) -> str:
        """skopeo copy an OCI archive to <host>/<repo_tag>; returns the pushed reference."""
        ref = f"{self.host}/{repo_tag}"
        cmd = ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
               f"oci-archive:{archive}", f"docker://{ref}"]
        if self.auth:
            cmd.insert(-2, f"--dest-creds={REGISTRY_USER}:{REGISTRY_PASSWORD}")
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return ref

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def node_tmp():
    d = tempfile.mkdtemp(prefix="ksn-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def managed(node_tmp):
    """A private containerd for the whole session (tests may restart it)."""
    m = ManagedContainerd(os.path.join(node_tmp, "data"))
    m.start()
    yield m
    _cleanup_namespace(m)
    m.stop()


def _cleanup_namespace(m: ManagedContainerd) -> None:
    """Remove whatever containers tests left behind, so their shims exit."""
    async def run():
        if not m.pid:
            m.start()
        async with m.client() as c:
            for info in await c.list_containers():
                await c.delete(info.id)
    try:
        asyncio.run(run())
    except Exception:
        pass


@pytest.fixture(scope="session")
def busybox_image(node_tmp) -> BuiltImage:
    return build_archive(os.path.join(node_tmp, "busybox.tar"))


@pytest.fixture(scope="session")
def registry(node_tmp):
    r = Registry(os.path.join(node_tmp, "registry")).start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def auth_registry(node_tmp):
    r = Registry(os.path.join(node_tmp, "registry-auth"), auth=True).start()
    yield r
    r.stop()
