"""The framework floor for bench/api.py: the cheapest server the same stack can be.

A bare ASGI app served exactly as kubeshim serves its API (uvicorn, httptools, uvloop,
TLS with an ECDSA P-256 serving certificate from shim.certs.PKI, client certificates
optional, one worker, access log off). It does no routing and no storage:

- GET <anything>                 -> 200 and a fixed JSON body (a real pod GET body);
- GET <anything>?watch=true      -> 200, chunked; one JSON line per broadcast (see POST);
- POST .../configmaps            -> broadcasts {"type":"ADDED","object":<request body>}
                                    to every open watch, 201 with the request body;
- POST <anything else>           -> reads the body, 201 and the fixed JSON body.

Usage: python bench/floor_app.py --port P --data-dir D [--body FILE]
It prints "ready" on stdout once listening.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys

DEFAULT_BODY = (b'{"kind":"Pod","apiVersion":"v1","metadata":{"name":"bench-get","namespace":"default",'
                b'"resourceVersion":"1"},"spec":{"containers":[{"name":"web","image":"nginx"}]},'
                b'"status":{"phase":"Pending"}}')


class FloorApp:
    """Fixed-answer ASGI app with an in-process broadcast for the watch fan-out floor."""

    def __init__(self, body: bytes):
        self.body = body
        self.length = str(len(body)).encode()
        self.watchers: set[asyncio.Queue] = set()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            if b"watch=true" in scope.get("query_string", b""):
                return await self.watch(receive, send)
            return await self.fixed(send, 200)
        body = await self.read_body(receive)
        if scope["path"].endswith("/configmaps"):
            line = b'{"type":"ADDED","object":' + body + b"}\n"
            for q in self.watchers:
                q.put_nowait(line)
            await send({"type": "http.response.start", "status": 201,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.fixed(send, 201)

    async def fixed(self, send, status: int) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", self.length)]})
        await send({"type": "http.response.body", "body": self.body})

    @staticmethod
    async def read_body(receive) -> bytes:
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                return b"".join(chunks)

    async def watch(self, receive, send) -> None:
        q: asyncio.Queue = asyncio.Queue()
        self.watchers.add(q)

        async def until_disconnect():
            while (await receive())["type"] != "http.disconnect":
                pass
            q.put_nowait(None)
        gone = asyncio.create_task(until_disconnect())
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"transfer-encoding", b"chunked")]})
            while True:
                line = await q.get()
                if line is None:
                    break
                await send({"type": "http.response.body", "body": line, "more_body": True})
        finally:
            gone.cancel()
            self.watchers.discard(q)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--body", default=None, help="file holding the fixed JSON body")
    a = p.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from shim.certs import PKI
    pki = PKI(a.data_dir)
    pki.ensure(["127.0.0.1", "localhost"])
    body = DEFAULT_BODY
    if a.body:
        with open(a.body, "rb") as f:
            body = f.read()

    import uvicorn
    import uvloop
    uvloop.install()
    config = uvicorn.Config(FloorApp(body), host="127.0.0.1", port=a.port, loop="none",
                            http="httptools", lifespan="off", access_log=False,
                            log_level="warning", timeout_keep_alive=75,
                            ssl_certfile=pki.serving_crt, ssl_keyfile=pki.serving_key,
                            ssl_ca_certs=pki.ca_crt, ssl_cert_reqs=ssl.CERT_OPTIONAL)
    server = uvicorn.Server(config)

    async def run():
        async def announce():
            while not server.started:
                await asyncio.sleep(0.01)
            print("ready", flush=True)
        t = asyncio.create_task(announce())
        await server.serve()
        t.cancel()
    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
