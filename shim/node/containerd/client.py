"""Async containerd client (grpc.aio) with the calls the node agent needs.

Owns the conversation with containerd 1.6 over its gRPC socket, always in one
containerd namespace ("kubeshim"): version; images (import from an OCI archive,
pull from a registry through registry.py, get/list/delete, unpack into
overlayfs snapshots, GC labels); containers with an OCI spec; tasks (create
with stdio files, start, kill, wait, delete, exec, metrics); the event stream
(task exits) and listing by labels for re-adoption after a restart. No `ctr`.

Errors from containerd surface as ContainerdError (with the gRPC status code);
registry failures as registry.RegistryError.
"""
from __future__ import annotations

import asyncio
import json
import os
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from collections.abc import AsyncIterator, Awaitable, Iterable

import grpc
from google.protobuf import any_pb2, empty_pb2, field_mask_pb2, message_factory
from google.protobuf import descriptor_pool

from shim.node import images as refs
from shim.node.containerd import (
    cgroups_v1_metrics_pb2, cgroups_v2_metrics_pb2, containers_pb2, containers_pb2_grpc,
    content_pb2, content_pb2_grpc, diff_pb2, diff_pb2_grpc, events_pb2, events_pb2_grpc,
    events_task_pb2, images_pb2, images_pb2_grpc, leases_pb2, leases_pb2_grpc, runc_options_pb2,
    snapshots_pb2, snapshots_pb2_grpc, tasks_pb2, tasks_pb2_grpc, types_descriptor_pb2,
    version_pb2_grpc,
)
# imported for their side effect: event payload types become decodable by type URL
from shim.node.containerd import events_container_pb2, events_image_pb2  # noqa: F401
from shim.node.containerd import events_snapshot_pb2  # noqa: F401
from shim.node.containerd.registry import (
    INDEX_TYPES, Descriptor, RegistryClient, select_manifest,
)

NAMESPACE_HEADER = "containerd-namespace"
LEASE_HEADER = "containerd-lease"
SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options"
RUNTIME_RUNC_V2 = "io.containerd.runc.v2"
DEFAULT_SNAPSHOTTER = "overlayfs"
GC_EXPIRE = "containerd.io/gc.expire"
GC_REF_CONTENT = "containerd.io/gc.ref.content"
GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot"
UNCOMPRESSED = "containerd.io/uncompressed"
SYNC_TOPIC = "/kubeshim/sync"
CHUNK = 1 << 20
MAX_MESSAGE = 16 << 20

TASK_STATUS = {0: "unknown", 1: "created", 2: "running", 3: "stopped", 4: "paused", 5: "pausing"}


class ContainerdError(Exception):
    """A failed containerd call; `code` is the grpc.StatusCode."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.code == grpc.StatusCode.NOT_FOUND

    @property
    def already_exists(self) -> bool:
        return self.code == grpc.StatusCode.ALREADY_EXISTS

    @property
    def failed_precondition(self) -> bool:
        return self.code == grpc.StatusCode.FAILED_PRECONDITION


# ---- value types -------------------------------------------------------------------------

def _time(ts) -> datetime | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    name: str
    digest: str                     # the target's digest (index or manifest)
    media_type: str
    size: int
    labels: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None

    @classmethod
    def from_proto(cls, im) -> "ImageInfo":
        return cls(im.name, im.target.digest, im.target.media_type, im.target.size,
                   dict(im.labels), _time(im.created_at))


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What running an image needs: the top snapshot (chainID), its OCI config, total size."""

    target_digest: str
    chain_id: str
    config: dict                    # the image config's "config" (Entrypoint, Cmd, Env, ...)
    size: int


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    id: str
    image: str
    labels: dict[str, str]
    snapshot_key: str
    snapshotter: str
    runtime: str
    created_at: datetime | None = None
    spec: dict | None = None

    @classmethod
    def from_proto(cls, c, with_spec: bool = False) -> "ContainerInfo":
        spec = json.loads(c.spec.value) if with_spec and c.spec.value else None
        return cls(c.id, c.image, dict(c.labels), c.snapshot_key, c.snapshotter, c.runtime.name,
                   _time(c.created_at), spec)


@dataclass(frozen=True, slots=True)
class TaskInfo:
    id: str                         # container id
    pid: int
    status: str                     # created / running / stopped / paused / pausing / unknown
    exit_status: int
    exited_at: datetime | None
    stdout: str = ""
    stderr: str = ""

    @classmethod
    def from_proto(cls, p) -> "TaskInfo":
        return cls(p.container_id or p.id, p.pid, TASK_STATUS.get(p.status, "unknown"),
                   p.exit_status, _time(p.exited_at), p.stdout, p.stderr)


@dataclass(frozen=True, slots=True)
class ExitStatus:
    code: int
    exited_at: datetime | None


@dataclass(frozen=True, slots=True)
class Event:
    """One containerd event. For task events `container_id` is set; `exec_id` is the process id
    (equal to container_id for the init process); `exit_status`/`exited_at` for /tasks/exit."""

    topic: str
    namespace: str
    timestamp: datetime | None
    type: str                       # e.g. "containerd.events.TaskExit"
    container_id: str = ""
    exec_id: str = ""
    pid: int = 0
    exit_status: int = 0
    exited_at: datetime | None = None
    payload: object = None


# ---- helpers -----------------------------------------------------------------------------

def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI chainIDs: the first is the first diff_id, then sha256("<previous> <diff_id>")."""
    import hashlib
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else
                   "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def label_filter(labels: dict[str, str]) -> str:
    """A containerd filter matching all `labels`: labels."k"=="v",..."""
    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ",".join(f"labels.{q(k)}=={q(v)}" for k, v in sorted(labels.items()))


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decode_any(a: any_pb2.Any):
    """Decode an Any whose type URL names a message in this folder's protos (no prefix)."""
    name = a.type_url.rsplit("/", 1)[-1]
    try:
        desc = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        return None
    msg = message_factory.GetMessageClass(desc)()
    msg.ParseFromString(a.value)
    return msg


def _ensure_stdio_file(path: str) -> None:
    """The shim opens plain stdio paths append-only without creating them: create if missing."""
    if path and "://" not in path and not os.path.exists(path):
        with open(path, "ab"):
            pass


def _stdio(stdout: str, stderr: str, terminal: bool) -> tuple[str, str]:
    """Output paths as the shim needs them: existing files, and never just one of the two
    (the 1.6 shim then tries to open "" for the other) unless a terminal merges them."""
    if not terminal and bool(stdout) != bool(stderr):
        stdout, stderr = stdout or os.devnull, stderr or os.devnull
    for p in (stdout, stderr):
        _ensure_stdio_file(p)
    return stdout, stderr


# ---- blob sources for image ingestion ----------------------------------------------------

class _RegistrySource:
    def __init__(self, reg: RegistryClient):
        self.reg = reg

    def stream(self, desc: Descriptor) -> AsyncIterator[bytes]:
        return self.reg.blob(desc)

    async def read(self, desc: Descriptor) -> bytes:
        return b"".join([c async for c in self.reg.blob(desc)])


class _ArchiveSource:
    """Blobs of an OCI image layout inside a tar (blobs/<alg>/<hex>)."""

    def __init__(self, tar: tarfile.TarFile):
        self.tar = tar
        self.members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}

    def _open(self, name: str):
        m = self.members.get(name)
        if m is None:
            raise FileNotFoundError(f"{name} not in archive")
        return self.tar.extractfile(m)

    async def read_file(self, name: str) -> bytes:
        return await asyncio.to_thread(lambda: self._open(name).read())

    async def read(self, desc: Descriptor) -> bytes:
        return await self.read_file("blobs/" + desc.digest.replace(":", "/", 1))

    async def stream(self, desc: Descriptor) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(self._open, "blobs/" + desc.digest.replace(":", "/", 1))
        while True:
            chunk = await asyncio.to_thread(f.read, CHUNK)
            if not chunk:
                return
            yield chunk


# ---- the client --------------------------------------------------------------------------

class Containerd:
    """containerd at `socket_path`, every call in `namespace`.

    `runc_root` (recommended: ManagedContainerd.runc_root) is runc's state dir for this
    instance, set on every container's runtime options and on task create.
    """

    def __init__(self, socket_path: str, namespace: str = "kubeshim", *,
                 runc_root: str | None = None, snapshotter: str = DEFAULT_SNAPSHOTTER,
                 runtime: str = RUNTIME_RUNC_V2):
        self.socket_path = socket_path
        self.namespace = namespace
        self.runc_root = runc_root
        self.snapshotter = snapshotter
        self.runtime = runtime
        self._channel: grpc.aio.Channel | None = None
        self._md = ((NAMESPACE_HEADER, namespace),)
        self._image_cache: dict[str, tuple[str, ImageConfig]] = {}   # name -> (digest, config)
        self._mounts: dict[str, list] = {}
        self._blob_locks: dict[str, asyncio.Lock] = {}

    # -- connection --

    def _stubs(self):
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                f"unix://{self.socket_path}",
                options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                         ("grpc.max_send_message_length", MAX_MESSAGE)])
            ch = self._channel
            self.containers = containers_pb2_grpc.ContainersStub(ch)
            self.tasks = tasks_pb2_grpc.TasksStub(ch)
            self.images = images_pb2_grpc.ImagesStub(ch)
            self.content = content_pb2_grpc.ContentStub(ch)
            self.snapshots = snapshots_pb2_grpc.SnapshotsStub(ch)
            self.leases = leases_pb2_grpc.LeasesStub(ch)
            self.diff = diff_pb2_grpc.DiffStub(ch)
            self.events = events_pb2_grpc.EventsStub(ch)
            self.version_service = version_pb2_grpc.VersionStub(ch)
        return self

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def __aenter__(self) -> "Containerd":
        self._stubs()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _metadata(self, lease: str | None = None):
        return self._md + (((LEASE_HEADER, lease),) if lease else ())

    async def _call(self, stub_attr: str, method: str, request, *, lease: str | None = None,
                    timeout: float | None = None):
        fn = getattr(getattr(self._stubs(), stub_attr), method)
        try:
            return await fn(request, metadata=self._metadata(lease), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            raise ContainerdError(e.code(), e.details() or "") from None

    async def _ignore_not_found(self, coro: Awaitable) -> bool:
        """Await; False instead of raising when the object was already gone."""
        try:
            await coro
            return True
        except ContainerdError as e:
            if e.not_found:
                return False
            raise

    async def version(self) -> dict[str, str]:
        """{"version": "1.6.20~ds1", "revision": "..."}."""
        r = await self._call("version_service", "Version", empty_pb2.Empty())
        return {"version": r.version, "revision": r.revision}

    # -- leases --

    async def create_lease(self, expire: float = 3600.0) -> str:
        """A lease that keeps what is created under it; GC drops it after `expire` seconds."""
        lid = f"kubeshim-{uuid.uuid4().hex[:16]}"
        exp = _rfc3339(datetime.now(timezone.utc) + timedelta(seconds=expire))
        await self._call("leases", "Create", leases_pb2.CreateRequest(id=lid, labels={GC_EXPIRE: exp}))
        return lid

    async def delete_lease(self, lease_id: str) -> None:
        await self._ignore_not_found(self._call("leases", "Delete", leases_pb2.DeleteRequest(id=lease_id)))

    # -- content --

    async def content_labels(self, digest: str) -> dict[str, str] | None:
        """The labels of a committed blob, or None when the store lacks it."""
        try:
            r = await self._call("content", "Info", content_pb2.InfoRequest(digest=digest))
        except ContainerdError as e:
            if e.not_found:
                return None
            raise
        return dict(r.info.labels)

    async def update_content_labels(self, digest: str, labels: dict[str, str]) -> None:
        if not labels:
            return
        req = content_pb2.UpdateRequest(
            info=content_pb2.Info(digest=digest, labels=labels),
            update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]))
        await self._call("content", "Update", req)

    async def read_content(self, digest: str) -> bytes:
        """A whole blob from the content store."""
        call = self._stubs().content.Read(content_pb2.ReadContentRequest(digest=digest),
                                          metadata=self._metadata())
        parts = []
        try:
            async for r in call:
                parts.append(r.data)
        except grpc.aio.AioRpcError as e:
            raise ContainerdError(e.code(), e.details() or "") from None
        return b"".join(parts)

    async def write_content(self, desc: Descriptor, data: bytes | AsyncIterator[bytes],
                            labels: dict[str, str] | None = None, lease: str | None = None) -> bool:
        """Store a blob (bytes or an async chunk stream) with labels; when it is already
        present only the labels are updated. Returns True when bytes were written."""
        lock = self._blob_locks.setdefault(desc.digest, asyncio.Lock())
        async with lock:
            existing = await self.content_labels(desc.digest)
            if existing is not None:
                missing = {k: v for k, v in (labels or {}).items() if existing.get(k) != v}
                await self.update_content_labels(desc.digest, missing)
                if isinstance(data, AsyncIterator):
                    await data.aclose()
                return False
            try:
                await self._write_stream(desc, data, labels or {}, lease)
            except ContainerdError as e:
                if not e.already_exists:
                    raise
                await self.update_content_labels(desc.digest, labels or {})
            return True

    async def _write_stream(self, desc: Descriptor, data, labels: dict[str, str],
                            lease: str | None) -> None:
        ref = f"kubeshim-{desc.digest}"
        W = content_pb2

        async def requests():
            offset = 0
            if isinstance(data, (bytes, bytearray)):
                chunks = (data[i:i + CHUNK] for i in range(0, len(data), CHUNK))
                for c in chunks:
                    yield W.WriteContentRequest(action=W.WRITE, ref=ref, offset=offset, data=c)
                    offset += len(c)
            else:
                async for c in data:
                    yield W.WriteContentRequest(action=W.WRITE, ref=ref, offset=offset, data=c)
                    offset += len(c)
            yield W.WriteContentRequest(action=W.COMMIT, ref=ref, offset=offset, total=desc.size,
                                        expected=desc.digest, labels=labels)

        call = self._stubs().content.Write(requests(), metadata=self._metadata(lease))
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                await self._ignore_not_found(
                    self._call("content", "Abort", content_pb2.AbortRequest(ref=ref)))
            raise ContainerdError(e.code(), e.details() or "") from None

    # -- images --

    async def get_image(self, name: str) -> ImageInfo | None:
        """The image record by (normalised) name, or None."""
        try:
            r = await self._call("images", "Get", images_pb2.GetImageRequest(name=name))
        except ContainerdError as e:
            if e.not_found:
                return None
            raise
        return ImageInfo.from_proto(r.image)

    async def list_images(self, filters: Iterable[str] = ()) -> list[ImageInfo]:
        r = await self._call("images", "List", images_pb2.ListImagesRequest(filters=list(filters)))
        return [ImageInfo.from_proto(i) for i in r.images]

    async def delete_image(self, name: str, sync: bool = False) -> bool:
        """Delete the image record (content and snapshots go with GC). False if absent."""
        self._image_cache.pop(name, None)
        return await self._ignore_not_found(
            self._call("images", "Delete", images_pb2.DeleteImageRequest(name=name, sync=sync)))

    async def pull(self, ref: str, *, auth: tuple[str, str] | None = None,
                   plain_http: bool | None = None, ssl_context=None,
                   platform: tuple[str, str] = ("linux", "amd64")) -> ImageInfo:
        """Pull `ref` (normalised like docker) from its registry, store and unpack it.

        `auth` is (username, password) for basic or token auth; `plain_http=None` uses HTTP
        only for loopback registries.
        """
        parsed = refs.parse(ref)
        async with RegistryClient(parsed, auth=auth, plain_http=plain_http,
                                  ssl_context=ssl_context) as reg:
            target, tdata, mdesc, mdata = await reg.resolve(*platform)
            return await self._ingest(str(parsed), target, tdata, mdesc, mdata, _RegistrySource(reg))

    async def import_archive(self, path: str, *, name: str | None = None,
                             platform: tuple[str, str] = ("linux", "amd64")) -> list[ImageInfo]:
        """Import an OCI image layout tar (e.g. `skopeo copy ... oci-archive:`) and unpack it.

        Names come from the index's `io.containerd.image.name` or
        `org.opencontainers.image.ref.name` annotations; `name` overrides them for a
        single-image archive. Docker `save` archives (manifest.json only) are not supported.
        """
        tar = await asyncio.to_thread(tarfile.open, path)
        try:
            src = _ArchiveSource(tar)
            index = json.loads(await src.read_file("index.json"))
            entries = index.get("manifests") or []
            if name and len(entries) != 1:
                raise ValueError("name= needs an archive with exactly one image")
            out = []
            for entry in entries:
                target = Descriptor.from_json(entry)
                image_name = refs.normalize(name or _archive_name(entry))
                tdata = await src.read(target)
                if target.media_type in INDEX_TYPES:
                    mdesc = select_manifest(json.loads(tdata), *platform)
                    mdata = await src.read(mdesc)
                else:
                    mdesc, mdata = target, tdata
                out.append(await self._ingest(image_name, target, tdata, mdesc, mdata, src))
            return out
        finally:
            await asyncio.to_thread(tar.close)

    async def _ingest(self, name: str, target: Descriptor, tdata: bytes, mdesc: Descriptor,
                      mdata: bytes, src) -> ImageInfo:
        """Store config, layers, manifest (and index) with GC labels, record and unpack."""
        manifest = json.loads(mdata)
        config_desc = Descriptor.from_json(manifest["config"])
        layers = [Descriptor.from_json(layer) for layer in manifest.get("layers") or []]
        lease = await self.create_lease()
        try:
            config_raw = await src.read(config_desc)
            config = json.loads(config_raw)
            diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
            if len(diff_ids) != len(layers):
                raise ValueError(f"{name}: {len(layers)} layers but {len(diff_ids)} diff_ids")
            chains = chain_ids(diff_ids)
            cfg_labels = {f"{GC_REF_SNAPSHOT}.{self.snapshotter}": chains[-1]} if chains else {}
            await self.write_content(config_desc, config_raw, cfg_labels, lease)
            for layer, diff_id in zip(layers, diff_ids):
                await self.write_content(layer, src.stream(layer), {UNCOMPRESSED: diff_id}, lease)
            m_labels = {f"{GC_REF_CONTENT}.config": config_desc.digest}
            m_labels.update({f"{GC_REF_CONTENT}.l.{i}": d.digest for i, d in enumerate(layers)})
            await self.write_content(mdesc, mdata, m_labels, lease)
            if target.digest != mdesc.digest:
                children = json.loads(tdata).get("manifests") or []
                i_labels = {f"{GC_REF_CONTENT}.m.{i}": c["digest"] for i, c in enumerate(children)}
                await self.write_content(target, tdata, i_labels, lease)
            info = await self._put_image(name, target, lease)
            await self._unpack(layers, diff_ids, chains, lease)
        finally:
            await self.delete_lease(lease)
        size = mdesc.size + config_desc.size + sum(d.size for d in layers)
        self._image_cache[name] = (target.digest, ImageConfig(
            target.digest, chains[-1] if chains else "", config.get("config") or {}, size))
        return info

    async def _put_image(self, name: str, target: Descriptor, lease: str) -> ImageInfo:
        tdesc = types_descriptor_pb2.Descriptor(media_type=target.media_type, digest=target.digest,
                                                size=target.size)
        image = images_pb2.Image(name=name, target=tdesc)
        try:
            r = await self._call("images", "Create", images_pb2.CreateImageRequest(image=image),
                                 lease=lease)
        except ContainerdError as e:
            if not e.already_exists:
                raise
            r = await self._call("images", "Update", images_pb2.UpdateImageRequest(
                image=image, update_mask=field_mask_pb2.FieldMask(paths=["target"])), lease=lease)
        return ImageInfo.from_proto(r.image)

    async def _snapshot_exists(self, key: str) -> bool:
        try:
            await self._call("snapshots", "Stat", snapshots_pb2.StatSnapshotRequest(
                snapshotter=self.snapshotter, key=key))
            return True
        except ContainerdError as e:
            if e.not_found:
                return False
            raise

    async def _unpack(self, layers: list[Descriptor], diff_ids: list[str], chains: list[str],
                      lease: str) -> None:
        """Apply each layer onto its parent snapshot and commit it under its chainID."""
        parent = ""
        for layer, diff_id, chain in zip(layers, diff_ids, chains):
            if not await self._snapshot_exists(chain):
                await self._apply_layer(layer, diff_id, chain, parent, lease)
            parent = chain

    async def _apply_layer(self, layer: Descriptor, diff_id: str, chain: str, parent: str,
                           lease: str) -> None:
        key = f"extract-{time.time_ns()}-{uuid.uuid4().hex[:8]} {chain}"
        prep = await self._call("snapshots", "Prepare", snapshots_pb2.PrepareSnapshotRequest(
            snapshotter=self.snapshotter, key=key, parent=parent), lease=lease)
        try:
            applied = await self._call("diff", "Apply", diff_pb2.ApplyRequest(
                diff=types_descriptor_pb2.Descriptor(media_type=layer.media_type,
                                                     digest=layer.digest, size=layer.size),
                mounts=prep.mounts), lease=lease)
            if applied.applied.digest != diff_id:
                raise ValueError(f"layer {layer.digest}: diff_id {applied.applied.digest} "
                                 f"!= {diff_id}")
            await self._call("snapshots", "Commit", snapshots_pb2.CommitSnapshotRequest(
                snapshotter=self.snapshotter, name=chain, key=key), lease=lease)
        except ContainerdError as e:
            await self._ignore_not_found(self._call("snapshots", "Remove",
                                                    snapshots_pb2.RemoveSnapshotRequest(
                                                        snapshotter=self.snapshotter, key=key)))
            if not e.already_exists:
                raise
        except BaseException:
            await self._ignore_not_found(self._call("snapshots", "Remove",
                                                    snapshots_pb2.RemoveSnapshotRequest(
                                                        snapshotter=self.snapshotter, key=key)))
            raise

    async def image_config(self, name: str) -> ImageConfig:
        """The chainID and OCI config of a stored image (cached by target digest).
        Raises ContainerdError(NOT_FOUND) when the image is not there."""
        r = await self._call("images", "Get", images_pb2.GetImageRequest(name=name))
        digest = r.image.target.digest
        cached = self._image_cache.get(name)
        if cached and cached[0] == digest:
            return cached[1]
        target = r.image.target
        mdata = await self.read_content(digest)
        msize = target.size
        if target.media_type in INDEX_TYPES:
            m = select_manifest(json.loads(mdata))
            mdata = await self.read_content(m.digest)
            msize = m.size
        manifest = json.loads(mdata)
        config = json.loads(await self.read_content(manifest["config"]["digest"]))
        chains = chain_ids(list((config.get("rootfs") or {}).get("diff_ids") or []))
        size = msize + manifest["config"].get("size", 0) + sum(
            layer.get("size", 0) for layer in manifest.get("layers") or [])
        ic = ImageConfig(digest, chains[-1] if chains else "", config.get("config") or {}, size)
        self._image_cache[name] = (digest, ic)
        return ic

    # -- containers --

    def _runc_options(self) -> any_pb2.Any | None:
        if not self.runc_root:
            return None
        opts = runc_options_pb2.Options(root=self.runc_root)
        return any_pb2.Any(type_url=RUNC_OPTIONS_TYPE_URL, value=opts.SerializeToString())

    async def create_container(self, container_id: str, image: str, spec: dict, *,
                               labels: dict[str, str] | None = None) -> ContainerInfo:
        """Prepare a writable snapshot `container_id` on the image's top layer and record the
        container (spec, runtime runc v2 with its options). `image` is a stored image name."""
        ic = await self.image_config(image)
        lease = await self.create_lease(expire=600)
        try:
            try:
                prep = await self._call("snapshots", "Prepare", snapshots_pb2.PrepareSnapshotRequest(
                    snapshotter=self.snapshotter, key=container_id, parent=ic.chain_id), lease=lease)
            except ContainerdError as e:
                if not e.not_found:
                    raise
                self._image_cache.pop(image, None)      # stale cache: retry from the store
                ic = await self.image_config(image)
                prep = await self._call("snapshots", "Prepare", snapshots_pb2.PrepareSnapshotRequest(
                    snapshotter=self.snapshotter, key=container_id, parent=ic.chain_id), lease=lease)
            runtime = containers_pb2.Container.Runtime(name=self.runtime)
            opts = self._runc_options()
            if opts is not None:
                runtime.options.CopyFrom(opts)
            c = containers_pb2.Container(
                id=container_id, labels=labels or {}, image=image, runtime=runtime,
                spec=any_pb2.Any(type_url=SPEC_TYPE_URL, value=json.dumps(spec).encode()),
                snapshotter=self.snapshotter, snapshot_key=container_id)
            try:
                r = await self._call("containers", "Create",
                                     containers_pb2.CreateContainerRequest(container=c), lease=lease)
            except BaseException:
                await self._remove_snapshot(container_id)
                raise
        finally:
            await self.delete_lease(lease)
        self._mounts[container_id] = list(prep.mounts)
        return ContainerInfo.from_proto(r.container)

    async def get_container(self, container_id: str, with_spec: bool = False) -> ContainerInfo | None:
        try:
            r = await self._call("containers", "Get",
                                 containers_pb2.GetContainerRequest(id=container_id))
        except ContainerdError as e:
            if e.not_found:
                return None
            raise
        return ContainerInfo.from_proto(r.container, with_spec)

    async def list_containers(self, labels: dict[str, str] | None = None,
                              filters: Iterable[str] = ()) -> list[ContainerInfo]:
        """Containers carrying all `labels` (and/or matching any raw containerd `filters`)."""
        fs = list(filters)
        if labels:
            fs = [f"{label_filter(labels)},{f}" for f in fs] if fs else [label_filter(labels)]
        r = await self._call("containers", "List", containers_pb2.ListContainersRequest(filters=fs))
        return [ContainerInfo.from_proto(c) for c in r.containers]

    async def update_container_labels(self, container_id: str, labels: dict[str, str]) -> None:
        """Set (or with value "" remove) labels on a container record."""
        c = containers_pb2.Container(id=container_id, labels=labels)
        await self._call("containers", "Update", containers_pb2.UpdateContainerRequest(
            container=c, update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels])))

    async def _remove_snapshot(self, key: str) -> bool:
        return await self._ignore_not_found(self._call(
            "snapshots", "Remove", snapshots_pb2.RemoveSnapshotRequest(
                snapshotter=self.snapshotter, key=key)))

    async def snapshot_exists(self, key: str) -> bool:
        return await self._snapshot_exists(key)

    # -- tasks --

    async def create_task(self, container_id: str, *, stdout: str = "", stderr: str = "",
                          stdin: str = "", terminal: bool = False) -> int:
        """Create the container's task (process not started yet) -> pid. Plain stdio paths are
        created as empty files when missing; `file://`/`binary://` URIs and FIFOs pass through.
        When only one of stdout/stderr is given the other goes to /dev/null."""
        mounts = self._mounts.pop(container_id, None)
        if mounts is None:
            r = await self._call("snapshots", "Mounts", snapshots_pb2.MountsRequest(
                snapshotter=self.snapshotter, key=container_id))
            mounts = list(r.mounts)
        stdout, stderr = _stdio(stdout, stderr, terminal)
        req = tasks_pb2.CreateTaskRequest(container_id=container_id, rootfs=mounts, stdin=stdin,
                                          stdout=stdout, stderr=stderr, terminal=terminal)
        opts = self._runc_options()
        if opts is not None:
            req.options.CopyFrom(opts)
        r = await self._call("tasks", "Create", req)
        return r.pid

    async def start(self, container_id: str, exec_id: str = "") -> int:
        """Start the task's init process (or an exec'd process) -> pid."""
        r = await self._call("tasks", "Start", tasks_pb2.StartRequest(
            container_id=container_id, exec_id=exec_id))
        return r.pid

    async def start_task(self, container_id: str, *, stdout: str = "", stderr: str = "",
                         stdin: str = "", terminal: bool = False) -> int:
        """create_task + start -> pid of the running init process."""
        await self.create_task(container_id, stdout=stdout, stderr=stderr, stdin=stdin,
                               terminal=terminal)
        return await self.start(container_id)

    async def get_task(self, container_id: str, exec_id: str = "") -> TaskInfo | None:
        try:
            r = await self._call("tasks", "Get", tasks_pb2.GetRequest(
                container_id=container_id, exec_id=exec_id))
        except ContainerdError as e:
            if e.not_found:
                return None
            raise
        return TaskInfo.from_proto(r.process)

    async def list_tasks(self) -> dict[str, TaskInfo]:
        """Every task in the namespace by container id (reconcile after a reconnect)."""
        r = await self._call("tasks", "List", tasks_pb2.ListTasksRequest())
        return {p.id or p.container_id: TaskInfo.from_proto(p) for p in r.tasks}

    async def kill(self, container_id: str, signal: int = 15, *, exec_id: str = "",
                   all: bool = False) -> bool:
        """Send a signal; False when the task is gone."""
        return await self._ignore_not_found(self._call("tasks", "Kill", tasks_pb2.KillRequest(
            container_id=container_id, exec_id=exec_id, signal=signal, all=all)))

    async def wait(self, container_id: str, exec_id: str = "",
                   timeout: float | None = None) -> ExitStatus:
        """Block until the process exits. A timeout cancels only this call, not the process."""
        r = await self._call("tasks", "Wait", tasks_pb2.WaitRequest(
            container_id=container_id, exec_id=exec_id), timeout=timeout)
        return ExitStatus(r.exit_status, _time(r.exited_at))

    async def delete_task(self, container_id: str) -> ExitStatus | None:
        """Delete a stopped task (its shim and runc state) -> its exit; None if no task.
        Raises ContainerdError while it is still running (containerd 1.6: code UNKNOWN)."""
        try:
            r = await self._call("tasks", "Delete", tasks_pb2.DeleteTaskRequest(
                container_id=container_id))
        except ContainerdError as e:
            if e.not_found:
                return None
            raise
        return ExitStatus(r.exit_status, _time(r.exited_at))

    async def delete(self, container_id: str, *, kill_timeout: float = 10.0) -> ExitStatus | None:
        """Remove everything of a container: the task (SIGKILLed first when still running),
        the snapshot and the record. Missing parts are fine. -> the task's exit, if it had one."""
        try:
            exit_ = await self.delete_task(container_id)
        except ContainerdError:
            # containerd 1.6 answers UNKNOWN "cannot delete a running process"
            task = await self.get_task(container_id)
            if task is None or task.status == "stopped":
                raise
            await self.kill(container_id, 9, all=True)
            try:
                await self.wait(container_id, timeout=kill_timeout)
            except ContainerdError as we:
                if not we.not_found:
                    raise
            exit_ = await self.delete_task(container_id)
        self._mounts.pop(container_id, None)
        await self._remove_snapshot(container_id)
        await self._ignore_not_found(self._call(
            "containers", "Delete", containers_pb2.DeleteContainerRequest(id=container_id)))
        return exit_

    async def exec(self, container_id: str, exec_id: str, args: list[str], *,
                   env: Iterable[str] | dict | None = None, cwd: str | None = None,
                   stdin: str = "", stdout: str = "", stderr: str = "",
                   terminal: bool = False, start: bool = True) -> int:
        """Run another process in a running task, with the container's process spec as base.

        stdio are paths: plain files (created when missing) or FIFOs made by the caller
        (os.mkfifo; open the read ends before starting). Returns the pid once started
        (or 0 with start=False; then call start(container_id, exec_id)). Reap it with
        wait(container_id, exec_id) and delete_process(container_id, exec_id).
        """
        from shim.node import oci
        c = await self.get_container(container_id, with_spec=True)
        if c is None:
            raise ContainerdError(grpc.StatusCode.NOT_FOUND, f"container {container_id} not found")
        proc = oci.exec_process(c.spec or {}, args, env=env, cwd=cwd, terminal=terminal)
        stdout, stderr = _stdio(stdout, stderr, terminal)
        await self._call("tasks", "Exec", tasks_pb2.ExecProcessRequest(
            container_id=container_id, exec_id=exec_id, stdin=stdin, stdout=stdout, stderr=stderr,
            terminal=terminal,
            spec=any_pb2.Any(type_url=PROCESS_TYPE_URL, value=json.dumps(proc).encode())))
        return await self.start(container_id, exec_id) if start else 0

    async def delete_process(self, container_id: str, exec_id: str) -> ExitStatus | None:
        """Reap an exec'd process after it exited -> its exit; None if unknown."""
        try:
            r = await self._call("tasks", "DeleteProcess", tasks_pb2.DeleteProcessRequest(
                container_id=container_id, exec_id=exec_id))
        except ContainerdError as e:
            if e.not_found:
                return None
            raise
        return ExitStatus(r.exit_status, _time(r.exited_at))

    async def resize_pty(self, container_id: str, width: int, height: int,
                         exec_id: str = "") -> None:
        await self._call("tasks", "ResizePty", tasks_pb2.ResizePtyRequest(
            container_id=container_id, exec_id=exec_id, width=width, height=height))

    async def close_stdin(self, container_id: str, exec_id: str = "") -> None:
        await self._call("tasks", "CloseIO", tasks_pb2.CloseIORequest(
            container_id=container_id, exec_id=exec_id, stdin=True))

    async def pids(self, container_id: str) -> list[int]:
        r = await self._call("tasks", "ListPids", tasks_pb2.ListPidsRequest(
            container_id=container_id))
        return [p.pid for p in r.processes]

    async def metrics(self, container_ids: Iterable[str] = ()) -> dict[str, dict]:
        """cgroup stats per running task: {"cpu_usage_ns", "memory_usage_bytes",
        "memory_working_set_bytes", "pids"} (cgroup v1 or v2 payloads)."""
        fs = [f'id=="{i}"' for i in container_ids]
        r = await self._call("tasks", "Metrics", tasks_pb2.MetricsRequest(filters=fs))
        out = {}
        for m in r.metrics:
            data = _decode_any(m.data)
            if data is not None:
                out[m.id] = _metrics_dict(data)
        return out

    # -- events --

    def subscribe(self, filters: Iterable[str] | None = None) -> "Subscription":
        """An event stream (async context manager and async iterator of Event).

        Default filters: every /tasks/ topic in this namespace. Once `async with` returns
        the subscription is live on the server (a published marker came back), so an exit
        of a task created afterwards cannot be missed.
        """
        if filters is None:
            filters = [f'namespace=="{self.namespace}",topic~="^/tasks/"']
        return Subscription(self, list(filters))


def _archive_name(entry: dict) -> str:
    ann = entry.get("annotations") or {}
    name = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")
    if not name:
        raise ValueError("archive entry has no image name annotation; pass name=")
    return name


def _metrics_dict(m) -> dict:
    if isinstance(m, cgroups_v1_metrics_pb2.Metrics):
        usage = m.memory.usage.usage
        inactive = m.memory.total_inactive_file
        return {"cpu_usage_ns": m.cpu.usage.total, "memory_usage_bytes": usage,
                "memory_working_set_bytes": max(0, usage - inactive), "pids": m.pids.current}
    if isinstance(m, cgroups_v2_metrics_pb2.Metrics):
        usage = m.memory.usage
        return {"cpu_usage_ns": m.cpu.usage_usec * 1000, "memory_usage_bytes": usage,
                "memory_working_set_bytes": max(0, usage - m.memory.inactive_file),
                "pids": m.pids.current}
    return {}


class Subscription:
    """A live containerd event subscription; see Containerd.subscribe."""

    def __init__(self, client: Containerd, filters: list[str]):
        self.client = client
        self.filters = filters
        self._token = uuid.uuid4().hex
        self._call = None
        self._buffer: list[Event] = []

    async def __aenter__(self) -> "Subscription":
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def open(self, timeout: float = 10.0) -> None:
        c = self.client._stubs()
        sync = f'topic=="{SYNC_TOPIC}",namespace=="{c.namespace}"'
        self._call = c.events.Subscribe(
            events_pb2.SubscribeRequest(filters=self.filters + [sync]), metadata=c._metadata())
        await asyncio.wait_for(self._barrier(), timeout)

    async def _barrier(self) -> None:
        """Publish markers until one comes back: from then on the subscription is live."""
        marker = events_task_pb2.TaskOOM(container_id=self._token)
        req = events_pb2.PublishRequest(topic=SYNC_TOPIC, event=any_pb2.Any(
            type_url="containerd.events.TaskOOM", value=marker.SerializeToString()))
        reader = asyncio.ensure_future(self._read_raw())
        try:
            while True:
                await self.client._call("events", "Publish", req)
                done, _ = await asyncio.wait({reader}, timeout=0.2)
                while done:
                    env = reader.result()
                    if env is None:
                        raise ContainerdError(grpc.StatusCode.UNAVAILABLE, "event stream ended")
                    if env.topic == SYNC_TOPIC:
                        return
                    self._buffer.append(_event(env))
                    reader = asyncio.ensure_future(self._read_raw())
                    done, _ = await asyncio.wait({reader}, timeout=0)
        finally:
            if not reader.done():
                reader.cancel()
                try:
                    await reader
                except (asyncio.CancelledError, Exception):
                    pass

    async def _read_raw(self):
        try:
            msg = await self._call.read()
        except grpc.aio.AioRpcError as e:
            raise ContainerdError(e.code(), e.details() or "") from None
        return None if msg is grpc.aio.EOF else msg

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Event:
        if self._buffer:
            return self._buffer.pop(0)
        while True:
            env = await self._read_raw()
            if env is None:
                raise StopAsyncIteration
            if env.topic != SYNC_TOPIC:
                return _event(env)

    async def next(self, timeout: float | None = None) -> Event:
        """The next event, waiting at most `timeout` seconds (asyncio.TimeoutError)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None


def _event(env) -> Event:
    payload = _decode_any(env.event)
    kw = {}
    if payload is not None:
        for attr, key in (("container_id", "container_id"), ("pid", "pid"),
                          ("exit_status", "exit_status")):
            if hasattr(payload, attr):
                kw[key] = getattr(payload, attr)
        if hasattr(payload, "exec_id"):
            kw["exec_id"] = payload.exec_id
        elif hasattr(payload, "id") and hasattr(payload, "container_id"):
            kw["exec_id"] = payload.id
        if hasattr(payload, "exited_at"):
            kw["exited_at"] = _time(payload.exited_at)
    return Event(topic=env.topic, namespace=env.namespace, timestamp=_time(env.timestamp),
                 type=env.event.type_url, payload=payload, **kw)
