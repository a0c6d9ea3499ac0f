"""An OCI distribution (registry v2) client: resolve manifests and stream blobs.

Owns talking HTTP(S) to a registry with aiohttp: the token (Bearer) and Basic
authentication challenges, Accept headers for OCI and Docker media types,
picking the linux/amd64 manifest out of an index, digest verification of what
is fetched. It knows nothing of containerd; client.py stores what this fetches.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import ssl
from dataclasses import dataclass
from typing import AsyncIterator

import aiohttp

from shim.node.images import Reference

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
ACCEPT = ", ".join((MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST, "*/*"))
CHUNK = 1 << 20
MAX_MANIFEST = 4 << 20


class RegistryError(Exception):
    """A pull that failed at the registry; `status` is the HTTP status (0 for transport errors)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status

    @property
    def unauthorized(self) -> bool:
        return self.status in (401, 403)

    @property
    def not_found(self) -> bool:
        return self.status == 404


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    platform: dict | None = None
    annotations: dict | None = None

    @classmethod
    def from_json(cls, d: dict) -> "Descriptor":
        return cls(d.get("mediaType", ""), d["digest"], int(d.get("size", 0)),
                   d.get("platform"), d.get("annotations"))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic_authorization(username: str, password: str) -> str:
    """The value of an `Authorization: Basic ...` header."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="..."` -> ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"([^"]*)"', rest)}
    return scheme.lower(), params


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:host.index("]")]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def matches_platform(platform: dict | None, os_name: str, arch: str, variant: str = "") -> bool:
    if not platform:
        return False
    if platform.get("os") != os_name or platform.get("architecture") != arch:
        return False
    return not variant or platform.get("variant", "") in ("", variant)


def select_manifest(index: dict, os_name: str = "linux", arch: str = "amd64") -> Descriptor:
    """The manifest for one platform out of an image index / manifest list."""
    for m in index.get("manifests") or []:
        if m.get("mediaType", MT_OCI_MANIFEST) in MANIFEST_TYPES and \
                matches_platform(m.get("platform"), os_name, arch):
            return Descriptor.from_json(m)
    raise RegistryError(f"no match for platform {os_name}/{arch} in manifest", 404)


class RegistryClient:
    """One registry session for one repository (auth tokens are scoped to it).

    `plain_http=None` means HTTP for loopback hosts, HTTPS otherwise.
    `auth` is (username, password) or None.
    """

    def __init__(self, ref: Reference, *, auth: tuple[str, str] | None = None,
                 plain_http: bool | None = None, ssl_context: ssl.SSLContext | bool | None = None,
                 session: aiohttp.ClientSession | None = None, timeout: float = 300.0):
        self.ref = ref
        self.auth = auth
        host = ref.endpoint_host
        if plain_http is None:
            plain_http = is_loopback(host)
        self.base = f"{'http' if plain_http else 'https'}://{host}/v2/{ref.path}"
        self.ssl = ssl_context
        self._own_session = session is None
        self.session = session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=30))
        self._authorization: str | None = None

    async def close(self) -> None:
        if self._own_session:
            await self.session.close()

    async def __aenter__(self) -> "RegistryClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ---- auth -----------------------------------------------------------------------------

    async def _authorize(self, challenge: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.auth:
                raise RegistryError("pull access denied: authorization required", 401)
            self._authorization = basic_authorization(*self.auth)
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(f"unsupported authentication challenge: {challenge}", 401)
        query = {"scope": params.get("scope") or f"repository:{self.ref.path}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Authorization": basic_authorization(*self.auth)} if self.auth else {}
        async with self.session.get(params["realm"], params=query, headers=headers,
                                    ssl=self.ssl) as resp:
            if resp.status != 200:
                raise RegistryError(
                    f"failed to fetch token from {params['realm']}: {resp.status} {resp.reason}",
                    resp.status)
            body = await resp.json(content_type=None)
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError("token response has no token", 401)
        self._authorization = f"Bearer {token}"

    async def _get(self, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET with one round of auth challenge handling; the caller releases the response."""
        for attempt in (0, 1):
            h = dict(headers)
            if self._authorization:
                h["Authorization"] = self._authorization
            try:
                resp = await self.session.get(url, headers=h, ssl=self.ssl)
            except aiohttp.ClientError as e:
                raise RegistryError(f"failed to reach {url}: {e}") from e
            if resp.status == 401 and attempt == 0:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.release()
                await self._authorize(challenge)
                continue
            if resp.status != 200:
                text = (await resp.text())[:300]
                resp.release()
                what = "not found" if resp.status == 404 else f"{resp.status} {resp.reason}"
                raise RegistryError(f"{url}: {what}: {text}", resp.status)
            return resp
        raise RegistryError(f"{url}: unauthorized", 401)

    # ---- manifests and blobs --------------------------------------------------------------

    async def fetch_manifest(self, reference: str) -> tuple[Descriptor, bytes]:
        """Fetch a manifest or index by tag or digest -> (its descriptor, raw bytes)."""
        resp = await self._get(f"{self.base}/manifests/{reference}", {"Accept": ACCEPT})
        try:
            data = await resp.content.read(MAX_MANIFEST + 1)
        finally:
            resp.release()
        if len(data) > MAX_MANIFEST:
            raise RegistryError(f"manifest {reference} too large")
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"manifest digest mismatch: got {digest}, want {reference}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in INDEX_TYPES + MANIFEST_TYPES:
            media_type = json.loads(data).get("mediaType") or media_type
        return Descriptor(media_type, digest, len(data)), data

    async def resolve(self, os_name: str = "linux", arch: str = "amd64"
                      ) -> tuple[Descriptor, bytes, Descriptor, bytes]:
        """Resolve the reference -> (target descriptor, target bytes, manifest descriptor,
        manifest bytes); target is the index when the reference names one, else the manifest."""
        target, data = await self.fetch_manifest(self.ref.object)
        if target.media_type not in INDEX_TYPES:
            return target, data, target, data
        chosen = select_manifest(json.loads(data), os_name, arch)
        mdesc, mdata = await self.fetch_manifest(chosen.digest)
        return target, data, Descriptor(mdesc.media_type, mdesc.digest, mdesc.size,
                                        chosen.platform), mdata

    async def blob(self, desc: Descriptor) -> AsyncIterator[bytes]:
        """Stream a blob's bytes in chunks ≤ 1 MiB, verifying size and digest at the end."""
        resp = await self._get(f"{self.base}/blobs/{desc.digest}", {})
        h = hashlib.sha256()
        n = 0
        try:
            async for chunk in resp.content.iter_chunked(CHUNK):
                h.update(chunk)
                n += len(chunk)
                yield chunk
        finally:
            resp.release()
        if "sha256:" + h.hexdigest() != desc.digest or (desc.size and n != desc.size):
            raise RegistryError(f"blob {desc.digest} failed verification ({n} bytes)")
