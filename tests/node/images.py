"""Test helper: a one-layer OCI image around Debian's static /bin/busybox.

`build_layout(dir)` writes an OCI image layout (oci-layout, index.json, blobs/)
and `build_archive(path)` tars it (the format `skopeo copy ... oci-archive:`
reads and containerd's import takes). Everything is deterministic for a given
busybox binary, so digests are stable within a test run.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "echo", "sleep", "cat", "ls", "true", "false", "env", "id", "wget", "timeout",
           "hostname", "ps", "kill")


@dataclass(frozen=True)
class BuiltImage:
    path: str                 # the archive (or layout dir)
    name: str                 # the image name annotated in index.json
    manifest_digest: str
    config_digest: str
    layer_digest: str
    diff_id: str
    size: int                 # manifest + config + layer bytes


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "tmp", "etc", "proc", "sys", "dev", "run"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(ti)
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        ti = tarfile.TarInfo("bin/busybox")
        ti.size, ti.mode = len(data), 0o755
        tar.addfile(ti, io.BytesIO(data))
        for applet in APPLETS:
            ti = tarfile.TarInfo(f"bin/{applet}")
            ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(ti)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
        ti = tarfile.TarInfo("etc/passwd")
        ti.size, ti.mode = len(passwd), 0o644
        tar.addfile(ti, io.BytesIO(passwd))
    return buf.getvalue()


def build_layout(directory: str, name: str = "docker.io/library/busybox:test",
                 cmd: tuple[str, ...] = ("sh",)) -> BuiltImage:
    """Write an OCI image layout for a one-layer busybox image into `directory`."""
    raw = _layer_tar()
    layer = gzip.compress(raw, mtime=0)
    diff_id = _digest(raw)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": list(cmd), "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "kubeshim tests"}],
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(layer), "size": len(layer)}],
    }, sort_keys=True).encode()
    tag = name.rsplit(":", 1)[-1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": _digest(manifest), "size": len(manifest),
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
    }]}
    blobs = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    for data in (layer, config, manifest):
        with open(os.path.join(blobs, _digest(data).split(":", 1)[1]), "wb") as f:
            f.write(data)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump(index, f)
    return BuiltImage(directory, name, _digest(manifest), _digest(config), _digest(layer), diff_id,
                      len(manifest) + len(config) + len(layer))


def build_archive(path: str, name: str = "docker.io/library/busybox:test",
                  cmd: tuple[str, ...] = ("sh",)) -> BuiltImage:
    """An OCI layout tar at `path` (the layout itself goes to `path` + ".d")."""
    img = build_layout(path + ".d", name, cmd)
    with tarfile.open(path, "w") as tar:
        for entry in ("oci-layout", "index.json", "blobs"):
            tar.add(os.path.join(img.path, entry), arcname=entry)
    return BuiltImage(path, img.name, img.manifest_digest, img.config_digest, img.layer_digest,
                      img.diff_id, img.size)
