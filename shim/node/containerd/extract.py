"""Dev-time tool: (re)write this folder's .proto files from a containerd 1.6 binary.

Not imported at runtime. It owns the provenance of the containerd API schema:
every Go binary built with gogo protobuf embeds the gzipped FileDescriptorProto
of each .proto it links (`proto.RegisterFile`). Debian 12's /usr/bin/containerd
(1.6.20) carries exactly the api/ files of its tag, so message names, field
numbers and types written here are the server's own (cross-checked against
containerd's api/ folder: CreateTaskRequest.rootfs = 3, Image.created_at = 7,
leases CreateRequest.labels = 3).

The files are written without gogoproto options (they change only Go code, not
the wire) and renamed flat into this folder so that protoc's Python output
imports them as `shim.node.containerd.<name>_pb2`. Proto package names are kept:
they form the gRPC method paths and the type URLs.

Usage: python shim/node/containerd/extract.py [/usr/bin/containerd]
       then  sh shim/node/containerd/generate.sh
"""
from __future__ import annotations

import re
import sys
import zlib
from pathlib import Path

from google.protobuf import descriptor_pb2

HERE = Path(__file__).resolve().parent
LOCAL = "shim/node/containerd"
CD = "github.com/containerd/containerd/"

# upstream file name -> local file stem
FILES = {
    CD + "api/types/mount.proto": "types_mount",
    CD + "api/types/descriptor.proto": "types_descriptor",
    CD + "api/types/platform.proto": "types_platform",
    CD + "api/types/metrics.proto": "types_metrics",
    CD + "api/types/task/task.proto": "types_task",
    CD + "api/services/containers/v1/containers.proto": "containers",
    CD + "api/services/tasks/v1/tasks.proto": "tasks",
    CD + "api/services/images/v1/images.proto": "images",
    CD + "api/services/content/v1/content.proto": "content",
    CD + "api/services/snapshots/v1/snapshots.proto": "snapshots",
    CD + "api/services/leases/v1/leases.proto": "leases",
    CD + "api/services/diff/v1/diff.proto": "diff",
    CD + "api/services/events/v1/events.proto": "events",
    CD + "api/services/namespaces/v1/namespace.proto": "namespaces",
    CD + "api/services/version/v1/version.proto": "version",
    CD + "api/events/task.proto": "events_task",
    CD + "api/events/container.proto": "events_container",
    CD + "api/events/image.proto": "events_image",
    CD + "api/events/snapshot.proto": "events_snapshot",
    CD + "runtime/v2/runc/options/oci.proto": "runc_options",
    "github.com/containerd/cgroups/stats/v1/metrics.proto": "cgroups_v1_metrics",
    "github.com/containerd/cgroups/v2/stats/metrics.proto": "cgroups_v2_metrics",
}

SCALAR = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
    8: "bool", 9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64",
    17: "sint32", 18: "sint64",
}
TYPE_MESSAGE, TYPE_ENUM = 11, 14
LABEL_REPEATED = 3


def embedded_descriptors(path: str) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    data = Path(path).read_bytes()
    out = {}
    for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", data):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[m.start():m.start() + (1 << 21)])
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:
            continue
        if fd.name in FILES:
            out[fd.name] = fd
    return out


def field_type(f: descriptor_pb2.FieldDescriptorProto) -> str:
    if f.type in (TYPE_MESSAGE, TYPE_ENUM):
        return f.type_name  # fully qualified with a leading dot: valid proto syntax
    return SCALAR[f.type]


def render_enum(e, indent: str) -> list[str]:
    lines = [f"{indent}enum {e.name} {{"]
    lines += [f"{indent}  {v.name} = {v.number};" for v in e.value]
    return lines + [f"{indent}}}"]


def render_message(m, indent: str) -> list[str]:
    maps = {n.name: n for n in m.nested_type if n.options.map_entry}
    lines = [f"{indent}message {m.name} {{"]
    for e in m.enum_type:
        lines += render_enum(e, indent + "  ")
    for n in m.nested_type:
        if not n.options.map_entry:
            lines += render_message(n, indent + "  ")
    for f in m.field:
        entry = maps.get(f.type_name.rsplit(".", 1)[-1]) if f.type == TYPE_MESSAGE else None
        if entry is not None and f.label == LABEL_REPEATED:
            k, v = entry.field
            decl = f"map<{field_type(k)}, {field_type(v)}>"
        else:
            decl = ("repeated " if f.label == LABEL_REPEATED else "") + field_type(f)
        lines.append(f"{indent}  {decl} {f.name} = {f.number};")
    return lines + [f"{indent}}}"]


def render_service(s) -> list[str]:
    lines = [f"service {s.name} {{"]
    for m in s.method:
        req = ("stream " if m.client_streaming else "") + m.input_type
        resp = ("stream " if m.server_streaming else "") + m.output_type
        lines.append(f"  rpc {m.name}({req}) returns ({resp});")
    return lines + ["}"]


def render(fd: descriptor_pb2.FileDescriptorProto) -> str:
    lines = [f"// Generated by extract.py from containerd 1.6's embedded descriptor of {fd.name}.",
             "// Field numbers and package are upstream's; gogoproto options are dropped.",
             'syntax = "proto3";', "", f"package {fd.package};", ""]
    for dep in fd.dependency:
        if dep in FILES:
            lines.append(f'import "{LOCAL}/{FILES[dep]}.proto";')
        elif dep.startswith("google/protobuf/"):
            lines.append(f'import "{dep}";')
    lines.append("")
    for e in fd.enum_type:
        lines += render_enum(e, "") + [""]
    for m in fd.message_type:
        lines += render_message(m, "") + [""]
    for s in fd.service:
        lines += render_service(s) + [""]
    return "\n".join(lines)


def main(binary: str = "/usr/bin/containerd") -> None:
    found = embedded_descriptors(binary)
    missing = sorted(set(FILES) - set(found))
    if missing:
        raise SystemExit(f"not in {binary}: {missing}")
    for name, fd in found.items():
        (HERE / f"{FILES[name]}.proto").write_text(render(fd))
        print(f"wrote {FILES[name]}.proto ({fd.package})")


if __name__ == "__main__":
    main(*sys.argv[1:])
