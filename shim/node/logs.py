"""Container logs: writing them as CRI log files and serving the pods/log subresource.

Owns
- the on-disk layout: `<data-dir>/pods/<pod uid>/<container>/<restart>.log`, one file per
  container instance, rotated at a size cap into `<restart>.log.<UTC time>` (at most
  `max_files` files per instance), in the CRI format the kubelet reads:
  `<RFC3339Nano> <stdout|stderr> <F|P> <content>` (P marks a partial line: a line longer
  than 16 KiB, or the tail of the output without a newline);
- `LogWriter`: the reader of a container's stdout/stderr FIFOs (the containerd shim writes
  the raw bytes into them; a FIFO blocks the container once 64 KiB are unread, so the
  reader is an event-loop reader that keeps up) which time-stamps lines into the file;
- reading: tailLines, sinceSeconds/sinceTime, timestamps, limitBytes, and following a
  growing (rotating) file until the container has ended;
- the HTTP handler of GET .../pods/NAME/log with the kubelet's and apiserver's error texts
  (`a container name must be specified for pod x, choose one of: [a b]`,
  `container "c" in pod "p" is waiting to start: ContainerCreating`, ...).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import errno
import glob
import logging
import os
import stat
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable

log = logging.getLogger("shim.node.logs")

MAX_LINE = 16 * 1024                 # containerd's maxContainerLogLineSize
DEFAULT_MAX_SIZE = 10 * 1024 * 1024  # kubelet containerLogMaxSize 10Mi
DEFAULT_MAX_FILES = 5                # kubelet containerLogMaxFiles
FOLLOW_POLL = 0.1
DONE_SUFFIX = ".done"


# ---- layout ------------------------------------------------------------------------------

def pods_dir(data_dir: str) -> str:
    return os.path.join(os.path.abspath(data_dir), "pods")


def container_dir(data_dir: str, uid: str, container: str) -> str:
    return os.path.join(pods_dir(data_dir), uid, container)


def log_path(data_dir: str, uid: str, container: str, restart: int) -> str:
    return os.path.join(container_dir(data_dir, uid, container), f"{restart}.log")


def rotated_files(path: str) -> list[str]:
    """The rotated files of a log, oldest first (the names sort by time)."""
    return sorted(p for p in glob.glob(glob.escape(path) + ".*")
                  if not p.endswith((DONE_SUFFIX, ".fifo", ".tmp")) and "fifo" not in p)


# ---- time --------------------------------------------------------------------------------

def format_ts(t: float | int, ns: int | None = None) -> str:
    """RFC3339Nano with all nine digits (the kubelet's RFC3339NanoFixed)."""
    if ns is None:
        ns = int(round(t * 1e9))
    sec, frac = divmod(ns, 1_000_000_000)
    base = _dt.datetime.fromtimestamp(sec, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def parse_ts(s: str) -> float:
    """RFC3339 / RFC3339Nano (any number of fraction digits, Z or an offset) -> epoch seconds."""
    s = s.strip()
    frac = 0.0
    tz = "Z"
    if s.endswith("Z") or s.endswith("z"):
        main = s[:-1]
    else:
        main, tz = s[:-6], s[-6:]
    if "." in main:
        main, f = main.split(".", 1)
        frac = float("0." + f) if f else 0.0
    dt = _dt.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S")
    if tz in ("Z", "z"):
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    else:
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[4:6])
        dt = dt.replace(tzinfo=_dt.timezone(sign * _dt.timedelta(hours=hh, minutes=mm)))
    return dt.timestamp() + frac


# ---- CRI lines ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LogLine:
    timestamp: str          # as written (RFC3339Nano)
    stream: str             # stdout | stderr
    partial: bool
    content: bytes          # without the trailing newline

    @property
    def time(self) -> float:
        return parse_ts(self.timestamp)


def encode_line(ts: str, stream: str, content: bytes, partial: bool = False) -> bytes:
    return f"{ts} {stream} {'P' if partial else 'F'} ".encode() + content + b"\n"


def parse_line(raw: bytes) -> LogLine | None:
    """One CRI log line (with or without its newline); None when malformed."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    parts = raw.split(b" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tag = parts[0], parts[1], parts[2]
    content = parts[3] if len(parts) > 3 else b""
    if stream not in (b"stdout", b"stderr"):
        return None
    return LogLine(ts.decode(), stream.decode(), tag.startswith(b"P"), content)


def split_output(buf: bytes, final: bool = False) -> tuple[list[tuple[bytes, bool]], bytes]:
    """Cut raw output into (content, partial) records: full lines, and pieces of MAX_LINE for
    longer ones; the incomplete rest is returned (or, with final, emitted as partial)."""
    out: list[tuple[bytes, bool]] = []
    while True:
        i = buf.find(b"\n")
        if i < 0:
            break
        line, buf = buf[:i], buf[i + 1:]
        while len(line) > MAX_LINE:
            out.append((line[:MAX_LINE], True))
            line = line[MAX_LINE:]
        out.append((line, False))
    while len(buf) >= MAX_LINE:
        out.append((buf[:MAX_LINE], True))
        buf = buf[MAX_LINE:]
    if final and buf:
        out.append((buf, True))
        buf = b""
    return out, buf


# ---- writing -----------------------------------------------------------------------------

class LogFile:
    """An append-only CRI log file with size-capped rotation."""

    def __init__(self, path: str, *, max_size: int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES, clock: Callable[[], float] = time.time):
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.clock = clock
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, stream: str, records: list[tuple[bytes, bool]]) -> None:
        if not records or self.fd < 0:
            return
        ts = format_ts(self.clock())
        data = b"".join(encode_line(ts, stream, c, p) for c, p in records)
        os.write(self.fd, data)
        self.size += len(data)
        if self.size >= self.max_size:
            self.rotate()

    def rotate(self) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S.%f")
        os.rename(self.path, f"{self.path}.{stamp}")
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = 0
        old = rotated_files(self.path)
        for p in old[:max(0, len(old) - (self.max_files - 1))]:
            try:
                os.unlink(p)
            except OSError:
                pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def make_fifo(path: str) -> str:
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            os.unlink(path)
            os.mkfifo(path, 0o600)
    return path


class LogWriter:
    """Reads a container instance's stdout/stderr FIFOs into its CRI log file.

    `fifos()` creates `<log>.stdout.fifo` / `<log>.stderr.fifo`; `open()` opens their read
    ends (non-blocking, so before the shim has them); `start()` registers the event-loop
    readers (call it once the task exists: readiness only fires after a writer has come).
    `closed` is set when both streams reached EOF; then the log is complete and a
    `<log>.done` marker is written for followers.
    """

    def __init__(self, path: str, *, max_size: int = DEFAULT_MAX_SIZE,
                 max_files: int = DEFAULT_MAX_FILES, clock: Callable[[], float] = time.time):
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self.clock = clock
        self.file: LogFile | None = None
        self._fds: dict[str, int] = {}
        self._bufs: dict[str, bytes] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = asyncio.Event()

    def fifo_paths(self) -> tuple[str, str]:
        return self.path + ".stdout.fifo", self.path + ".stderr.fifo"

    def fifos(self) -> tuple[str, str]:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        out, err = self.fifo_paths()
        return make_fifo(out), make_fifo(err)

    def open(self) -> None:
        if self.file is None:
            self.file = LogFile(self.path, max_size=self.max_size, max_files=self.max_files,
                                clock=self.clock)
        for stream, p in zip(("stdout", "stderr"), self.fifo_paths()):
            if stream not in self._fds and os.path.exists(p):
                self._fds[stream] = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                self._bufs[stream] = b""

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self._fds:
            self._finish()
            return
        for stream, fd in list(self._fds.items()):
            self._loop.add_reader(fd, self._on_readable, stream)

    def _on_readable(self, stream: str) -> None:
        fd = self._fds.get(stream)
        if fd is None:
            return
        eof = False
        chunks = []
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                eof = True
                break
            if not data:
                eof = True
                break
            chunks.append(data)
            if len(chunks) >= 16:       # let other work run; the reader fires again
                break
        if chunks:
            records, self._bufs[stream] = split_output(self._bufs[stream] + b"".join(chunks))
            self._write(stream, records)
        if eof:
            self._close_stream(stream)

    def _write(self, stream: str, records) -> None:
        try:
            if self.file is not None:
                self.file.write(stream, records)
        except OSError as e:
            log.warning("writing %s: %s", self.path, e)

    def _close_stream(self, stream: str) -> None:
        fd = self._fds.pop(stream, None)
        if fd is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(fd)
        records, _ = split_output(self._bufs.pop(stream, b""), final=True)
        self._write(stream, records)
        os.close(fd)
        if not self._fds:
            self._finish()

    def _finish(self) -> None:
        if self.file is not None:
            self.file.close()
        for p in self.fifo_paths():
            try:
                os.unlink(p)
            except OSError:
                pass
        mark_done(self.path)
        self.closed.set()

    def close(self) -> None:
        """Stop reading (drain what is there first) and finish the log."""
        for stream in list(self._fds):
            self._on_readable(stream)
            self._close_stream(stream)
        if not self.closed.is_set():
            self._finish()

    def detach(self) -> None:
        """Stop reading without finishing (kubeshim shutting down: the container runs on
        and a later kubeshim re-opens the FIFOs)."""
        for stream, fd in list(self._fds.items()):
            if self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)
        self._fds.clear()
        if self.file is not None:
            self.file.close()


def mark_done(path: str) -> None:
    try:
        with open(path + DONE_SUFFIX, "w"):
            pass
    except OSError:
        pass


def is_done(path: str) -> bool:
    return os.path.exists(path + DONE_SUFFIX)


def termination_message_from_log(path: str, max_lines: int = 80, max_bytes: int = 2048) -> str:
    """FallbackToLogsOnError: the last lines of the log (at most 80 lines / 2 KiB)."""
    lines = read_lines([path])
    data = render(lines[-max_lines:], False)
    return data[-max_bytes:].decode(errors="replace")


# ---- reading -----------------------------------------------------------------------------

def read_lines(paths: list[str]) -> list[LogLine]:
    out = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                for raw in f:
                    ln = parse_line(raw)
                    if ln is not None:
                        out.append(ln)
        except OSError:
            continue
    return out


def render(lines: list[LogLine], timestamps: bool) -> bytes:
    """What the kubelet writes for these lines: content, a newline after full lines,
    prefixed by the timestamp when asked."""
    parts = []
    for ln in lines:
        if timestamps:
            parts.append(ln.timestamp.encode() + b" ")
        parts.append(ln.content)
        if not ln.partial:
            parts.append(b"\n")
    return b"".join(parts)


@dataclass
class LogOptions:
    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: float | None = None
    limit_bytes: int | None = None

    def since(self, now: float) -> float | None:
        if self.since_time is not None:
            return self.since_time
        if self.since_seconds is not None:
            return now - self.since_seconds
        return None


def select(lines: list[LogLine], opts: LogOptions, now: float) -> list[LogLine]:
    """Apply sinceSeconds/sinceTime then tailLines (tail counts full lines)."""
    since = opts.since(now)
    if since is not None:
        lines = [ln for ln in lines if _time_or(ln) >= since]
    if opts.tail_lines is not None:
        if opts.tail_lines == 0:
            return []
        full = 0
        start = len(lines)
        for i in range(len(lines) - 1, -1, -1):
            if not lines[i].partial:
                full += 1
                if full > opts.tail_lines:
                    break
            start = i
        lines = lines[start:]
    return lines


def _time_or(ln: LogLine) -> float:
    try:
        return ln.time
    except ValueError:
        return 0.0


def read_log(path: str, opts: LogOptions, now: float | None = None) -> bytes:
    """The whole answer for a non-following request."""
    now = time.time() if now is None else now
    lines = select(read_lines(rotated_files(path) + [path]), opts, now)
    data = render(lines, opts.timestamps)
    if opts.limit_bytes is not None:
        data = data[:opts.limit_bytes]
    return data


async def follow_log(path: str, opts: LogOptions, *, ended: Callable[[], bool] | None = None,
                     poll: float = FOLLOW_POLL) -> AsyncIterator[bytes]:
    """The existing (selected) output, then new lines as they are written, until the log is
    done (the container's streams closed) or `ended()` says the container is gone."""
    first = read_log(path, LogOptions(**{**opts.__dict__, "limit_bytes": None}))
    sent = 0
    limit = opts.limit_bytes

    def cut(data: bytes) -> bytes:
        nonlocal sent
        if limit is not None:
            data = data[:max(0, limit - sent)]
        sent += len(data)
        return data

    if first:
        yield cut(first)
    if limit is not None and sent >= limit:
        return
    since = opts.since(time.time())
    try:
        f = open(path, "rb")
    except OSError:
        return
    try:
        f.seek(0, os.SEEK_END)
        ino = os.fstat(f.fileno()).st_ino
        pending = b""
        while True:
            chunk = f.read()
            if not chunk:
                if _rotated(path, ino):
                    f.close()
                    f = open(path, "rb")
                    ino = os.fstat(f.fileno()).st_ino
                    continue
                finished = is_done(path) or not os.path.exists(path) or \
                    (ended is not None and ended())
                if finished:
                    chunk = f.read()          # a last drain after the end was seen
                if not chunk:
                    if finished:
                        return
                    await asyncio.sleep(poll)
                    continue
            pending += chunk
            lines_raw = pending.split(b"\n")
            pending = lines_raw.pop()
            lines = [ln for ln in map(parse_line, lines_raw) if ln is not None]
            if since is not None:
                lines = [ln for ln in lines if _time_or(ln) >= since]
            data = render(lines, opts.timestamps)
            if data:
                yield cut(data)
                if limit is not None and sent >= limit:
                    return
    finally:
        f.close()


def _rotated(path: str, ino: int) -> bool:
    try:
        return os.stat(path).st_ino != ino
    except OSError:
        return False


# ---- the pods/log subresource ------------------------------------------------------------

def _int(query: dict, key: str) -> int | None:
    from shim.api import errors
    v = query.get(key)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except ValueError:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{v}": invalid syntax') from None


def _bool(query: dict, key: str) -> bool:
    return (query.get(key) or "").lower() in ("1", "true", "t")


def parse_options(query: dict, name: str) -> LogOptions:
    """PodLogOptions from the query, validated like the apiserver (ValidatePodLogOptions)."""
    from shim.api import errors
    opts = LogOptions(container=query.get("container", ""), follow=_bool(query, "follow"),
                      previous=_bool(query, "previous"), timestamps=_bool(query, "timestamps"),
                      tail_lines=_int(query, "tailLines"), since_seconds=_int(query, "sinceSeconds"),
                      limit_bytes=_int(query, "limitBytes"))
    if query.get("sinceTime"):
        try:
            opts.since_time = parse_ts(query["sinceTime"])
        except (ValueError, IndexError):
            raise errors.bad_request(f'parsing time "{query["sinceTime"]}" as '
                                     f'"2006-01-02T15:04:05Z07:00": cannot parse') from None
    errs = []
    if opts.tail_lines is not None and opts.tail_lines < 0:
        errs.append(errors.invalid_value("tailLines", opts.tail_lines,
                                         "must be greater than or equal to 0"))
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        errs.append(errors.invalid_value("limitBytes", opts.limit_bytes, "must be greater than 0"))
    if opts.since_seconds is not None and opts.since_time is not None:
        errs.append(errors.forbidden_field("", "at most one of `sinceTime` or `sinceSeconds` "
                                           "may be specified"))
    if opts.since_seconds is not None and opts.since_seconds < 1:
        errs.append(errors.invalid_value("sinceSeconds", opts.since_seconds,
                                         "must be greater than 0"))
    if errs:
        raise errors.invalid("PodLogOptions", name, errs)
    return opts


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def choose_container(pod: dict, name: str, container: str) -> str:
    """The container a log request is about (LogLocation's rules and messages)."""
    from shim.api import errors
    spec = pod.get("spec") or {}
    regular = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not container:
        if len(regular) == 1:
            return regular[0]
        if not regular:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        msg = f"a container name must be specified for pod {name}, choose one of: {_go_list(regular)}"
        if init:
            msg += f" or one of the init containers: {_go_list(init)}"
        if ephemeral:
            msg += f" or one of the ephemeral containers: {_go_list(ephemeral)}"
        raise errors.bad_request(msg)
    if container not in regular + init + ephemeral:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


def container_id_for_logs(pod: dict, container: str, previous: bool) -> str:
    """validateContainerLogStatus: the runtime container id whose log is wanted, or a
    BadRequest with the kubelet's message."""
    from shim.api import errors
    name = (pod.get("metadata") or {}).get("name", "")
    st = pod.get("status") or {}
    cs = None
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        cs = next((s for s in st.get(key) or [] if s.get("name") == container), None)
        if cs is not None:
            break
    if cs is None:
        raise errors.bad_request(f'container "{container}" in pod "{name}" is not available')
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated")
    running, terminated, waiting = state.get("running"), state.get("terminated"), state.get("waiting")
    if previous:
        if not last or not last.get("containerID"):
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found')
        return last["containerID"]
    if running is not None:
        return cs.get("containerID", "")
    if terminated is not None:
        if terminated.get("containerID"):
            return terminated["containerID"]
        if last and last.get("containerID"):
            return last["containerID"]
        raise errors.bad_request(f'container "{container}" in pod "{name}" is terminated')
    if last is not None:
        if not last.get("containerID"):
            raise errors.bad_request(f'container "{container}" in pod "{name}" is terminated')
        return last["containerID"]
    if waiting is not None:
        reason = waiting.get("reason", "")
        if reason == "ErrImagePull":
            why = "image can't be pulled"
        elif reason == "ImagePullBackOff":
            why = "trying and failing to pull image"
        else:
            why = reason
        raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: '
                                 f'{why}')
    raise errors.bad_request(
        f'container "{container}" in pod "{name}" is waiting to start - no logs yet')


def restart_of(container_id: str) -> int | None:
    """The restart count a kubeshim container id ends with (`…-<restart>`)."""
    tail = container_id.rsplit("://", 1)[-1].rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


class LogHandler:
    """GET pods/NAME/log for pods on this node, reading the files directly; pods of other
    nodes go to `fallback` (the node_stream_unavailable answer, or a simulated node)."""

    def __init__(self, data_dir: str, node_names: Callable[[], set[str]], fallback=None):
        self.data_dir = data_dir
        self.node_names = node_names
        self.fallback = fallback

    async def __call__(self, app, req, send, res, ns, name, extra):
        from shim.api import errors
        if req.method != "GET":
            raise app.method_not_allowed()
        pod = (await app.rest.get(res, ns, name)).obj
        opts = parse_options(req.query, name)
        container = choose_container(pod, name, opts.container)
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return await _send_text(send, b"")
        if node not in self.node_names():
            if self.fallback is not None:
                return await self.fallback(app, req, send, res, ns, name, extra)
            raise errors.StatusError(503, "ServiceUnavailable",
                                     f'no node agent is serving node "{node}"')
        cid = container_id_for_logs(pod, container, opts.previous)
        restart = restart_of(cid)
        uid = pod["metadata"]["uid"]
        path = log_path(self.data_dir, uid, container, restart if restart is not None else 0)
        if not os.path.exists(path):
            return await _send_text(send, b"")
        if not opts.follow:
            data = await asyncio.to_thread(read_log, path, opts)
            return await _send_text(send, data)
        await self._follow(app, req, send, res, ns, name, path, cid, opts)

    async def _follow(self, app, req, send, res, ns, name, path, cid, opts):
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/plain")]})
        gone = asyncio.Event()

        async def watch_disconnect():
            while (await req.receive())["type"] != "http.disconnect":
                pass
            gone.set()

        dtask = asyncio.create_task(watch_disconnect())
        try:
            async for chunk in follow_log(path, opts, ended=gone.is_set):
                if gone.is_set():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            pass
        finally:
            dtask.cancel()
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception:
                pass


async def _send_text(send, data: bytes) -> None:
    from shim.api.app import respond
    await respond(send, 200, data, b"text/plain")
