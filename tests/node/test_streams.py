"""pods/exec, attach, cp and port-forward over WebSockets against a real server with a node.

One server (with containerd) and one long-running busybox pod for the module; kubectl 1.32 and
1.35 (WebSocket v5) and the Python client's `stream()` (v5/v4 channels, port-forward).
"""
from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import Kubectl
from tests.node.test_agent import apply, node_server, pod, wait_for, wait_status  # noqa: F401

POD = "box"


@pytest.fixture(scope="module")
def kc(node_server):  # noqa: F811
    home = os.path.join(node_server.data_dir, "home")
    os.makedirs(home, exist_ok=True)
    k = Kubectl(node_server, "1.32", home)
    wait_for(lambda: "Ready" in k.run("get", "nodes", check=False).stdout, 30, what="node Ready")
    return k


@pytest.fixture(scope="module", params=["1.32", "1.35"])
def kx(request, node_server, kc):  # noqa: F811
    return Kubectl(node_server, request.param, kc.home)


@pytest.fixture(scope="module")
def box(kc):
    """namespace "st" with a running pod serving /www on port 8080 and `tar` on PATH."""
    kc("create", "namespace", "st")
    wait_for(lambda: kc.run("get", "sa", "default", "-n", "st", check=False).returncode == 0, 10)
    apply(kc, "st", pod(POD, ["sh", "-c", "ln -s /bin/busybox /bin/tar; mkdir -p /www && "
                              "echo served-by-box > /www/index.html && "
                              "exec busybox httpd -f -p 8080 -h /www"], restart="Always"))
    wait_status(kc, "st", POD, "Running")
    return "st"


@pytest.fixture(scope="module")
def core_api(node_server):  # noqa: F811
    from kubernetes import client, config
    cfg = client.Configuration()
    config.load_kube_config(config_file=node_server.kubeconfig, client_configuration=cfg)
    return client.CoreV1Api(client.ApiClient(cfg))


# ---- kubectl ------------------------------------------------------------------------------

def test_kubectl_exec_output_and_exit_code(kx, box):
    p = kx.run("exec", POD, "-n", box, "--", "sh", "-c", "echo out; echo err >&2; exit 3",
               check=False)
    assert p.returncode == 3
    assert p.stdout == "out\n"
    assert "err\n" in p.stderr
    assert "command terminated with exit code 3" in p.stderr
    assert kx("exec", POD, "-n", box, "--", "cat", "/www/index.html") == "served-by-box\n"


def test_kubectl_exec_stdin(kx, box):
    out = kx("exec", "-i", POD, "-n", box, "--", "sh", "-c", "cat; echo done",
             input="line one\nline two\n")
    assert out == "line one\nline two\ndone\n"


def test_kubectl_cp_both_ways(kx, box, tmp_path):
    src = tmp_path / "up.txt"
    payload = "".join(f"row {i}\n" for i in range(5000))
    src.write_text(payload)
    kx("cp", str(src), f"{box}/{POD}:/tmp/up-{kx.version}.txt")
    assert kx("exec", POD, "-n", box, "--", "cat", f"/tmp/up-{kx.version}.txt") == payload
    back = tmp_path / "down.txt"
    kx("cp", f"{box}/{POD}:/www/index.html", str(back))
    assert back.read_text() == "served-by-box\n"


def test_kubectl_exec_refusals(kc, box):
    p = kc.run("exec", POD, "-n", box, "-c", "nope", "--", "true", check=False)
    assert p.returncode != 0
    assert f"container nope is not valid for pod {POD}" in p.stderr
    p = kc.run("exec", "ghost", "-n", box, "--", "true", check=False)
    assert 'pods "ghost" not found' in p.stderr


# ---- Python client ---------------------------------------------------------------------------

def test_python_exec_streams_and_returncode(core_api, box):
    from kubernetes.stream import stream
    resp = stream(core_api.connect_get_namespaced_pod_exec, POD, box,
                  command=["sh", "-c", "echo out; echo err >&2; exit 7"],
                  stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=20)
    assert resp.read_stdout() == "out\n"
    assert resp.read_stderr() == "err\n"
    assert resp.returncode == 7
    out = stream(core_api.connect_get_namespaced_pod_exec, POD, box, command=["echo", "hi"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "hi\n"


def test_python_exec_stdin_and_tty_resize(core_api, box):
    from kubernetes.stream import stream
    resp = stream(core_api.connect_get_namespaced_pod_exec, POD, box,
                  command=["sh", "-c", "read x; stty size; echo got-$x"],
                  stderr=True, stdin=True, stdout=True, tty=True, _preload_content=False)
    resp.write_channel(4, json.dumps({"Width": 91, "Height": 33}))
    time.sleep(0.3)
    resp.write_stdin("abc\n")
    out = ""
    deadline = time.monotonic() + 20
    while resp.is_open() and time.monotonic() < deadline:
        resp.update(timeout=1)
        out += resp.read_stdout() or ""
    assert "33 91" in out
    assert "got-abc" in out
    assert resp.returncode == 0


def test_python_port_forward(core_api, box):
    from kubernetes.stream import portforward
    pf = portforward(core_api.connect_get_namespaced_pod_portforward, POD, box, ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.")
    assert data.endswith(b"served-by-box\n")
    assert pf.error(8080) is None
    pf.close()


def test_kubectl_port_forward_concurrent_connections(kx, box):
    """kubectl tunnels SPDY/3.1 in a WebSocket; 12 connections, 6 at a time."""
    import re
    import socket
    import subprocess
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = kx.popen("port-forward", "-n", box, f"pod/{POD}", f"{port}:8080")
    try:
        line = p.stdout.readline()
        assert re.match(rf"Forwarding from 127\.0\.0\.1:{port} -> 8080", line), line

        def fetch(_):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := c.recv(4096):
                    data += chunk
            return data
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(6) as ex:
            results = list(ex.map(fetch, range(12)))
        for data in results:
            assert data.startswith(b"HTTP/1.") and data.endswith(b"served-by-box\n"), data
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_kubectl_attach_follows_output(kc, box):
    apply(kc, box, pod("talker", ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; "
                                  "sleep 0.2; done"], restart="Always"))
    wait_status(kc, box, "talker", "Running")
    p = kc.popen("attach", "talker", "-n", box)
    try:
        lines = [p.stdout.readline() for _ in range(3)]
    finally:
        p.terminate()
        p.wait(10)
    assert all(ln.startswith("tick-") for ln in lines), lines
    nums = [int(ln.strip().split("-")[1]) for ln in lines]
    assert nums == list(range(nums[0], nums[0] + 3))


# ---- framing (no server) ---------------------------------------------------------------------

def test_channel_protocol_negotiation_and_frames():
    from shim.api import wsstream as w
    assert w.negotiate(["v4.channel.k8s.io", "v5.channel.k8s.io"]) == "v5.channel.k8s.io"
    assert w.negotiate(["v4.channel.k8s.io"]) == "v4.channel.k8s.io"
    assert w.negotiate([]) == ""
    assert w.negotiate(["nope"]) is None
    assert w.negotiate(["SPDY/3.1+portforward.k8s.io"], w.PORTFORWARD_PROTOCOLS) == w.SPDY_TUNNEL
    assert w.offered_protocols([(b"Sec-WebSocket-Protocol", b"v5.channel.k8s.io, "
                                 b"base64url.bearer.authorization.k8s.io.abc"),
                                (b"sec-websocket-protocol", b"v4.channel.k8s.io")]) == \
        ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    assert w.encode(1, b"hi", w.V5) == {"type": "websocket.send", "bytes": b"\x01hi"}
    assert w.encode(2, b"hi", w.BASE64) == {"type": "websocket.send", "text": "2aGk="}
    assert w.decode({"bytes": b"\x00abc"}, w.V5) == (0, b"abc")
    assert w.decode({"text": "0aGk="}, w.BASE64) == (0, b"hi")
    assert w.decode({"bytes": b"\xff\x00"}, w.V5) == (255, b"\x00")
    assert w.parse_resize(b'{"Width":80,"Height":24}') == (80, 24)
    assert w.parse_resize(b"junk") is None
    assert w.port_header(2, 8080) == b"\x02\x90\x1f"


def test_exit_status_documents():
    import orjson
    from shim.api import wsstream as w
    st = w.exit_code_status(3, ["sh", "-c", "exit 3"])
    assert st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert st["message"] == ("command terminated with non-zero exit code: error executing "
                             "command [sh -c exit 3], exit code 3")
    assert orjson.loads(w.error_channel_payload(w.success_status(), w.V4))["status"] == "Success"
    assert w.error_channel_payload(w.success_status(), w.V1) == b""
    assert w.error_channel_payload(st, w.V1).startswith(b"command terminated")


def test_spdy_dictionary_and_header_blocks():
    import zlib
    from shim.api import spdy
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2    # the dict id kubectl's blocks carry
    out, back = spdy.HeaderCodec(), spdy.HeaderCodec()
    for i in range(20):                    # one zlib stream per direction, many blocks
        hdrs = {"streamType": "data", "port": str(8000 + i), "requestID": str(i)}
        assert back.decode(out.encode(hdrs)) == {"streamtype": ["data"],
                                                  "port": [str(8000 + i)],
                                                  "requestid": [str(i)]}
    assert back.decode(out.encode({"a": ["x", "y"]})) == {"a": ["x", "y"]}


def test_spdy_session_streams_data_and_ping():
    import asyncio
    import struct
    from shim.api import spdy

    async def go():
        sent: list[bytes] = []

        async def send(b):
            sent.append(b)
            return True
        got: list[spdy.Stream] = []
        s = spdy.Session(send, got.append)
        client = spdy.HeaderCodec()
        syn = spdy.control_frame(spdy.SYN_STREAM, 0, struct.pack(">IIBB", 1, 0, 0, 0)
                                 + client.encode({"streamType": "data", "port": "80"}))
        wire = syn + spdy.data_frame(1, b"hello") + spdy.data_frame(1, b"", fin=True) \
            + spdy.ping(7)
        for i in range(0, len(wire), 5):   # frames split across transport messages
            await s.feed(wire[i:i + 5])
        assert [st.header("port") for st in got] == ["80"]
        stream = got[0]
        assert await stream.read() == b"hello"
        assert await stream.read() == b""
        frames = spdy.FrameParser().feed(b"".join(sent))
        assert [(f.control, f.type, f.stream_id) for f in frames] == \
            [(True, spdy.SYN_REPLY, 1), (True, spdy.PING, 0)]
        assert frames[1].payload == struct.pack(">I", 7)
        await stream.write(b"x" * (spdy.MAX_DATA + 10))
        await stream.close()
        data = spdy.FrameParser().feed(b"".join(sent))[2:]
        assert [(f.control, len(f.payload), f.flags) for f in data] == \
            [(False, spdy.MAX_DATA, 0), (False, 10, 0), (False, 0, spdy.FLAG_FIN)]
    asyncio.run(go())


def test_exec_is_authorized_as_create_on_pods_exec(kc, box):
    kc("create", "serviceaccount", "viewer", "-n", box)
    kc("create", "rolebinding", "viewer-view", "--clusterrole=view",
       f"--serviceaccount={box}:viewer", "-n", box)
    token = kc("create", "token", "viewer", "-n", box).strip()
    p = kc.run("--kubeconfig", os.devnull, "--server", kc.server.url, "--insecure-skip-tls-verify",
               "--token", token, "exec", POD, "-n", box, "--", "true", check=False)
    assert p.returncode != 0
    assert (f'pods "{POD}" is forbidden: User "system:serviceaccount:{box}:viewer" cannot '
            f'create resource "pods/exec" in API group "" in the namespace "{box}"') in p.stderr
