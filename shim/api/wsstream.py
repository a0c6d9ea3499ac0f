"""Channel WebSocket framing for pods/exec, pods/attach and pods/portforward (owns the wire side).

What this module owns:
- subprotocol negotiation (`negotiate`): `v5.channel.k8s.io` (kubectl 1.30+, Python client),
  `v4.channel.k8s.io`, the older `channel.k8s.io` family and the base64 variants;
- frame encoding/decoding: binary frames are `<channel byte><data>`; base64 protocols use text
  frames `<ASCII channel digit><base64 data>`; v5 adds the CLOSE signal `[255, channel]`;
- the Status documents written on the error channel (3) when a remote command ends;
- `Channels`, a small wrapper over an ASGI WebSocket connection (accept / reject with a Status
  JSON / send on a channel / receive frames / close).

Channel numbers: 0 stdin, 1 stdout, 2 stderr, 3 error (status), 4 resize.
"""
from __future__ import annotations

import asyncio
import base64
import binascii

import orjson

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255          # v5: [255, channel] = the sender closed that channel (stdin EOF)

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
BASE64 = "base64.channel.k8s.io"

# in the real server's order of preference
REMOTECOMMAND_PROTOCOLS = [V5, V4, V4_BASE64, V3, V2, V1, BASE64]
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"     # kubectl 1.30+: SPDY inside binary frames
PORTFORWARD_PROTOCOLS = [SPDY_TUNNEL, V5, V4, V4_BASE64, "portforward.k8s.io", V1, BASE64]


def offered_protocols(headers) -> list[str]:
    """The subprotocols a client offers (`Sec-WebSocket-Protocol`, possibly repeated), in order.
    Bearer-token pseudo protocols (`base64url.bearer.authorization.k8s.io.…`) are skipped."""
    out: list[str] = []
    for k, v in headers or []:
        if k.lower() != b"sec-websocket-protocol":
            continue
        for p in v.decode("latin-1").split(","):
            p = p.strip()
            if p and not p.startswith("base64url.bearer.authorization.k8s.io."):
                out.append(p)
    return out


def negotiate(offered: list[str], supported: list[str] = REMOTECOMMAND_PROTOCOLS) -> str | None:
    """The subprotocol to accept: the server's most preferred one the client offered.
    An empty offer means the original binary channel protocol (""). None = nothing in common."""
    if not offered:
        return ""
    for p in supported:
        if p in offered:
            return p
    return None


def is_base64(protocol: str) -> bool:
    return "base64" in protocol


def status_is_json(protocol: str) -> bool:
    """v4 and later write a metav1.Status JSON on the error channel; older ones plain text."""
    return protocol.startswith(("v4.", "v5."))


def supports_close(protocol: str) -> bool:
    return protocol.startswith("v5.")


def encode(channel: int, data: bytes, protocol: str) -> dict:
    """An ASGI websocket.send message carrying data on a channel."""
    if is_base64(protocol):
        return {"type": "websocket.send",
                "text": chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")}
    return {"type": "websocket.send", "bytes": bytes([channel]) + data}


def decode(message: dict, protocol: str) -> tuple[int, bytes] | None:
    """(channel, data) of an ASGI websocket.receive message; None for an empty or bad frame."""
    raw = message.get("bytes")
    text = message.get("text")
    if raw is None and text is None:
        return None
    if is_base64(protocol):
        s = text if text is not None else raw.decode("latin-1")
        if not s:
            return None
        ch = ord(s[0]) - ord("0")
        try:
            return ch, base64.b64decode(s[1:])
        except (binascii.Error, ValueError):
            return None
    if raw is None:
        raw = text.encode("utf-8")
    if not raw:
        return None
    return raw[0], raw[1:]


# ---- Status documents of the error channel -------------------------------------------------

def success_status() -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def exit_code_status(code: int, command: list[str]) -> dict:
    """What the kubelet writes when the command exits non-zero (kubectl exits with `code`)."""
    why = f"error executing command [{' '.join(command)}], exit code {code}"
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {why}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message}


def error_channel_payload(status: dict, protocol: str) -> bytes:
    """The bytes for channel 3: Status JSON (v4+), the message text for older protocols
    (nothing on success)."""
    if status_is_json(protocol):
        return orjson.dumps(status)
    if status.get("status") == "Success":
        return b""
    return (status.get("message") or "").encode()


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a resize frame `{"Width":80,"Height":24}`; None when malformed."""
    try:
        d = orjson.loads(data)
        w, h = int(d.get("Width") or 0), int(d.get("Height") or 0)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
    return (w, h) if w > 0 and h > 0 else None


def port_header(channel: int, port: int) -> bytes:
    """Port-forward: the first frame on each channel, channel byte + port little-endian."""
    return bytes([channel]) + port.to_bytes(2, "little")


# ---- the connection --------------------------------------------------------------------------

class Channels:
    """One channel WebSocket over ASGI. Sends are serialised (several pumps share it)."""

    def __init__(self, receive, send, protocol: str = V5):
        self._receive = receive
        self._send = send
        self.protocol = protocol
        self.closed = False
        self._lock = asyncio.Lock()

    async def accept(self) -> None:
        msg = {"type": "websocket.accept"}
        if self.protocol:
            msg["subprotocol"] = self.protocol
        await self._send(msg)

    @staticmethod
    async def reject(send, code: int, status: dict) -> None:
        """Refuse the upgrade with an HTTP answer carrying a Status JSON (needs the ASGI
        websocket.http.response extension; otherwise a plain close)."""
        body = orjson.dumps(status)
        try:
            await send({"type": "websocket.http.response.start", "status": code,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "websocket.http.response.body", "body": body})
        except (RuntimeError, KeyError):
            await send({"type": "websocket.close", "code": 1008})

    async def send(self, channel: int, data: bytes) -> bool:
        """Write data on a channel; False once the connection is gone."""
        if self.closed:
            return False
        async with self._lock:
            try:
                await self._send(encode(channel, data, self.protocol))
            except Exception:        # client went away (uvicorn: ClientDisconnected / OSError)
                self.closed = True
                return False
        return True

    async def send_raw(self, data: bytes) -> bool:
        """A binary frame without a channel byte (SPDY-in-WebSocket tunnelling)."""
        if self.closed:
            return False
        async with self._lock:
            try:
                await self._send({"type": "websocket.send", "bytes": data})
            except Exception:
                self.closed = True
                return False
        return True

    async def receive(self) -> tuple[int, bytes] | None:
        """The next (channel, data) frame from the client; None once it disconnected.
        A v5 close signal comes back as (CLOSE, bytes([channel]))."""
        while True:
            msg = await self._receive()
            t = msg.get("type")
            if t == "websocket.disconnect":
                self.closed = True
                return None
            if t != "websocket.receive":
                continue
            frame = decode(msg, self.protocol)
            if frame is not None:
                return frame

    async def receive_raw(self) -> bytes | None:
        """The next binary message as is (SPDY tunnelling); None once the client is gone."""
        while True:
            msg = await self._receive()
            t = msg.get("type")
            if t == "websocket.disconnect":
                self.closed = True
                return None
            if t == "websocket.receive" and msg.get("bytes") is not None:
                return msg["bytes"]

    async def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        async with self._lock:
            try:
                await self._send({"type": "websocket.close", "code": code})
            except Exception:
                pass


def lenient_subprotocols(base: type) -> type:
    """A uvicorn websockets-sansio protocol class that does not parse Sec-WebSocket-Protocol
    itself. The `websockets` library insists on RFC 7230 tokens and answers 400 to kubectl's
    `SPDY/3.1+portforward.k8s.io` ("/" is not a token character); the ASGI app picks the
    subprotocol from the scope anyway."""
    class LenientSubprotocols(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.conn.process_subprotocol = lambda headers: None
    LenientSubprotocols.__name__ = f"Lenient{base.__name__}"
    return LenientSubprotocols
