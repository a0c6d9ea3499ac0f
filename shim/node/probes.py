"""Container probes (the kubelet's prober and prober manager) and lifecycle-hook handlers.

Owns:
- one probe run: exec (through a callback that execs in the container), httpGet (scheme,
  host, named or numeric port, path, headers, 2xx/3xx is success), tcpSocket, and grpc
  (grpc.health.v1.Health/Check) with timeoutSeconds, giving (result, output) with the
  kubelet's failure texts;
- `ProbeWorker`: one probe of one container instance: initialDelaySeconds from the
  container's start, every periodSeconds, successThreshold/failureThreshold turning raw
  results into the probe's result; Unhealthy events ("Liveness probe failed: …"); liveness
  and startup failures call back to kill the container;
- `ProbeManager`: the workers of one pod, started for running instances and stopped when
  they go, the `readiness` and `startup` maps that podstatus turns into the containers'
  ready/started flags (startup gates liveness and readiness);
- `run_handler`: a postStart/preStop handler (exec or httpGet) -> error text or "".
It never touches containerd or the API itself: the pod worker passes callbacks.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

log = logging.getLogger("shim.node.probes")

SUCCESS, FAILURE, UNKNOWN = "success", "failure", "unknown"
LIVENESS, READINESS, STARTUP = "Liveness", "Readiness", "Startup"
SPEC_KEYS = {LIVENESS: "livenessProbe", READINESS: "readinessProbe", STARTUP: "startupProbe"}
USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024

ExecFn = Callable[[str, list[str], float], Awaitable[tuple[int, str]]]  # (cid, argv, timeout)


def _i(v, default: int) -> int:
    try:
        return int(v) if v is not None else default
    except (TypeError, ValueError):
        return default


@dataclass
class Timing:
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: dict) -> "Timing":
        return cls(_i(probe.get("initialDelaySeconds"), 0), max(1, _i(probe.get("periodSeconds"), 10)),
                   max(1, _i(probe.get("timeoutSeconds"), 1)),
                   max(1, _i(probe.get("successThreshold"), 1)),
                   max(1, _i(probe.get("failureThreshold"), 3)))


def resolve_port(port, container: dict) -> int:
    """A probe port: a number, a numeric string, or the name of a containerPort."""
    if isinstance(port, int):
        return port
    s = str(port or "")
    if s.isdigit():
        return int(s)
    for p in container.get("ports") or []:
        if p.get("name") == s:
            return int(p.get("containerPort") or 0)
    raise ValueError(f"couldn't find port: {s} in {container.get('name', '')}")


def http_url(action: dict, container: dict, pod_ip: str) -> str:
    scheme = (action.get("scheme") or "HTTP").lower()
    host = action.get("host") or pod_ip
    port = resolve_port(action.get("port"), container)
    path = action.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{hostport}{path}"


def _go_dial_error(host: str, port: int, e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return f"dial tcp {host}:{port}: connect: connection refused"
    if isinstance(e, asyncio.TimeoutError):
        return f"dial tcp {host}:{port}: i/o timeout"
    return f"dial tcp {host}:{port}: {e}"


async def http_get(action: dict, container: dict, pod_ip: str, timeout: float) -> tuple[str, str]:
    import aiohttp
    url = http_url(action, container, pod_ip)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in action.get("httpHeaders") or []:
        headers[h.get("name", "")] = h.get("value", "")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ctx, force_close=True)) as s:
            async with s.get(url, headers=headers, allow_redirects=True,
                             timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                body = (await r.content.read(MAX_OUTPUT)).decode(errors="replace")
                if 200 <= r.status < 400:
                    return SUCCESS, body
                return FAILURE, f"HTTP probe failed with statuscode: {r.status}"
    except asyncio.TimeoutError:
        return FAILURE, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded ' \
                        f'while awaiting headers)'
    except aiohttp.ClientConnectorError as e:
        return FAILURE, f'Get "{url}": ' + _go_dial_error(e.host, e.port, e.os_error)
    except aiohttp.ClientError as e:
        return FAILURE, f'Get "{url}": {e}'


async def tcp_socket(action: dict, container: dict, pod_ip: str, timeout: float) -> tuple[str, str]:
    host = action.get("host") or pod_ip
    port = resolve_port(action.get("port"), container)
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        w.close()
        return SUCCESS, ""
    except (OSError, asyncio.TimeoutError) as e:
        return FAILURE, _go_dial_error(host, port, e)


_GRPC_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


async def grpc_health(action: dict, pod_ip: str, timeout: float) -> tuple[str, str]:
    """grpc.health.v1.Health/Check with hand-encoded messages (field 1: service / status)."""
    import grpc
    port = _i(action.get("port"), 0)
    service = (action.get("service") or "").encode()
    req = (b"\x0a" + bytes([len(service)]) + service) if service else b""
    target = f"{pod_ip}:{port}"
    try:
        async with grpc.aio.insecure_channel(target) as ch:
            call = ch.unary_unary("/grpc.health.v1.Health/Check",
                                  request_serializer=lambda b: b,
                                  response_deserializer=lambda b: b)
            resp = await call(req, timeout=timeout)
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return FAILURE, f"timeout: health rpc did not complete within {int(timeout)}s"
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            return FAILURE, f"timeout: failed to connect service \"{target}\" within " \
                            f"{int(timeout)}s: context deadline exceeded"
        return FAILURE, f"error: health rpc probe failed: {e.details()}"
    status = resp[1] if len(resp) >= 2 and resp[0] == 0x08 else 0
    if status == 1:
        return SUCCESS, ""
    return FAILURE, f'service unhealthy (responded with "{_GRPC_STATUS.get(status, status)}")'


async def run_probe(probe: dict, container: dict, cid: str, pod_ip: str,
                    exec_fn: ExecFn) -> tuple[str, str]:
    """One probe attempt -> (SUCCESS | FAILURE | UNKNOWN, output)."""
    timeout = float(Timing.of(probe).timeout)
    try:
        if probe.get("exec") is not None:
            argv = list((probe["exec"] or {}).get("command") or [])
            try:
                code, out = await exec_fn(cid, argv, timeout)
            except asyncio.TimeoutError:
                return FAILURE, f'command "{" ".join(argv)}" timed out'
            return (SUCCESS if code == 0 else FAILURE), out
        if probe.get("httpGet") is not None:
            return await http_get(probe["httpGet"], container, pod_ip, timeout)
        if probe.get("tcpSocket") is not None:
            return await tcp_socket(probe["tcpSocket"], container, pod_ip, timeout)
        if probe.get("grpc") is not None:
            return await grpc_health(probe["grpc"], pod_ip, timeout)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        return UNKNOWN, str(getattr(e, "message", e))
    return UNKNOWN, "missing probe handler"


async def run_handler(handler: dict, container: dict, cid: str, pod_ip: str, exec_fn: ExecFn,
                      timeout: float) -> str:
    """A lifecycle hook handler; "" on success, else the error text for the event."""
    if handler.get("exec") is not None:
        argv = list((handler["exec"] or {}).get("command") or [])
        try:
            code, out = await exec_fn(cid, argv, timeout)
        except asyncio.TimeoutError:
            return f'command "{" ".join(argv)}" timed out'
        if code != 0:
            return f"command '{' '.join(argv)}' exited with {code}: {out}"
        return ""
    if handler.get("httpGet") is not None:
        result, out = await http_get(handler["httpGet"], container, pod_ip, timeout)
        return "" if result == SUCCESS else out
    if handler.get("sleep") is not None:
        await asyncio.sleep(_i((handler["sleep"] or {}).get("seconds"), 0))
        return ""
    return "invalid handler"


class ProbeWorker:
    """One probe of one running container instance."""

    def __init__(self, manager: "ProbeManager", kind: str, container: dict, cid: str,
                 started_at: float):
        self.m = manager
        self.kind = kind
        self.container = container
        self.name = container.get("name", "")
        self.cid = cid
        self.started_at = started_at
        self.probe = container.get(SPEC_KEYS[kind]) or {}
        self.timing = Timing.of(self.probe)
        # the kubelet's initial results: readiness and startup fail, liveness succeeds
        self.result = kind == LIVENESS
        self.successes = 0
        self.failures = 0
        self.on_hold = False
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.loop(), name=f"probe-{self.kind}-{self.name}")

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def loop(self) -> None:
        try:
            wait = self.started_at + self.timing.initial_delay - self.m.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            while not self.on_hold:
                await self.once()
                await asyncio.sleep(self.timing.period)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("probe %s of %s", self.kind, self.name)

    def gated(self) -> bool:
        """Liveness and readiness wait until a startup probe has succeeded."""
        return self.kind != STARTUP and self.m.startup_pending(self.name, self.cid)

    async def once(self) -> None:
        if self.gated():
            return
        if self.kind == STARTUP and self.result:
            return                                      # started: nothing more to do
        raw, output = await run_probe(self.probe, self.container, self.cid, self.m.pod_ip(),
                                      self.m.exec_fn)
        if raw == UNKNOWN:                              # errors count as failures
            self.m.event("Warning", "Unhealthy", f"{self.kind} probe errored: {output}", self.name)
        elif raw == FAILURE:
            self.m.event("Warning", "Unhealthy", f"{self.kind} probe failed: {output}", self.name)
        self.record(raw == SUCCESS)

    def record(self, ok: bool) -> None:
        """Consecutive results against the thresholds; acts when the result flips."""
        if ok:
            self.successes += 1
            self.failures = 0
            if not self.result and self.successes >= self.timing.success_threshold:
                self.result = True
                self.m.changed()
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.timing.failure_threshold:
                if self.result:
                    self.result = False
                    self.m.changed()
                if self.kind in (LIVENESS, STARTUP):
                    self.on_hold = True                 # until the container is replaced
                    self.m.failed(self)


class ProbeManager:
    """The probe workers of one pod."""

    def __init__(self, *, exec_fn: ExecFn, pod_ip: Callable[[], str],
                 on_change: Callable[[], None],
                 on_failure: Callable[[str, str, str], Awaitable[None]],
                 event: Callable[[str, str, str, str], None],
                 clock: Callable[[], float] = time.time):
        self.exec_fn = exec_fn
        self.pod_ip = pod_ip
        self.on_change = on_change
        self.on_failure = on_failure          # (container name, cid, probe kind)
        self.event = event
        self.clock = clock
        self.workers: dict[tuple[str, str], ProbeWorker] = {}   # (cid, kind) -> worker
        self.current: dict[str, str] = {}                        # container name -> cid
        self._kills: set[asyncio.Task] = set()

    def sync(self, running: list[tuple[dict, str, float]]) -> None:
        """Workers for every probe of the running instances [(container spec, cid, started)];
        workers of instances that stopped running are stopped."""
        want = set()
        self.current = {}
        for c, cid, started in running:
            self.current[c.get("name", "")] = cid
            for kind, key in SPEC_KEYS.items():
                if not c.get(key):
                    continue
                want.add((cid, kind))
                if (cid, kind) not in self.workers:
                    w = self.workers[(cid, kind)] = ProbeWorker(self, kind, c, cid, started)
                    w.start()
        for key in [k for k in self.workers if k not in want]:
            self.workers.pop(key).stop()

    def stop_all(self) -> None:
        for w in self.workers.values():
            w.stop()
        self.workers.clear()
        self.current = {}
        for t in self._kills:
            t.cancel()

    def startup_pending(self, name: str, cid: str) -> bool:
        w = self.workers.get((cid, STARTUP))
        return w is not None and not w.result

    def _map(self, kind: str) -> dict[str, bool]:
        out = {}
        for name, cid in self.current.items():
            w = self.workers.get((cid, kind))
            if w is not None:
                out[name] = w.result
        return out

    def readiness(self) -> dict[str, bool]:
        """Containers with a readiness probe -> ready (False while startup is pending)."""
        out = self._map(READINESS)
        for name, cid in self.current.items():
            if name in out and self.startup_pending(name, cid):
                out[name] = False
        return out

    def startup(self) -> dict[str, bool]:
        return self._map(STARTUP)

    def changed(self) -> None:
        self.on_change()

    def failed(self, w: ProbeWorker) -> None:
        t = asyncio.get_running_loop().create_task(self.on_failure(w.name, w.cid, w.kind))
        self._kills.add(t)
        t.add_done_callback(self._kills.discard)
