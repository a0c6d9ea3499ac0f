"""pods/exec, pods/attach and pods/portforward over channel WebSockets (the node side).

What this module owns:
- `install(app, server)`: the App's WebSocket route (`extra_routes["websocket"]`);
- `StreamHandler`: parses `/api/v1/namespaces/NS/pods/NAME/{exec,attach,portforward}`,
  authenticates and authorizes like an HTTP request (verb `create` on the subresource), checks
  the pod and container, refuses with a Status JSON answer, else accepts the WebSocket;
- `ExecSession`: runs a process in the pod's container through containerd's Exec with FIFOs
  for stdio, pumps channels 0/1/2, applies resize (4) and the v5 stdin close, writes the exit
  Status on channel 3;
- attach: follows the container's CRI log file from its current end (stdout/stderr); stdin
  of the container's main process is not connected (the agent starts containers without stdin);
- port-forward (plain channel WebSockets, Python client): one TCP connection to the pod IP per
  requested port, data channel 2i / error channel 2i+1, each opened by a port header frame;
- port-forward for kubectl 1.30+ (`SPDY/3.1+portforward.k8s.io`: SPDY in binary frames, see
  shim/api/spdy.py): one TCP connection per (error, data) stream pair sharing a requestID;
- `StreamHandler.http`: the same subresources over plain HTTP (kubectl's SPDY POST fallback):
  the same refusals (missing pod/container, ...), else 400 - SPDY upgrades of the HTTP
  connection itself (kubectl 1.20 exec/attach/port-forward) are not served.

Framing lives in shim/api/wsstream.py. The node agent is found via `server.node.agent`
(in-process single node).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
from urllib.parse import parse_qs

from shim.api import errors, spdy, wsstream
from shim.api.errors import StatusError
from shim.api.requestinfo import RequestInfo
from shim.api.wsstream import CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT, Channels

log = logging.getLogger("shim.node.streams")

SUBRESOURCES = ("exec", "attach", "portforward")
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_ids = itertools.count(1)


def install(app, server) -> None:
    """Route pod stream WebSockets on `app` to a StreamHandler bound to `server`, and answer
    the plain-HTTP (SPDY) form of the same subresources with the same checks."""
    handler = StreamHandler(app, server)
    app.extra_routes["websocket"] = handler
    for sub in SUBRESOURCES:
        app.subresource_handlers[("pods", sub)] = handler.http


def parse_path(path: str) -> tuple[str, str, str] | None:
    """(namespace, pod, subresource) of a pod stream path, else None."""
    p = [x for x in path.split("/") if x]
    if len(p) == 7 and p[:3] == ["api", "v1", "namespaces"] and p[4] == "pods" \
            and p[6] in SUBRESOURCES:
        return p[3], p[5], p[6]
    return None


class StreamOptions:
    """The query of an exec/attach/portforward request (Go-style booleans)."""

    def __init__(self, query: str):
        q = parse_qs(query, keep_blank_values=True)
        self.command: list[str] = q.get("command", [])
        self.container: str = (q.get("container") or [""])[0]
        self.stdin = _flag(q, "stdin")
        self.stdout = _flag(q, "stdout")
        self.stderr = _flag(q, "stderr")
        self.tty = _flag(q, "tty")
        ports: list[str] = []
        for v in q.get("ports", []) + q.get("port", []):
            ports += [x for x in v.split(",") if x]
        self.ports = ports


def _flag(q: dict, name: str) -> bool:
    return (q.get(name) or [""])[0] in _TRUE


def pick_container(pod: dict, requested: str) -> str:
    """The container a stream targets; StatusError with the apiserver's messages otherwise."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not requested:
        if len(names) == 1:
            return names[0]
        msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        if inits:
            msg += f" or one of the init containers: [{' '.join(inits)}]"
        raise errors.bad_request(msg)
    if requested not in names + inits + ephemeral:
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def check_pod_phase(pod: dict) -> None:
    phase = (pod.get("status") or {}).get("phase", "")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(
            f"cannot exec into a container in a completed pod; current phase is {phase}")


class StreamHandler:
    """The App's websocket hook: async (scope, receive, send)."""

    def __init__(self, app, server):
        self.app = app
        self.server = server

    async def __call__(self, scope, receive, send):
        target = parse_path(scope.get("path", ""))
        if target is None:
            await Channels.reject(send, 404, errors.StatusError(
                404, "NotFound", "the server could not find the requested resource").status())
            return
        ns, name, sub = target
        opts = StreamOptions(scope.get("query_string", b"").decode("latin-1"))
        supported = wsstream.PORTFORWARD_PROTOCOLS if sub == "portforward" \
            else wsstream.REMOTECOMMAND_PROTOCOLS
        protocol = wsstream.negotiate(wsstream.offered_protocols(scope.get("headers")), supported)
        try:
            await self._authorize(scope, ns, name, sub)
            pod = (await self.app.rest.get(self.app.registry.get("", "v1", "pods"), ns, name)).obj
            if protocol is None:
                raise errors.bad_request("unable to upgrade connection: no supported subprotocol")
            if sub == "portforward":
                prepared = self._prepare_portforward(pod, opts, protocol != wsstream.SPDY_TUNNEL)
            else:
                prepared = self._prepare_remote_command(pod, sub, opts)
        except StatusError as e:
            await Channels.reject(send, e.code, e.status())
            return
        conn = Channels(receive, send, protocol)
        await conn.accept()
        try:
            if sub == "portforward" and protocol == wsstream.SPDY_TUNNEL:
                await SpdyPortForwardSession(conn, pod, prepared[0]).run()
            elif sub == "portforward":
                await PortForwardSession(conn, *prepared).run()
            elif sub == "exec":
                await ExecSession(conn, opts, *prepared).run()
            else:
                await AttachSession(conn, opts, *prepared).run()
        except Exception as e:          # never leave a stream hanging on an internal error
            log.exception("%s %s/%s", sub, ns, name)
            await self._fail(conn, f"{type(e).__name__}: {e}")
        finally:
            await conn.close()

    async def http(self, app, req, send, res, ns, name, extra):
        """pods/{exec,attach,portforward} without a WebSocket (a SPDY upgrade or a plain
        request): the same refusals as the WebSocket path; SPDY itself is not served."""
        sub = req.path.rstrip("/").rsplit("/", 1)[-1]
        opts = StreamOptions(req.scope.get("query_string", b"").decode("latin-1"))
        pod = (await app.rest.get(res, ns, name)).obj
        if sub == "portforward":
            self._prepare_portforward(pod, opts)
        else:
            self._prepare_remote_command(pod, sub, opts)
        raise errors.bad_request("Upgrade request required")

    async def _fail(self, conn: Channels, message: str) -> None:
        if conn.protocol not in ("portforward.k8s.io", wsstream.SPDY_TUNNEL):
            await conn.send(ERROR, wsstream.error_channel_payload(
                wsstream.failure_status(message), conn.protocol))

    async def _authorize(self, scope, ns: str, name: str, sub: str) -> None:
        app = self.app
        user = None
        if app.authenticator is not None:
            user = await app.authenticator.authenticate_scope(scope)
        if app.authorizer is not None:
            info = RequestInfo(True, scope.get("path", ""), "create", "", "v1", ns, "pods", sub,
                               name)
            await app.authorizer(user, info)

    def _agent(self, pod: dict):
        node = getattr(self.server, "node", None)
        agent = getattr(node, "agent", None)
        node_name = (pod.get("spec") or {}).get("nodeName", "")
        if not node_name:
            raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
        if agent is None or agent.node_name != node_name:
            raise StatusError(503, "ServiceUnavailable",
                              f'no node agent is serving node "{node_name}"')
        return agent

    def _prepare_remote_command(self, pod: dict, sub: str, opts: StreamOptions):
        container = pick_container(pod, opts.container)
        if sub == "exec" and not opts.command:
            raise errors.bad_request("you must specify at least 1 command")
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        check_pod_phase(pod)
        agent = self._agent(pod)
        worker = agent.workers.get(pod["metadata"]["uid"])
        inst = worker.latest(container) if worker is not None else None
        if inst is None or inst.state != "running":
            raise StatusError(500, "InternalError",
                              f'unable to upgrade connection: container not found ("{container}")')
        return agent, worker, inst

    def _prepare_portforward(self, pod: dict, opts: StreamOptions, need_ports: bool = False):
        ports = []
        for p in opts.ports:
            if not p.isdigit() or not 0 < int(p) < 65536:
                raise errors.bad_request(f'invalid port "{p}"' if not p.isdigit()
                                         else f"port {p} must be > 0 and < 65536")
            ports.append(int(p))
        if not ports and need_ports:
            raise errors.bad_request("query parameter \"port\" is required")
        self._agent(pod)
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            raise errors.bad_request(
                f"unable to forward port because pod is not running. Current status="
                f"{(pod.get('status') or {}).get('phase', 'Pending')}")
        return ip, ports


# ---- FIFO plumbing -----------------------------------------------------------------------------

async def _wait_fd(fd: int, writable: bool = False) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def ready():
        if not fut.done():
            fut.set_result(None)
    (loop.add_writer if writable else loop.add_reader)(fd, ready)
    try:
        await fut
    finally:
        (loop.remove_writer if writable else loop.remove_reader)(fd)


async def read_fd(fd: int, size: int = 65536) -> bytes:
    """Read what is there (b"" at EOF) from a non-blocking fd."""
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            await _wait_fd(fd)


async def write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            await _wait_fd(fd, writable=True)


class ExecSession:
    """One exec: containerd Exec with FIFO stdio, pumped to and from the WebSocket."""

    def __init__(self, conn: Channels, opts: StreamOptions, agent, worker, inst):
        self.conn = conn
        self.opts = opts
        self.cd = agent.cd
        self.cid = inst.id
        self.exec_id = f"exec-{os.getpid()}-{next(_ids)}"
        self.dir = os.path.join(agent.data_dir, "streams", self.exec_id)
        self.fds: dict[str, int] = {}
        self.stdin_open = False

    def _fifos(self) -> dict[str, str]:
        os.makedirs(self.dir, exist_ok=True)
        paths = {}
        o = self.opts
        wanted = {"stdin": o.stdin, "stdout": o.stdout or o.tty,
                  "stderr": o.stderr and not o.tty}
        for name, on in wanted.items():
            if not on:
                continue
            p = os.path.join(self.dir, name)
            os.mkfifo(p, 0o600)
            paths[name] = p
            if name == "stdin":           # RDWR: no ENXIO while the shim has not opened it
                self.fds[name] = os.open(p, os.O_RDWR | os.O_NONBLOCK)
            else:                          # reader first, so the shim's writer can open
                self.fds[name] = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        return paths

    async def run(self) -> None:
        paths = self._fifos()
        try:
            await self.cd.exec(self.cid, self.exec_id, self.opts.command,
                               stdin=paths.get("stdin", ""), stdout=paths.get("stdout", ""),
                               stderr=paths.get("stderr", ""), terminal=self.opts.tty)
        except Exception as e:
            self._close_fds()
            shutil.rmtree(self.dir, ignore_errors=True)
            msg = str(getattr(e, "message", e))
            await self.conn.send(ERROR, wsstream.error_channel_payload(
                wsstream.failure_status(msg), self.conn.protocol))
            return
        self.stdin_open = "stdin" in self.fds
        pumps = [asyncio.create_task(self._pump_out(n, ch)) for n, ch in
                 (("stdout", STDOUT), ("stderr", STDERR)) if n in self.fds]
        inbound = asyncio.create_task(self._pump_in())
        waiter = asyncio.create_task(self.cd.wait(self.cid, self.exec_id))
        try:
            done, _ = await asyncio.wait({waiter, inbound}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:            # client gone: what containerd's CRI does
                await self.cd.kill(self.cid, 9, exec_id=self.exec_id)
                await waiter
                return
            status = waiter.result()
            # drain the output the process left (a background child may hold it: bounded)
            if pumps:
                await asyncio.wait(pumps, timeout=5)
            code = status.code
            st = wsstream.success_status() if code == 0 else \
                wsstream.exit_code_status(code, self.opts.command)
            await self.conn.send(ERROR, wsstream.error_channel_payload(st, self.conn.protocol))
        finally:
            for t in pumps + [inbound, waiter]:
                t.cancel()
            await asyncio.gather(*pumps, inbound, waiter, return_exceptions=True)
            self._close_fds()
            try:
                await self.cd.delete_process(self.cid, self.exec_id)
            except Exception as e:
                log.debug("delete_process %s: %s", self.exec_id, e)
            shutil.rmtree(self.dir, ignore_errors=True)

    async def _pump_out(self, name: str, channel: int) -> None:
        fd = self.fds[name]
        while True:
            data = await read_fd(fd)
            if not data:
                return
            if not await self.conn.send(channel, data):
                return

    async def _pump_in(self) -> None:
        """Client frames until it disconnects: stdin data, resize, v5 close of stdin."""
        while True:
            frame = await self.conn.receive()
            if frame is None:
                return
            ch, data = frame
            if ch == STDIN and self.stdin_open:
                if data:
                    await write_fd(self.fds["stdin"], data)
            elif ch == RESIZE and self.opts.tty:
                size = wsstream.parse_resize(data)
                if size:
                    try:
                        await self.cd.resize_pty(self.cid, size[0], size[1], self.exec_id)
                    except Exception as e:
                        log.debug("resize %s: %s", self.exec_id, e)
            elif ch == CLOSE and data[:1] == bytes([STDIN]) and self.stdin_open:
                await self._close_stdin()

    async def _close_stdin(self) -> None:
        self.stdin_open = False
        fd = self.fds.pop("stdin", None)
        if fd is not None:
            os.close(fd)
        try:
            await self.cd.close_stdin(self.cid, self.exec_id)
        except Exception as e:
            log.debug("close stdin %s: %s", self.exec_id, e)

    def _close_fds(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


class AttachSession:
    """Attach: the container's output as it is written to its log file, until it exits or
    the client leaves. Stdin is accepted and discarded (not connected; see module doc)."""

    POLL = 0.1

    def __init__(self, conn: Channels, opts: StreamOptions, agent, worker, inst):
        self.conn = conn
        self.opts = opts
        self.worker = worker
        self.inst = inst
        self.path = worker._log_path(inst)

    async def run(self) -> None:
        follow = asyncio.create_task(self._follow())
        inbound = asyncio.create_task(self._drain_in())
        try:
            await asyncio.wait({follow, inbound}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (follow, inbound):
                t.cancel()
            await asyncio.gather(follow, inbound, return_exceptions=True)
        if not self.conn.closed:
            await self.conn.send(ERROR, wsstream.error_channel_payload(
                wsstream.success_status(), self.conn.protocol))

    async def _drain_in(self) -> None:
        while await self.conn.receive() is not None:
            pass

    async def _follow(self) -> None:
        from shim.node import logs
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            f.seek(0, os.SEEK_END)
            buf = b""
            while True:
                chunk = f.read(65536)
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for raw in lines:
                        line = logs.parse_line(raw)
                        if line is None:
                            continue
                        await self._emit(line.stream, line.content + (b"" if line.partial else b"\n"))
                    continue
                if self.inst.state != "running":
                    return
                await asyncio.sleep(self.POLL)

    async def _emit(self, stream: str, data: bytes) -> None:
        if stream == "stderr" and self.opts.stderr and not self.opts.tty:
            await self.conn.send(STDERR, data)
        elif self.opts.stdout or self.opts.tty:
            await self.conn.send(STDOUT, data)


class PortForwardSession:
    """Plain channel WebSocket port-forward: port i uses data channel 2i, error channel 2i+1."""

    def __init__(self, conn: Channels, ip: str, ports: list[int]):
        self.conn = conn
        self.ip = ip
        self.ports = ports
        self.writers: dict[int, asyncio.StreamWriter] = {}

    async def run(self) -> None:
        for i, port in enumerate(self.ports):
            await self.conn.send_raw(wsstream.port_header(2 * i, port))
            await self.conn.send_raw(wsstream.port_header(2 * i + 1, port))
        pumps = []
        for i, port in enumerate(self.ports):
            try:
                reader, writer = await asyncio.open_connection(self.ip, port)
            except OSError as e:
                await self.conn.send(2 * i + 1, (
                    f"error forwarding port {port} to pod {self.ip}: {e}").encode())
                continue
            self.writers[2 * i] = writer
            pumps.append(asyncio.create_task(self._out(reader, 2 * i)))
        if not pumps:
            return
        inbound = asyncio.create_task(self._in())
        try:
            all_out = asyncio.ensure_future(asyncio.wait(pumps))
            await asyncio.wait({inbound, all_out}, return_when=asyncio.FIRST_COMPLETED)
            all_out.cancel()
        finally:
            for t in [inbound, *pumps]:
                t.cancel()
            await asyncio.gather(inbound, *pumps, return_exceptions=True)
            for w in self.writers.values():
                w.close()

    async def _out(self, reader: asyncio.StreamReader, channel: int) -> None:
        while True:
            data = await reader.read(65536)
            if not data or not await self.conn.send(channel, data):
                return

    async def _in(self) -> None:
        while True:
            frame = await self.conn.receive()
            if frame is None:
                return
            ch, data = frame
            w = self.writers.get(ch)
            if w is not None and data:
                w.write(data)
                await w.drain()
            elif ch == CLOSE and data[:1] and data[0] in self.writers:
                self.writers[data[0]].write_eof()


class SpdyPortForwardSession:
    """kubectl port-forward: SPDY/3.1 tunnelled in binary WebSocket frames. Per forwarded
    connection the client opens an error stream and a data stream (headers streamType, port,
    requestID); each complete pair gets one TCP connection to the pod IP."""

    def __init__(self, conn: Channels, pod: dict, ip: str):
        self.conn = conn
        self.ip = ip
        self.pod_name = pod["metadata"]["name"]
        self.uid = pod["metadata"].get("uid", "")
        self.pairs: dict[str, dict[str, spdy.Stream]] = {}
        self.tasks: set[asyncio.Task] = set()
        self.session = spdy.Session(conn.send_raw, self._on_stream)

    async def run(self) -> None:
        try:
            while True:
                data = await self.conn.receive_raw()
                if data is None:
                    return
                await self.session.feed(data)
        finally:
            for t in list(self.tasks):
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def _on_stream(self, s: spdy.Stream) -> None:
        rid = s.header("requestid")
        pair = self.pairs.setdefault(rid, {})
        pair[s.header("streamtype")] = s
        if "data" in pair and "error" in pair:
            del self.pairs[rid]
            t = asyncio.create_task(self._forward(pair["data"], pair["error"]))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    async def _forward(self, data: spdy.Stream, err: spdy.Stream) -> None:
        port_s = data.header("port")
        try:
            try:
                port = int(port_s)
                if not 0 < port < 65536:
                    raise ValueError(port_s)
            except ValueError:
                await err.write(f'invalid port "{port_s}"'.encode())
                return
            try:
                reader, writer = await asyncio.open_connection(self.ip, port)
            except OSError as e:
                await err.write((f"error forwarding port {port} to pod {self.pod_name}, "
                                 f"uid {self.uid}: {e}").encode())
                return
            try:
                await _splice(reader, writer, data, err)
            finally:
                writer.close()
        finally:
            await data.close()
            await err.close()
            self.session.remove(data)
            self.session.remove(err)


async def _splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  stream: spdy.Stream, err: spdy.Stream) -> None:
    """Copy both ways between a TCP connection and a SPDY stream until both ends are done
    (or the stream is reset). The pod closing its side ends the error stream too: kubectl
    waits for it before closing the local connection."""
    async def up():
        while True:
            chunk = await stream.read()
            if not chunk:
                if stream.reset:
                    return
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    async def down():
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                await stream.close()
                await err.close()
                return
            if not await stream.write(chunk):
                return
    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if stream.reset:
            return
        await asyncio.wait(pending)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
