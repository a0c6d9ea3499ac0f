"""API server benchmark: kubeshim against a framework floor measured in the same run.

Run: .venv/bin/python bench/api.py [--quick] [--profile DIR]   (full ~1.5 min, --quick ~35 s)

Method
- Floor: bench/floor_app.py, a bare ASGI app on the SAME stack as kubeshim (uvicorn +
  httptools + uvloop, TLS with an ECDSA P-256 cert from shim.certs, CERT_OPTIONAL, one
  worker). Its GET body is the exact bytes kubeshim returns for the benchmark pod.
- Load: wrk (Debian package `wrk`), 1 thread, 16 keep-alive connections, a warm-up
  first, then ROUNDS rounds in which floor and kubeshim run back to back (paired), so
  drift on this noisy 2-core machine hits both; we quote medians of the rounds and the
  median of the per-round ratios. POST bodies (unique pod names) come from a generated
  Lua script whose done() prints requests, duration and p50/p99. wrk cannot present a
  client certificate: fine while the server does not enforce authentication.
- Start-to-ready: Popen to the first 200 on /readyz (polled every 5 ms), median of
  starts on fresh data dirs and on one existing data dir; the floor's start is shown
  as the interpreter+uvicorn baseline.
- Idle RSS: VmRSS from /proc/<pid>/status after start and a few requests.
- Watch fan-out: one asyncio (uvloop) process opens N raw TLS keep-alive connections
  (admin client cert) with GET .../configmaps?watch=true&resourceVersion=<current>,
  then creates configmaps one at a time; per write, latency = time from sending the
  POST until the LAST watcher has read the event. The same client against the floor
  app (which broadcasts each POSTed body to its open watches) gives the client+stack
  floor for this number. It runs before the throughput part, on a near-empty store.

Targets: GET >= 50 % of floor req/s; create >= 25 % of floor req/s; start-to-ready
<= 1 s; idle RSS <= 80 MB; fan-out p99 <= 100 ms with 1,000 watches.
This is a report, never an assertion: exit status is 0 whenever the run completed.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter

import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
CONNS = 16
POD_NAME = "bench-get"
NS = "default"

TARGETS = {"get_ratio": 0.50, "create_ratio": 0.25, "start_s": 1.0, "rss_mb": 80.0,
           "fanout_p99_ms": 100.0}


# ---- small helpers -----------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, math.ceil(p / 100.0 * len(s)) - 1)
    return s[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """VmRSS of a process in MiB (NaN if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def typical_pod(name: str) -> dict:
    """A pod like a small deployment's: labels, one container with ports, env, resources, probe."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"app": "web", "tier": "frontend", "bench": "kubeshim"},
                     "annotations": {"bench.kubeshim.io/purpose": "api benchmark"}},
        "spec": {
            "containers": [{
                "name": "web", "image": "nginx:1.27",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "bench"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"cpu": "500m", "memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 5},
            }],
            "restartPolicy": "Always",
        },
    }


def insecure_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_ctx(data_dir: str) -> ssl.SSLContext:
    """Verify the server with the data dir's CA and present the admin client certificate."""
    pki = os.path.join(data_dir, "pki")
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    return ctx


def http(url: str, method: str = "GET", body: bytes | None = None, timeout: float = 10.0):
    """One blocking HTTPS request; returns (status, body bytes)."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json",
                                          "Authorization": f"Bearer {BENCH_TOKEN}"})
    try:
        with urllib.request.urlopen(req, context=insecure_ctx(), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ---- processes ---------------------------------------------------------------------------

class Proc:
    """A server child process (kubeshim or the floor) that answers 200 on /readyz when up."""

    def __init__(self, argv: list[str], data_dir: str, port: int):
        self.argv = argv
        self.data_dir = data_dir
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(data_dir, "bench-server.log")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> float:
        """Spawn and wait for /readyz 200; returns seconds from spawn to ready."""
        os.makedirs(self.data_dir, exist_ok=True)
        ctx = insecure_ctx()
        log = open(self.log_path, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        log.close()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"not ready in {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 1500) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


BENCH_TOKEN = "kubeshim-bench-token"


def kubeshim_proc(data_dir: str, port: int | None = None) -> Proc:
    """kubeshim with a static token in system:masters: wrk cannot present client certificates."""
    port = port or free_port()
    os.makedirs(data_dir, exist_ok=True)
    tokens = os.path.join(data_dir, "bench-tokens.csv")
    with open(tokens, "w") as f:
        f.write(f'{BENCH_TOKEN},bench,bench-uid,"system:masters"\n')
    return Proc([PY, "-m", "shim.cli", "server", "--data-dir", data_dir, "--port", str(port),
                 "--no-node", "--token-auth-file", tokens], data_dir, port)


def floor_proc(data_dir: str, body_file: str | None, port: int | None = None) -> Proc:
    port = port or free_port()
    argv = [PY, os.path.join(ROOT, "bench", "floor_app.py"), "--port", str(port),
            "--data-dir", data_dir]
    if body_file:
        argv += ["--body", body_file]
    return Proc(argv, data_dir, port)


# ---- wrk ---------------------------------------------------------------------------------

LUA_DONE = r'''
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %.0f %.0f %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), e.status, e.connect,
    e.read, e.write, e.timeout))
end
'''

LUA_POST = r'''
local before = [==[%s]==]
local after = [==[%s]==]
local run = "r"
local counter = 0
local nthreads = 0
tid = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer kubeshim-bench-token"
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end
function init(args)
  run = args[1] or "r"
end
function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, before .. run .. "-" .. tid .. "-" .. counter .. after)
end
'''

LUA_GET = r'''
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer kubeshim-bench-token"
'''


def write_lua(path: str, post: bool) -> str:
    if post:
        marker = "@@NAME@@"
        body = orjson.dumps(typical_pod(marker)).decode()
        before, after = body.split(marker)
        before += "bench-"
        text = LUA_POST % (before, after) + LUA_DONE
    else:
        text = LUA_GET + LUA_DONE
    with open(path, "w") as f:
        f.write(text)
    return path


def parse_wrk(out: str) -> dict:
    """The BENCH line printed by the Lua done() -> rps, p50/p99 in ms, error counts."""
    for line in out.splitlines():
        if line.startswith("BENCH "):
            req, dur, p50, p99, status, conn, rd, wr, to = (float(x) for x in line.split()[1:])
            return {"requests": int(req), "rps": req / (dur / 1e6) if dur else 0.0,
                    "p50_ms": p50 / 1000.0, "p99_ms": p99 / 1000.0, "non2xx": int(status),
                    "sock_errors": int(conn + rd + wr + to)}
    raise RuntimeError(f"wrk gave no result line:\n{out[-800:]}")


def run_wrk(url: str, script: str, seconds: float, args: list[str] | None = None) -> dict:
    cmd = ["wrk", "-t1", f"-c{CONNS}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
           "-s", script, url]
    if args:
        cmd += ["--", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr[-500:]}")
    return parse_wrk(p.stdout)


# ---- watch fan-out client ----------------------------------------------------------------

async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response (content-length or chunked) from a keep-alive stream."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        return status, await reader.readexactly(int(hdrs["content-length"]))
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return status, b"".join(parts)
            parts.append(data[:-2])
    return status, b""


NAME_RE = re.compile(rb'"name":"(fan-[^"]+)"')


class FanoutTracker:
    """Counts, per write name, how many watchers have seen it and when the last one did."""

    def __init__(self, watchers: int):
        self.watchers = watchers
        self.seen: Counter = Counter()
        self.first: dict[bytes, float] = {}
        self.done: dict[bytes, asyncio.Event] = {}
        self.last: dict[bytes, float] = {}

    def expect(self, name: bytes) -> asyncio.Event:
        ev = self.done[name] = asyncio.Event()
        return ev

    def arrived(self, name: bytes, t: float) -> None:
        n = self.seen[name] + 1
        self.seen[name] = n
        if n == 1:
            self.first[name] = t
        if n == self.watchers:
            self.last[name] = t
            ev = self.done.get(name)
            if ev is not None:
                ev.set()


class WatchProtocol(asyncio.Protocol):
    """One watch stream: sends the GET, checks the status, de-chunks, reports event names.

    A Protocol rather than a StreamReader task keeps the client's per-event cost low, so
    the fan-out number is the server's, not this process's (the floor run shows the rest).
    """

    def __init__(self, request: bytes, tracker: FanoutTracker, established: asyncio.Future):
        self.request = request
        self.tracker = tracker
        self.established = established
        self.buf = b""
        self.head_done = False
        self.need = -1          # bytes of chunk data still to read; -1: expecting a size line
        self.line = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.head_done:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                self.buf = buf
                return
            status = buf[:buf.find(b"\r\n")]
            self.head_done = True
            if not self.established.done():
                if b" 200" in status:
                    self.established.set_result(True)
                else:
                    self.established.set_exception(RuntimeError(f"watch answered {buf[:300]!r}"))
            buf = buf[i + 4:]
        pos, n = 0, len(buf)
        while pos < n:
            if self.need < 0:
                j = buf.find(b"\r\n", pos)
                if j < 0:
                    break
                self.need = int(buf[pos:j].split(b";")[0], 16) + 2   # data + CRLF
                pos = j + 2
                continue
            take = min(self.need, n - pos)
            self.feed(buf[pos:pos + take])
            self.need -= take
            pos += take
            if self.need == 0:
                self.need = -1
        self.buf = buf[pos:]

    def feed(self, data: bytes) -> None:
        """Chunk payload (the CRLF after each chunk is harmless: lines end at \\n)."""
        line = self.line + data if self.line else data
        while True:
            i = line.find(b"\n")
            if i < 0:
                break
            m = NAME_RE.search(line, 0, i)
            if m:
                self.tracker.arrived(m.group(1), time.perf_counter())
            line = line[i + 1:]
        self.line = line

    def connection_lost(self, exc) -> None:
        if not self.established.done():
            self.established.set_exception(RuntimeError(f"watch connection lost: {exc}"))


async def open_watch(loop, host: str, port: int, ctx, path: str, tracker: FanoutTracker,
                     sem: asyncio.Semaphore, transports: list) -> None:
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
           f"Accept: application/json\r\nUser-Agent: kubeshim-bench\r\n\r\n").encode()
    est = loop.create_future()
    async with sem:
        tr, _ = await loop.create_connection(lambda: WatchProtocol(req, tracker, est),
                                             host, port, ssl=ctx)
        transports.append(tr)
        await asyncio.wait_for(est, 30)


async def fanout_run(url: str, ctx: ssl.SSLContext, n_watch: int, n_writes: int,
                     run_id: str) -> dict:
    host, port = url.split("//")[1].split(":")
    port = int(port)
    # one keep-alive connection for the list and the writes
    r, w = await asyncio.open_connection(host, port, ssl=ctx)
    base = f"/api/v1/namespaces/{NS}/configmaps"

    async def call(method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        w.write(f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                .encode() + body)
        return await read_response(r)

    st, body = await call("GET", base)
    if st != 200:
        raise RuntimeError(f"list configmaps: {st} {body[:200]!r}")
    rv = orjson.loads(body).get("metadata", {}).get("resourceVersion", "0")
    tracker = FanoutTracker(n_watch)
    sem = asyncio.Semaphore(64)
    transports: list = []
    wpath = f"{base}?watch=true&resourceVersion={rv}"
    loop = asyncio.get_running_loop()
    t_open = time.perf_counter()
    opened = await asyncio.gather(*(open_watch(loop, host, port, ctx, wpath, tracker, sem, transports)
                                    for _ in range(n_watch)), return_exceptions=True)
    open_s = time.perf_counter() - t_open
    failed = [x for x in opened if isinstance(x, BaseException)]
    if failed:
        for tr in transports:
            tr.abort()
        raise RuntimeError(f"{len(failed)}/{n_watch} watches failed to open: {failed[0]!r}")
    lat, first, write_ms, missed = [], [], [], 0
    try:
        for i in range(n_writes + 1):          # write 0 is a warm-up, not counted
            name = f"fan-{run_id}-{i}"
            ev = tracker.expect(name.encode())
            cm = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": name, "namespace": NS},
                               "data": {"k": "v" * 64}})
            t0 = time.perf_counter()
            st, body = await call("POST", base, cm)
            t_resp = time.perf_counter()
            if st != 201:
                raise RuntimeError(f"create configmap: {st} {body[:200]!r}")
            try:
                await asyncio.wait_for(ev.wait(), 10)
            except asyncio.TimeoutError:
                missed += 1
                continue
            if i:
                lat.append((tracker.last[name.encode()] - t0) * 1000)
                first.append((tracker.first[name.encode()] - t0) * 1000)
                write_ms.append((t_resp - t0) * 1000)
            await asyncio.sleep(0.02)
    finally:
        for tr in transports:
            tr.abort()
        w.transport.abort()
    return {"watches": n_watch, "open_s": open_s, "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99), "max_ms": max(lat) if lat else float("nan"),
            "first_p50_ms": percentile(first, 50), "write_p50_ms": percentile(write_ms, 50),
            "writes": len(lat), "missed": missed}


def fanout(url: str, ctx: ssl.SSLContext, n_watch: int, n_writes: int) -> dict:
    import uvloop
    return uvloop.run(fanout_run(url, ctx, n_watch, n_writes, uuid.uuid4().hex[:6]))


# ---- profiling (optional) ----------------------------------------------------------------

def start_profile(pid: int, out: str, seconds: float) -> subprocess.Popen | None:
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(PY), "py-spy")
    if not os.path.exists(spy):
        print("  (py-spy not found: pip install py-spy to profile)")
        return None
    return subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(max(1, int(seconds))),
                             "-r", "250", "-f", "raw", "-o", out, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: str, top: int = 12) -> list[str]:
    """py-spy raw (collapsed) stacks -> printable lines: top self time by line, top
    inclusive time by function among kubeshim's own frames (shares of all samples)."""
    self_t: Counter = Counter()
    incl: Counter = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            if not stack or not n.isdigit():
                continue
            n = int(n)
            total += n
            frames = [_frame(fr) for fr in stack.split(";")]
            self_t[frames[-1][1]] += n
            for fn in {fr[0] for fr in frames}:
                incl[fn] += n
    if not total:
        return ["  (no samples)"]
    out = [f"  {total} samples; self time (C code is charged to the calling line):"]
    out += [f"    {100 * n / total:5.1f}%  {fr}" for fr, n in self_t.most_common(top)]
    out.append("  inclusive, shim/ functions:")
    mine = [(fr, n) for fr, n in incl.most_common() if "(shim/" in fr and "cli.py" not in fr
            and "server.py" not in fr]
    out += [f"    {100 * n / total:5.1f}%  {fr}" for fr, n in mine[:top]]
    return out


def _frame(frame: str) -> tuple[str, str]:
    """'fn (path:line)' -> ('fn (short path)', 'fn (short path:line)')."""
    m = re.match(r"(.*?) \((.*?)(?::(\d+))?\)$", frame)
    if not m:
        return frame, frame
    fn, loc, line = m.groups()
    for cut in ("/site-packages/", ROOT + "/", "/lib/python3.11/"):
        if cut in loc:
            loc = loc.split(cut, 1)[1]
    return f"{fn} ({loc})", f"{fn} ({loc}:{line})" if line else f"{fn} ({loc})"


# ---- the benchmark -----------------------------------------------------------------------

class Bench:
    def __init__(self, quick: bool, profile_dir: str | None):
        self.quick = quick
        self.profile_dir = profile_dir
        self.rounds = 2 if quick else 5
        self.seconds = 2 if quick else 3
        self.warm = 1 if quick else 2
        self.starts = 3 if quick else 5
        self.n_watch = 1000
        self.n_writes = 10 if quick else 20
        self.tmp = tempfile.mkdtemp(prefix="kubeshim-bench-")
        self.results: dict = {}
        self.errors: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self.shim: Proc | None = None
        self.floor: Proc | None = None

    def say(self, msg: str) -> None:
        print(msg, flush=True)

    def section(self, key: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as e:  # a report, not a test: note it and go on
            self.errors[key] = f"{type(e).__name__}: {e}"
            self.say(f"  ! {key}: {self.errors[key][:600]}")
        self.timings[key] = time.perf_counter() - t0

    # -- setup
    def start_servers(self) -> None:
        self.shim = kubeshim_proc(os.path.join(self.tmp, "shim"))
        self.results["first_start_s"] = self.shim.start()
        self.say(f"  kubeshim up on {self.shim.url} (first start {self.results['first_start_s']:.2f} s)")
        st, body = http(f"{self.shim.url}/api/v1/namespaces/{NS}/pods", "POST",
                        orjson.dumps(typical_pod(POD_NAME)))
        if st not in (201, 409):
            raise RuntimeError(f"create {POD_NAME}: {st} {body[:300]!r}")
        for path in ("/api", "/apis", "/api/v1", f"/api/v1/namespaces/{NS}/pods",
                     f"/api/v1/namespaces/{NS}/configmaps"):
            http(self.shim.url + path)
        st, body = http(self.pod_url())
        if st != 200:
            raise RuntimeError(f"GET {POD_NAME}: {st} {body[:300]!r}")
        self.pod_body = body
        time.sleep(0.5)
        self.results["rss_mb"] = rss_mb(self.shim.pid)

    def start_floor(self) -> None:
        body_file = None
        if getattr(self, "pod_body", None):
            body_file = os.path.join(self.tmp, "pod.json")
            with open(body_file, "wb") as f:
                f.write(self.pod_body)
        self.floor = floor_proc(os.path.join(self.tmp, "floor"), body_file)
        self.floor.start()
        http(self.floor.url + "/x")
        time.sleep(0.3)
        self.results["floor_rss_mb"] = rss_mb(self.floor.pid)
        st, body = http(self.floor.url + "/api/v1/namespaces/default/pods/x")
        self.results["body_bytes"] = len(body)
        self.say(f"  floor up on {self.floor.url}; GET body {len(body)} bytes")

    def stop_servers(self) -> None:
        for p in (self.shim, self.floor):
            if p:
                p.stop()

    def pod_url(self, base: str | None = None) -> str:
        return f"{base or self.shim.url}/api/v1/namespaces/{NS}/pods/{POD_NAME}"

    # -- throughput
    def throughput(self) -> None:
        get_lua = write_lua(os.path.join(self.tmp, "get.lua"), post=False)
        post_lua = write_lua(os.path.join(self.tmp, "post.lua"), post=True)
        run = uuid.uuid4().hex[:6]
        plan = [("floor_get", lambda: self.pod_url(self.floor.url), get_lua),
                ("shim_get", lambda: self.pod_url(), get_lua),
                ("floor_post", lambda: f"{self.floor.url}/api/v1/namespaces/{NS}/pods", post_lua),
                ("shim_post", lambda: f"{self.shim.url}/api/v1/namespaces/{NS}/pods", post_lua)]
        if self.shim is None:
            plan = [p for p in plan if p[0].startswith("floor")]
        for key, url, lua in plan:      # warm-up
            res = run_wrk(url(), lua, self.warm, [f"{run}w"])
            if key == "shim_post":
                self.results["pods_created"] = res["requests"]
        for r in range(self.rounds):
            for key, url, lua in plan:
                prof = None
                if self.profile_dir and r == self.rounds - 1 and key.startswith("shim"):
                    prof = start_profile(self.shim.pid, os.path.join(self.profile_dir, f"{key}.txt"),
                                         self.seconds)
                res = run_wrk(url(), lua, self.seconds, [f"{run}{r}"])
                if prof:
                    prof.wait(30)
                self.results.setdefault(key, []).append(res)
                if key == "shim_post":
                    self.results["pods_created"] += res["requests"]
                bad = f" non2xx={res['non2xx']}" if res["non2xx"] else ""
                bad += f" sockerr={res['sock_errors']}" if res["sock_errors"] else ""
                self.say(f"  round {r + 1} {key:10s} {res['rps']:8.0f} req/s  p50 {res['p50_ms']:6.2f} ms"
                         f"  p99 {res['p99_ms']:6.2f} ms{bad}")

    # -- start-to-ready
    def start_to_ready(self) -> None:
        fresh, existing, floor = [], [], []
        for i in range(self.starts):
            p = kubeshim_proc(os.path.join(self.tmp, f"fresh{i}"))
            fresh.append(p.start())
            p.stop()
        shared = os.path.join(self.tmp, "existing")
        p = kubeshim_proc(shared)
        p.start()               # creates the data dir; not counted
        p.stop()
        for _ in range(self.starts):
            p = kubeshim_proc(shared)
            existing.append(p.start())
            p.stop()
        for _ in range(3):
            p = floor_proc(os.path.join(self.tmp, "floor"), None)
            floor.append(p.start())
            p.stop()
        self.results.update(start_fresh=fresh, start_existing=existing, start_floor=floor)
        self.say("  start fresh    " + " ".join(f"{x:.2f}" for x in fresh) + " s")
        self.say("  start existing " + " ".join(f"{x:.2f}" for x in existing) + " s")
        self.say("  start floor    " + " ".join(f"{x:.2f}" for x in floor) + " s")

    # -- watch fan-out
    def fanout(self, key: str, proc: Proc) -> None:
        res = fanout(proc.url, client_ctx(proc.data_dir), self.n_watch, self.n_writes)
        self.results[key] = res
        self.say(f"  {key}: {res['watches']} watches opened in {res['open_s']:.2f} s; "
                 f"all-received p50 {res['p50_ms']:.1f} ms p99 {res['p99_ms']:.1f} ms "
                 f"(first watcher p50 {res['first_p50_ms']:.1f} ms, write p50 "
                 f"{res['write_p50_ms']:.1f} ms, missed {res['missed']})")

    def run(self) -> None:
        t0 = time.perf_counter()
        self.say(f"kubeshim API benchmark ({'quick' if self.quick else 'full'}; {os.cpu_count()} cpus; "
                 f"wrk -t1 -c{CONNS}, {self.rounds} x {self.seconds}s rounds)")
        try:
            self.section("kubeshim start", self.start_servers)
            if "kubeshim start" in self.errors:
                self.shim = None
            self.section("floor start", self.start_floor)
            if "floor start" in self.errors:
                return
            # fan-out first, while kubeshim's store holds only the bootstrap objects
            self.section("fanout floor", lambda: self.fanout("fanout_floor", self.floor))
            if self.shim:
                self.section("fanout kubeshim", lambda: self.fanout("fanout_shim", self.shim))
            self.section("throughput", self.throughput)
            if self.shim:
                self.results["rss_after_load_mb"] = rss_mb(self.shim.pid)
        finally:
            self.section("stop servers", self.stop_servers)
        self.section("start-to-ready", self.start_to_ready)
        self.report()
        if self.profile_dir:
            for key in ("shim_get", "shim_post"):
                path = os.path.join(self.profile_dir, f"{key}.txt")
                if os.path.exists(path):
                    self.say(f"\nprofile {key} ({path}):")
                    for line in summarize_profile(path):
                        self.say(line)
        spent = ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items())
        self.say(f"\n(total {time.perf_counter() - t0:.0f} s: {spent})")

    # -- report
    def agg(self, key: str) -> dict | None:
        runs = self.results.get(key)
        if not runs:
            return None
        return {"rps": median([x["rps"] for x in runs]), "p50_ms": median([x["p50_ms"] for x in runs]),
                "p99_ms": median([x["p99_ms"] for x in runs]),
                "non2xx": sum(x["non2xx"] for x in runs)}

    def ratio(self, key: str, floor_key: str) -> float:
        a, b = self.results.get(key) or [], self.results.get(floor_key) or []
        return median([x["rps"] / y["rps"] for x, y in zip(a, b) if y["rps"]])

    def report(self) -> None:
        rows = []

        def row(name, value, target="", ok=None):
            verdict = "" if ok is None else ("PASS" if ok else "MISS")
            rows.append((name, value, target, verdict))

        def tput(a):
            if a is None:
                return "n/a"
            s = f"{a['rps']:,.0f} req/s  p50 {a['p50_ms']:.2f} ms  p99 {a['p99_ms']:.2f} ms"
            return s + (f"  ({a['non2xx']} non-2xx!)" if a["non2xx"] else "")

        fg, fp = self.agg("floor_get"), self.agg("floor_post")
        row("1. floor GET (fixed body)", tput(fg))
        row("   floor POST (reads body)", tput(fp))
        sg, sp = self.agg("shim_get"), self.agg("shim_post")
        gr, cr = self.ratio("shim_get", "floor_get"), self.ratio("shim_post", "floor_get")
        row("2. kubeshim GET pod", tput(sg))
        row("   GET / floor GET", _pct(gr), ">= 50 %", None if sg is None else gr >= TARGETS["get_ratio"])
        row("3. kubeshim create pod", tput(sp))
        row("   create / floor GET", _pct(cr), ">= 25 %",
            None if sp is None else cr >= TARGETS["create_ratio"])
        row("   create / floor POST", _pct(self.ratio("shim_post", "floor_post")), "(info)")
        fresh, existing = self.results.get("start_fresh"), self.results.get("start_existing")
        for label, vals in (("4. start-to-ready, fresh dir", fresh),
                            ("   start-to-ready, existing dir", existing)):
            m = median(vals or [])
            row(label, f"median {m:.2f} s (n={len(vals or [])}, max {max(vals or [math.nan]):.2f})",
                "<= 1 s", None if not vals else m <= TARGETS["start_s"])
        if self.results.get("start_floor"):
            row("   start-to-ready, floor app", f"median {median(self.results['start_floor']):.2f} s",
                "(baseline)")
        rss = self.results.get("rss_mb")
        extra = (f"floor {self.results.get('floor_rss_mb', math.nan):.1f} MB, "
                 f"after load {self.results.get('rss_after_load_mb', math.nan):.1f} MB with "
                 f"{self.results.get('pods_created', 0)} pods")
        row("5. idle RSS", "n/a" if rss is None else f"{rss:.1f} MB ({extra})",
            "<= 80 MB", None if rss is None else rss <= TARGETS["rss_mb"])
        for label, key, target in (("6. watch fan-out, floor", "fanout_floor", False),
                                   ("   watch fan-out, kubeshim", "fanout_shim", True)):
            f = self.results.get(key)
            val = "n/a" if not f else (f"{f['watches']} watches: p50 {f['p50_ms']:.1f} ms  p99 "
                                       f"{f['p99_ms']:.1f} ms  ({f['writes']} writes, "
                                       f"{f['missed']} missed)")
            if target:
                ok = None if not f else (f["p99_ms"] <= TARGETS["fanout_p99_ms"] and not f["missed"])
                row(label, val, "p99 <= 100 ms", ok)
            else:
                row(label, val, "(baseline)")
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        w2 = max(len(r[2]) for r in rows)
        self.say("\n" + "metric".ljust(w0) + "  " + "value (medians)".ljust(w1) + "  " +
                 "target".ljust(w2) + "  result")
        self.say("-" * (w0 + w1 + w2 + 14))
        for r in rows:
            self.say(f"{r[0].ljust(w0)}  {r[1].ljust(w1)}  {r[2].ljust(w2)}  {r[3]}")
        for k, v in self.errors.items():
            self.say(f"ERROR {k}: {v[:400]}")
        self.say("notes: wrk authenticates with a static system:masters bearer token; "
                 "ratios are medians of per-round paired ratios.")


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.0f} %"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a ~30 s run (1 round, fewer starts/writes)")
    p.add_argument("--profile", metavar="DIR", default=None,
                   help="py-spy the kubeshim GET/create runs into DIR and print hot spots")
    p.add_argument("--keep", action="store_true", help="keep the temporary work dir")
    a = p.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass
    if a.profile:
        os.makedirs(a.profile, exist_ok=True)
    b = Bench(a.quick, a.profile)
    try:
        b.run()
    finally:
        if not a.keep:
            shutil.rmtree(b.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
