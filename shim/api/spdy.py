"""SPDY/3.1 framing, server side, as spoken by Go's moby/spdystream (client-go's httpstream).

What this module owns:
- the SPDY/3 header-compression dictionary and `HeaderCodec` (one zlib stream per direction
  for the whole connection, sync-flushed per header block);
- frame encoding (`control_frame`, `data_frame`, `syn_reply`, `rst_stream`, `ping`, `goaway`)
  and incremental decoding (`FrameParser`);
- `Session`: the server half of a connection carried over any byte transport (a WebSocket
  tunnel for `SPDY/3.1+portforward.k8s.io`); the client opens streams (odd ids) with
  SYN_STREAM, the session answers SYN_REPLY and hands each `Stream` to a callback.

Flow control: spdystream neither sends nor honours WINDOW_UPDATE, so none is sent and received
ones are ignored; SETTINGS and HEADERS frames are ignored too. PINGs from the client are echoed.
"""
from __future__ import annotations

import asyncio
import struct
import zlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable

VERSION = 3

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL = 1, 2, 3, 5

MAX_DATA = 32 * 1024          # bytes per DATA frame we send


def _dictionary() -> bytes:
    """The SPDY/3 zlib dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1): length-prefixed
    header words followed by a run of common values."""
    words = [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
        "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
        "cache-control", "connection", "content-base", "content-encoding", "content-language",
        "content-length", "content-location", "content-md5", "content-range", "content-type",
        "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
        "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
        "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range",
        "referer", "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade",
        "user-agent", "vary", "via", "warning", "www-authenticate", "method", "get", "status",
        "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
    ]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    out = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    return out + tail.encode()


DICTIONARY = _dictionary()


# ---- header blocks -------------------------------------------------------------------------

class HeaderCodec:
    """Header blocks of one connection: a persistent deflate stream out, inflate stream in."""

    def __init__(self):
        self._out = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8,
                                     zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._in = zlib.decompressobj(15, zdict=DICTIONARY)

    def encode(self, headers: dict[str, list[str] | str]) -> bytes:
        raw = [struct.pack(">I", len(headers))]
        for name, values in headers.items():
            if isinstance(values, str):
                values = [values]
            n = name.lower().encode()
            v = b"\x00".join(x.encode() for x in values)
            raw += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
        return self._out.compress(b"".join(raw)) + self._out.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, block: bytes) -> dict[str, list[str]]:
        raw = self._in.decompress(block)
        return parse_header_block(raw)


def parse_header_block(raw: bytes) -> dict[str, list[str]]:
    """Uncompressed SPDY/3 name/value block -> {lowercase name: [values]}."""
    def take(pos: int) -> tuple[bytes, int]:
        (n,) = struct.unpack_from(">I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise ValueError("truncated SPDY header block")
        return raw[pos:pos + n], pos + n
    (count,) = struct.unpack_from(">I", raw, 0)
    pos = 4
    out: dict[str, list[str]] = {}
    for _ in range(count):
        name, pos = take(pos)
        value, pos = take(pos)
        out.setdefault(name.decode("latin-1").lower(), []).extend(
            v.decode("latin-1") for v in value.split(b"\x00"))
    return out


# ---- frames ----------------------------------------------------------------------------------

@dataclass
class Frame:
    control: bool
    type: int                 # control frame type; 0 for data frames
    flags: int
    payload: bytes
    stream_id: int = 0        # data frames, and control frames that carry one


def control_frame(ftype: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


def syn_reply(codec: HeaderCodec, stream_id: int, headers: dict | None = None,
              fin: bool = False) -> bytes:
    return control_frame(SYN_REPLY, FLAG_FIN if fin else 0,
                         struct.pack(">I", stream_id) + codec.encode(headers or {}))


def rst_stream(stream_id: int, status: int) -> bytes:
    return control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def ping(ping_id: int) -> bytes:
    return control_frame(PING, 0, struct.pack(">I", ping_id))


def goaway(last_stream_id: int, status: int = 0) -> bytes:
    return control_frame(GOAWAY, 0, struct.pack(">II", last_stream_id, status))


class FrameParser:
    """Bytes in, whole frames out (frames may span or share transport messages)."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            w1, w2 = struct.unpack_from(">II", self._buf, 0)
            length = w2 & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            flags = w2 >> 24
            del self._buf[:8 + length]
            if w1 & 0x80000000:
                ftype = w1 & 0xFFFF
                sid = 0
                if ftype in (SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE) \
                        and len(payload) >= 4:
                    sid = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
                frames.append(Frame(True, ftype, flags, payload, sid))
            else:
                frames.append(Frame(False, 0, flags, payload, w1 & 0x7FFFFFFF))
        return frames


# ---- session -----------------------------------------------------------------------------------

@dataclass
class Stream:
    """One client-opened stream: `read()` its data (b"" at end), `write()`/`close()` ours."""
    session: "Session"
    id: int
    headers: dict[str, list[str]]
    inbound: asyncio.Queue = field(default_factory=asyncio.Queue)
    remote_closed: bool = False
    local_closed: bool = False
    reset: bool = False

    def header(self, name: str) -> str:
        v = self.headers.get(name.lower())
        return v[0] if v else ""

    async def read(self) -> bytes:
        if self.remote_closed and self.inbound.empty():
            return b""
        data = await self.inbound.get()
        return data if data is not None else b""

    async def write(self, data: bytes) -> bool:
        if self.local_closed or self.reset:
            return False
        for i in range(0, len(data), MAX_DATA):
            if not await self.session.send(data_frame(self.id, data[i:i + MAX_DATA])):
                return False
        return True

    async def close(self) -> None:
        """Half-close our side (DATA with FIN)."""
        if self.local_closed or self.reset:
            return
        self.local_closed = True
        await self.session.send(data_frame(self.id, b"", fin=True))

    def _remote_end(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self.inbound.put_nowait(None)


class Session:
    """Server side of one SPDY/3.1 connection. Feed it the client's bytes with `feed`; each new
    stream goes to `on_stream(stream)` (called synchronously, after its SYN_REPLY is queued)."""

    def __init__(self, send: Callable[[bytes], Awaitable[bool]],
                 on_stream: Callable[[Stream], None]):
        self._send = send
        self.on_stream = on_stream
        self.codec = HeaderCodec()
        self.parser = FrameParser()
        self.streams: dict[int, Stream] = {}
        self.last_stream_id = 0
        self.gone_away = False
        self._lock = asyncio.Lock()

    async def send(self, data: bytes) -> bool:
        async with self._lock:
            return await self._send(data)

    async def feed(self, data: bytes) -> None:
        for frame in self.parser.feed(data):
            await self.handle(frame)

    async def handle(self, f: Frame) -> None:
        if not f.control:
            s = self.streams.get(f.stream_id)
            if s is None:
                return
            if f.payload:
                s.inbound.put_nowait(f.payload)
            if f.flags & FLAG_FIN:
                s._remote_end()
            return
        if f.type == SYN_STREAM:
            await self._syn_stream(f)
        elif f.type == RST_STREAM:
            s = self.streams.pop(f.stream_id, None)
            if s is not None:
                s.reset = True
                s._remote_end()
        elif f.type == PING:
            (pid,) = struct.unpack_from(">I", f.payload, 0)
            if pid & 1:                 # client-initiated (odd): echo it back
                await self.send(ping(pid))
        elif f.type == GOAWAY:
            self.gone_away = True
        # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do

    async def _syn_stream(self, f: Frame) -> None:
        sid = f.stream_id
        # stream id(4) + associated id(4) + priority/unused(1) + slot(1) + header block
        try:
            headers = self.codec.decode(f.payload[10:])
        except (zlib.error, ValueError, struct.error):
            await self.send(rst_stream(sid, PROTOCOL_ERROR))
            return
        if sid in self.streams or sid % 2 == 0 or self.gone_away:
            await self.send(rst_stream(sid, PROTOCOL_ERROR))
            return
        self.last_stream_id = max(self.last_stream_id, sid)
        s = Stream(self, sid, headers)
        self.streams[sid] = s
        if f.flags & FLAG_FIN:
            s._remote_end()
        await self.send(syn_reply(self.codec, sid))
        self.on_stream(s)

    def remove(self, stream: Stream) -> None:
        self.streams.pop(stream.id, None)

    async def close(self) -> None:
        for s in list(self.streams.values()):
            s._remote_end()
        await self.send(goaway(self.last_stream_id))
