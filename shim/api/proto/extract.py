"""Dev-time tool: (re)write the kubeshim .proto subset from a kubectl v1.32 binary.

Not imported at runtime. It owns the provenance of the schema files in this folder:

* Message and field names, numbers and types come from the gzipped
  FileDescriptorProtos that every Go binary linking k8s.io/api and
  k8s.io/apimachinery embeds (gogo `proto.RegisterFile`), i.e. exactly the
  upstream generated.proto files of the client's version.
* Protobuf cannot tell "zero" from "absent" for the Go fields that are not
  pointers (gogo always writes them), so the decoder also needs each field's Go
  json tag and pointer-ness. Those are read from the Go runtime type
  descriptors (abi.StructType / StructField) of the same binary and recorded
  as the custom field options `(kubeshim.json)` and `(kubeshim.go_pointer)`
  declared in gotags.proto.

Only messages reachable from the kinds kubeshim decodes are written.

Usage: python shim/api/proto/extract.py [/usr/bin/kubectl]  then  sh shim/api/proto/generate.sh
Assumes a non-PIE, statically linked amd64 Go >= 1.21 binary (abi.Type layout).
"""
from __future__ import annotations

import re
import struct
import sys
import zlib
from pathlib import Path

from google.protobuf import descriptor_pb2

HERE = Path(__file__).resolve().parent

# proto package -> file name written in this folder
FILES = {
    "k8s.io.apimachinery.pkg.runtime": "runtime",
    "k8s.io.apimachinery.pkg.runtime.schema": "runtime_schema",
    "k8s.io.apimachinery.pkg.util.intstr": "intstr",
    "k8s.io.apimachinery.pkg.api.resource": "resource",
    "k8s.io.apimachinery.pkg.apis.meta.v1": "meta_v1",
    "k8s.io.api.core.v1": "core_v1",
    "k8s.io.api.autoscaling.v1": "autoscaling_v1",
    "k8s.io.api.policy.v1": "policy_v1",
    "k8s.io.api.authorization.v1": "authorization_v1",
    "k8s.io.api.authentication.v1": "authentication_v1",
    "k8s.io.api.coordination.v1": "coordination_v1",
    "k8s.io.api.rbac.v1": "rbac_v1",
}

ROOTS = [
    "k8s.io.apimachinery.pkg.runtime.Unknown",
    "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    *(f"k8s.io.api.core.v1.{k}" for k in (
        "Pod", "ReplicationController", "Service", "Endpoints", "Secret", "Namespace",
        "ResourceQuota", "Node", "Event", "ConfigMap", "ServiceAccount", "Binding",
        "LimitRange")),
    "k8s.io.api.autoscaling.v1.Scale",
    "k8s.io.api.policy.v1.Eviction",
    *(f"k8s.io.api.authorization.v1.{k}" for k in (
        "SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview",
        "LocalSubjectAccessReview")),
    *(f"k8s.io.api.authentication.v1.{k}" for k in (
        "TokenRequest", "SelfSubjectReview", "TokenReview")),
    "k8s.io.api.coordination.v1.Lease",
    *(f"k8s.io.api.rbac.v1.{k}" for k in (
        "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")),
]

GO_KIND_PTR = 22

SCALAR = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
    8: "bool", 9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64",
    17: "sint32", 18: "sint64",
}


# ---- ELF / Go binary access ----------------------------------------------------------------

class Binary:
    def __init__(self, path: str):
        self.data = open(path, "rb").read()
        d = self.data
        phoff = struct.unpack_from("<Q", d, 0x20)[0]
        phnum = struct.unpack_from("<H", d, 0x38)[0]
        self.segs = []
        for i in range(phnum):
            p_type, _, off, vaddr, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", d, phoff + 56 * i)
            if p_type == 1:  # PT_LOAD
                self.segs.append((vaddr, off, filesz))
        self.rodata = self._section_addr(b".rodata")

    def _section_addr(self, name: bytes) -> int:
        d = self.data
        shoff = struct.unpack_from("<Q", d, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
        str_off = struct.unpack_from("<Q", d, shoff + shentsize * shstrndx + 0x18)[0]
        for i in range(shnum):
            base = shoff + shentsize * i
            nm = struct.unpack_from("<I", d, base)[0]
            if d[str_off + nm:].split(b"\0", 1)[0] == name:
                return struct.unpack_from("<Q", d, base + 0x10)[0]
        raise SystemExit(f"no section {name!r}")

    def off(self, vaddr: int) -> int | None:
        for va, off, size in self.segs:
            if va <= vaddr < va + size:
                return off + vaddr - va
        return None

    def uvarint(self, i: int) -> tuple[int, int]:
        x = shift = 0
        while True:
            b = self.data[i]
            i += 1
            x |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return x, i

    def go_name(self, off: int) -> tuple[str, str]:
        """Decode an abi.Name at file offset `off` -> (name, tag)."""
        flags = self.data[off]
        n, i = self.uvarint(off + 1)
        name = self.data[i:i + n].decode("latin1")
        tag = ""
        if flags & 2:
            t, j = self.uvarint(i + n)
            tag = self.data[j:j + t].decode("latin1")
        return name, tag


def embedded_descriptors(b: Binary) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    out = {}
    for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", b.data):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(b.data[m.start():m.start() + (1 << 21)])
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception:
            continue
        if fd.name.endswith("generated.proto") and fd.package in FILES:
            out[fd.package] = fd
    return out


def go_struct_fields(b: Binary) -> dict[str, dict[int, tuple[str, bool]]]:
    """Go structs with protobuf tags: "pkgpath.Type" -> {field number: (json tag, is_pointer)}.

    Finds every StructField whose name carries a `protobuf:"..."` tag, then every
    []StructField slice header pointing at (or just before) such a field; the
    abi.StructType holding the header gives the type and package name.
    """
    d = b.data
    blobs = set()
    for m in re.finditer(rb'protobuf:"', d):
        for start in range(m.start() - 1, max(0, m.start() - 600), -1):
            flags = d[start]
            if flags & ~0x0F or not flags & 2:
                continue
            try:
                n, i = b.uvarint(start + 1)
                if not 0 < n <= 80 or not re.fullmatch(rb"[A-Za-z_]\w*", d[i:i + n]):
                    continue
                t, j = b.uvarint(i + n)
            except IndexError:
                continue
            if j <= m.start() < j + t and d[j + t - 1:j + t] == b'"':
                blobs.add(start)
                break
    lo = b.segs[1][1]
    hi = b.segs[-1][1] + b.segs[-1][2]
    va0 = b.segs[1][0] - b.segs[1][1]
    qwords = [q for (q,) in struct.iter_unpack("<Q", d[lo:hi - (hi - lo) % 8])]
    blob_vas = {_o2v(b, o) for o in blobs}
    field_vas = {lo + 8 * k + va0 for k, q in enumerate(qwords) if q in blob_vas}
    starts = {f - 24 * j for f in field_vas for j in range(3)}
    result: dict[str, dict[int, tuple[str, bool]]] = {}
    for k in range(len(qwords) - 2):
        if qwords[k] not in starts or not (0 < qwords[k + 1] <= 300 and qwords[k + 1] == qwords[k + 2]):
            continue
        fo = b.off(qwords[k])
        fields = {}
        ok = True
        for i in range(qwords[k + 1]):
            name_va, typ_va, _ = struct.unpack_from("<QQQ", d, fo + 24 * i)
            no, to = b.off(name_va), b.off(typ_va)
            if no is None or to is None:
                ok = False
                break
            _, tag = b.go_name(no)
            pb = re.search(r'protobuf:"([^"]*)"', tag)
            if not pb or pb.group(1) == "-":
                continue
            js = re.search(r'json:"([^"]*)"', tag)
            fields[int(pb.group(1).split(",")[1])] = (js.group(1) if js else "", d[to + 23] & 0x1F == GO_KIND_PTR)
        if not ok or not fields:
            continue
        t = lo + 8 * k - 56  # abi.Type precedes PkgPath (8) and Fields (24)
        tflag = d[t + 20]
        tname = b.go_name(b.off(b.rodata + struct.unpack_from("<i", d, t + 40)[0]))[0]
        if tflag & 2:
            tname = tname[1:]
        pkg = b.go_name(b.off(b.rodata + struct.unpack_from("<i", d, t + 80)[0]))[0] if tflag & 1 else ""
        result[pkg + "." + tname.split(".", 1)[-1]] = fields
    return result


def _o2v(b: Binary, off: int) -> int:
    for va, o, size in b.segs:
        if o <= off < o + size:
            return va + off - o
    raise ValueError(off)


# ---- .proto rendering ----------------------------------------------------------------------

def index_messages(fds):
    msgs = {}
    for pkg, fd in fds.items():
        for m in fd.message_type:
            msgs[f"{pkg}.{m.name}"] = (pkg, m)
    return msgs


def reachable(msgs) -> set[str]:
    seen: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        _, m = msgs[name]
        for f in _all_fields(m):
            if f.type == f.TYPE_MESSAGE and not f.type_name.startswith(f".{name}."):
                todo.append(f.type_name[1:])
    return seen


def _all_fields(m):
    yield from m.field
    for n in m.nested_type:
        yield from n.field


def go_key(pkg: str, msg: str) -> str:
    return pkg.replace(".", "/").replace("k8s/io", "k8s.io") + "." + msg


def render_field(pkg, f, m, gofacts) -> str:
    entries = {f".{pkg}.{m.name}.{n.name}": n for n in m.nested_type if n.options.map_entry}
    label = {f.LABEL_OPTIONAL: "optional", f.LABEL_REPEATED: "repeated", f.LABEL_REQUIRED: "required"}[f.label]
    if f.type_name in entries:
        k, v = entries[f.type_name].field
        typ = f"map<{_type(k)}, {_type(v)}>"
        label = ""
    else:
        typ = _type(f)
    opts = []
    if f.options.HasField("packed"):
        opts.append(f"packed = {str(f.options.packed).lower()}")
    if gofacts is not None and f.number in gofacts:
        js, ptr = gofacts[f.number]
        opts.append(f'(kubeshim.json) = "{js}"')
        if ptr:
            opts.append("(kubeshim.go_pointer) = true")
    o = f" [{', '.join(opts)}]" if opts else ""
    return f"  {label + ' ' if label else ''}{typ} {f.name} = {f.number}{o};"


def _type(f) -> str:
    if f.type == f.TYPE_MESSAGE:
        return f.type_name
    return SCALAR[f.type]


def render_file(pkg, names, msgs, gostructs) -> str:
    deps = set()
    body = []
    for name in sorted(names):
        _, m = msgs[name]
        facts = gostructs.get(go_key(pkg, m.name))
        if facts is None:
            print(f"note: no Go struct tags for {name}", file=sys.stderr)
        body.append(f"message {m.name} {{")
        for f in m.field:
            body.append(render_field(pkg, f, m, facts))
        for f in _all_fields(m):
            owner = f.type_name.rsplit(".", 1)[0][1:]
            if f.type == f.TYPE_MESSAGE and owner != pkg and owner in FILES:
                deps.add(owner)
        body.append("}\n")
    head = [
        "// Generated by shim/api/proto/extract.py from the k8s.io generated.proto descriptors embedded in",
        "// kubectl v1.32 (wire-compatible subset: only messages reachable from the kinds kubeshim decodes).",
        "// (kubeshim.json) = the Go field's json struct tag; (kubeshim.go_pointer) = Go field is a pointer.",
        'syntax = "proto2";',
        "",
        f"package {pkg};",
        "",
    ]
    if "(kubeshim." in "\n".join(body):
        head.append('import "shim/api/proto/gotags.proto";')
    head += [f'import "shim/api/proto/{FILES[d]}.proto";' for d in sorted(deps)]
    return "\n".join(head) + "\n\n" + "\n".join(body)


def main(path: str) -> None:
    b = Binary(path)
    fds = embedded_descriptors(b)
    missing = set(FILES) - set(fds)
    if missing:
        raise SystemExit(f"descriptors not found for {sorted(missing)}")
    gostructs = go_struct_fields(b)
    msgs = index_messages(fds)
    keep = reachable(msgs)
    for pkg, fname in FILES.items():
        names = sorted(n for n in keep if msgs[n][0] == pkg)
        if names:
            (HERE / f"{fname}.proto").write_text(render_file(pkg, names, msgs, gostructs))
            print(f"wrote {fname}.proto: {len(names)} messages", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/kubectl")
