"""Shared test fixtures: a real kubeshim server on a free port, kubectl binaries, the Python client."""
from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, ".tools")
KUBECTL_VERSIONS = ("1.32", "1.35", "1.20")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl_path(version: str = "1.32") -> str:
    p = os.path.join(TOOLS, f"kubectl-{version}", "kubectl")
    if not os.path.exists(p):
        raise RuntimeError(f"{p} missing: run `make tools` (make test does)")
    return p


def helm_path(version: str = "1.32") -> str:
    return os.path.join(TOOLS, f"kubectl-{version}", "helm")


class ServerProcess:
    """A `kubeshim server` child process with its own data dir and port."""

    def __init__(self, data_dir: str, port: int | None = None, extra_args: list[str] | None = None,
                 node: bool = False):
        self.node = node                      # True: run the node agent (containerd, CNI)
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(data_dir, "server.log")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.data_dir, "kubeconfig.yaml")

    def start(self, timeout: float = 20.0) -> "ServerProcess":
        os.makedirs(self.data_dir, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shim.cli", "server", "--data-dir", self.data_dir,
             "--port", str(self.port), *([] if self.node else ["--no-node"]), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> float:
        t0 = time.monotonic()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.read_log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"server not ready in {timeout}s: {self.read_log()[-3000:]}")

    def read_log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = ServerProcess(str(tmp_path_factory.mktemp("kubeshim")))
    s.start()
    yield s
    s.stop()


class Kubectl:
    def __init__(self, server: ServerProcess, version: str = "1.32", home: str | None = None):
        self.server = server
        self.version = version
        self.bin = kubectl_path(version)
        self.home = home

    def env(self) -> dict:
        env = dict(os.environ)
        env["KUBECONFIG"] = self.server.kubeconfig
        if self.home:
            env["HOME"] = self.home
        return env

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        p = subprocess.run([self.bin, *args], input=input, capture_output=True, text=True,
                           env=self.env(), timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n"
                                 f"{p.stdout}\n{p.stderr}")
        return p

    def __call__(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.bin, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env())


@pytest.fixture(scope="session")
def kubectl(server, tmp_path_factory):
    return Kubectl(server, "1.32", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="session", params=KUBECTL_VERSIONS)
def any_kubectl(request, server, tmp_path_factory):
    return Kubectl(server, request.param, str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="session")
def api_client(server):
    from kubernetes import client, config
    cfg = client.Configuration()
    config.load_kube_config(config_file=server.kubeconfig, client_configuration=cfg)
    return client.ApiClient(cfg)


@pytest.fixture(scope="session")
def core(api_client):
    from kubernetes import client
    return client.CoreV1Api(api_client)


_counter = [0]


@pytest.fixture
def ns(kubectl):
    """A fresh namespace per test."""
    _counter[0] += 1
    name = f"t{os.getpid() % 1000}-{_counter[0]}"
    kubectl("create", "namespace", name)
    # the namespace controller adds the default service account right away
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if kubectl.run("get", "sa", "default", "-n", name, check=False).returncode == 0:
            break
        time.sleep(0.02)
    return name


class Raw:
    """Plain HTTPS requests with the admin client certificate (for wire-level checks)."""

    def __init__(self, server: ServerProcess):
        pki = os.path.join(server.data_dir, "pki")
        self.ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        self.ctx.check_hostname = False
        self.server = server

    def __call__(self, method: str, path: str, body: bytes | str | None = None,
                 headers: dict | None = None, timeout: float = 10):
        import http.client
        import json as _json
        conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, context=self.ctx,
                                           timeout=timeout)
        if isinstance(body, str):
            body = body.encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        try:
            parsed = _json.loads(data)
        except ValueError:
            parsed = None
        return r.status, parsed, dict(r.getheaders()), data


@pytest.fixture(scope="session")
def raw(server):
    return Raw(server)


def _netns_names() -> set[str]:
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    except OSError:
        return set()
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_pod_netns():
    """Pods outlive the servers the tests stop (by design: they survive restarts), so their
    network namespaces would outlive the test run; remove the ones this session created."""
    before = _netns_names()
    yield
    for name in sorted(_netns_names() - before):
        if name.startswith("ks-"):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
