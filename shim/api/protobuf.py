"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) -> JSON-shaped dicts.

client-go 0.32 typed clients (kubectl create <subcommand>, kubectl auth can-i, helm's
release storage, typed DeleteOptions) send built-in objects as the 4-byte magic
"k8s\\0" followed by a runtime.Unknown {typeMeta, raw, contentEncoding, contentType}
whose `raw` is the object encoded per k8s.io/api generated.proto.

This module owns turning such a body into exactly the dict a JSON client would
have sent for the same Go object. The schema is the .proto subset in
shim/api/proto/ (see extract.py there), parsed by the generated *_pb2 classes;
the conversion below walks the message descriptors and applies Go's
encoding/json rules, using the Go json tag and pointer-ness recorded on each
field as the options (kubeshim.json) / (kubeshim.go_pointer):

* scalar (string/int/bool/bytes) fields: gogo writes non-pointer fields even when
  zero, so a zero value is dropped when the json tag has `omitempty` and the Go
  field is not a pointer (exactly what encoding/json does); pointer fields are on
  the wire only when set, and are kept even when zero (e.g. gracePeriodSeconds: 0,
  replicas: 0). A non-pointer field without omitempty that is missing from the
  wire is emitted with its zero value, as Go would after decoding.
* nested messages: kept even when empty (encoding/json never omits structs), so
  `spec: {}` / `status: {}` appear exactly as in kubectl's JSON; `,inline` fields
  (Volume.volumeSource, Probe.handler, ...) are flattened into the parent.
* repeated / map fields: absent when empty; ints stay ints, bytes become base64.
* special types follow their own MarshalJSON: Time (RFC 3339 seconds; the zero
  time is None, i.e. JSON null, as in kubectl's `creationTimestamp: null`), MicroTime (6 fractional digits), Duration
  (Go duration string), Quantity (its string), IntOrString (int or str),
  FieldsV1 / RawExtension (the embedded JSON), ExtraValue (a list of strings).
"""
from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
from typing import Any

from google.protobuf import message as _message
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from shim.api import errors
from shim.api.proto import (authentication_v1_pb2, authorization_v1_pb2, autoscaling_v1_pb2,
                            coordination_v1_pb2, core_v1_pb2, gotags_pb2, meta_v1_pb2,
                            policy_v1_pb2, rbac_v1_pb2, runtime_pb2)

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
SCHEME = "pkg/api/legacyscheme/scheme.go:30"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"

# apiVersion -> {kind: message class}. DeleteOptions is registered in every group version
# (metav1.AddToGroupVersion), plus meta.k8s.io/v1 itself.
KINDS: dict[str, dict[str, type]] = {
    "v1": {k: getattr(core_v1_pb2, k) for k in (
        "Pod", "ReplicationController", "Service", "Endpoints", "Secret", "Namespace",
        "ResourceQuota", "Node", "Event", "ConfigMap", "ServiceAccount", "Binding", "LimitRange")},
    "autoscaling/v1": {"Scale": autoscaling_v1_pb2.Scale},
    "policy/v1": {"Eviction": policy_v1_pb2.Eviction},
    "authorization.k8s.io/v1": {k: getattr(authorization_v1_pb2, k) for k in (
        "SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview",
        "LocalSubjectAccessReview")},
    "authentication.k8s.io/v1": {k: getattr(authentication_v1_pb2, k) for k in (
        "TokenRequest", "SelfSubjectReview", "TokenReview")},
    "coordination.k8s.io/v1": {"Lease": coordination_v1_pb2.Lease},
    "rbac.authorization.k8s.io/v1": {k: getattr(rbac_v1_pb2, k) for k in (
        "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")},
    "meta.k8s.io/v1": {},
}
for _kinds in KINDS.values():
    _kinds["DeleteOptions"] = meta_v1_pb2.DeleteOptions


# ---- public API ----------------------------------------------------------------------------

def is_protobuf(content_type: str | None) -> bool:
    """True for `application/vnd.kubernetes.protobuf` (parameters ignored)."""
    return bool(content_type) and content_type.split(";", 1)[0].strip().lower() == CONTENT_TYPE


def decode(body: bytes) -> dict:
    """Decode a "k8s\\0"-prefixed protobuf body into the JSON-shaped object (with apiVersion/kind).

    Raises errors.bad_request (400) for a missing prefix, malformed protobuf, or an
    unknown apiVersion/kind.
    """
    api_version, kind, raw = unwrap(body)
    cls = message_class(api_version, kind)
    msg = _parse(cls, raw, kind)
    out: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    out.update(to_dict(msg))
    return out


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """Check the magic prefix and parse the runtime.Unknown envelope -> (apiVersion, kind, raw)."""
    if not body:
        raise errors.bad_request("empty data")
    if not body.startswith(MAGIC):
        raise errors.bad_request("provided data does not appear to be a protobuf message, "
                                 "expected prefix [107 56 115 0]")
    if len(body) == len(MAGIC):
        raise errors.bad_request("empty body")
    unk = _parse(runtime_pb2.Unknown, body[len(MAGIC):], "Unknown")
    api_version, kind = _text(unk.typeMeta.apiVersion), _text(unk.typeMeta.kind)
    type_meta = f'runtime.TypeMeta{{APIVersion:"{api_version}", Kind:"{kind}"}}'
    if not kind:
        raise errors.bad_request(f"Object 'Kind' is missing in '{type_meta}'")
    if not api_version:
        raise errors.bad_request(f"Object 'apiVersion' is missing in '{type_meta}'")
    if unk.contentEncoding:
        raise errors.bad_request(f'unsupported content encoding "{unk.contentEncoding}"')
    return api_version, kind, unk.raw


def message_class(api_version: str, kind: str) -> type:
    """The generated message class for apiVersion/kind, or 400 `no kind ... is registered`."""
    cls = KINDS.get(api_version, {}).get(kind)
    if cls is None:
        raise errors.bad_request(
            f'no kind "{kind}" is registered for version "{api_version}" in scheme "{SCHEME}"')
    return cls


def to_dict(msg: _message.Message) -> dict:
    """Convert a parsed message to its Go-JSON dict (see the module docstring for the rules)."""
    out: dict[str, Any] = {}
    present = {f.number for f, _ in msg.ListFields()}
    for field in msg.DESCRIPTOR.fields:
        tag = _json_tag(field)
        if tag is None:
            continue
        name, omitempty, inline = tag
        if field.number in present:
            value = _field_value(msg, field, omitempty)
        else:
            value = _missing_value(field, omitempty)
        if value is _OMIT:
            continue
        if inline and isinstance(value, dict):
            out.update(value)
        else:
            out[name] = value
    return out


# ---- field conversion ----------------------------------------------------------------------

_OMIT = object()
_JSON_OPT = gotags_pb2.json
_PTR_OPT = gotags_pb2.go_pointer
_SCALAR_ZERO = {FieldDescriptor.TYPE_STRING: "", FieldDescriptor.TYPE_BYTES: b"",
                FieldDescriptor.TYPE_BOOL: False}


@functools.lru_cache(maxsize=None)
def _json_tag(field: FieldDescriptor) -> tuple[str, bool, bool] | None:
    """(json name, omitempty, inline) from the Go json tag; None for `json:"-"`."""
    opts = field.GetOptions()
    if not opts.HasExtension(_JSON_OPT):
        return field.name, True, False
    tag = opts.Extensions[_JSON_OPT]
    if tag == "-":
        return None
    name, _, flags = tag.partition(",")
    flags_set = set(flags.split(",")) if flags else set()
    return name or field.name, "omitempty" in flags_set, "inline" in flags_set


@functools.lru_cache(maxsize=None)
def _is_pointer(field: FieldDescriptor) -> bool:
    opts = field.GetOptions()
    return opts.HasExtension(_PTR_OPT) and opts.Extensions[_PTR_OPT]


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == FieldDescriptor.TYPE_MESSAGE
            and field.message_type.GetOptions().map_entry)


def _field_value(msg: _message.Message, field: FieldDescriptor, omitempty: bool) -> Any:
    value = getattr(msg, field.name)
    if _is_map(field):
        vfield = field.message_type.fields_by_name["value"]
        return {_text(k): _single(vfield, v) for k, v in value.items()} if value else _OMIT
    if field.is_repeated:
        return [_single(field, v) for v in value] if value else _OMIT
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_value(value)
    if omitempty and not _is_pointer(field) and not value:
        return _OMIT
    return _single(field, value)


def _missing_value(field: FieldDescriptor, omitempty: bool) -> Any:
    """What Go's JSON encoder writes for a field the wire did not carry (Go zero value)."""
    if _is_pointer(field) or field.is_repeated:
        return _OMIT
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_value(message_factory.GetMessageClass(field.message_type)())
    if omitempty:
        return _OMIT
    return _single(field, _SCALAR_ZERO.get(field.type, 0))


def _single(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        v = _message_value(value)
        return None if v is _OMIT else v
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.type == FieldDescriptor.TYPE_STRING:
        return _text(value)
    return value


def _text(value: str | bytes) -> str:
    """proto2 strings are not UTF-8 checked (upb hands back bytes); Go's JSON writes U+FFFD."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# ---- special types (custom MarshalJSON upstream) -------------------------------------------

def _message_value(msg: _message.Message) -> Any:
    conv = _SPECIAL.get(msg.DESCRIPTOR.full_name)
    return conv(msg) if conv else to_dict(msg)


_GO_ZERO_UNIX = -62135596800  # time.Time{}.Unix(): Go's zero time, which JSON writes as null


def _time_value(msg: _message.Message, micro: bool) -> Any:
    if msg.ByteSize() == 0 or msg.seconds == _GO_ZERO_UNIX and msg.nanos == 0:
        return None  # Go's zero time marshals as JSON null (creationTimestamp: null)
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=msg.seconds)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{msg.nanos // 1000:06d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def go_duration(ns: int) -> str:
    """Go time.Duration.String(): 1h2m3.5s, 1.5ms, 0s."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _frac(ns, size) + unit
    h, rem = divmod(ns, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    s = _frac(rem, 1_000_000_000) + "s"
    if h:
        return f"{sign}{h}h{m}m{s}"
    if m:
        return f"{sign}{m}m{s}"
    return sign + s


def _frac(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")


def _raw_json(raw: bytes) -> Any:
    if not raw:
        return _OMIT
    if raw.startswith(MAGIC):
        return decode(raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise errors.bad_request(f"invalid embedded JSON in protobuf body: {exc}") from None


def _int_or_string(msg: _message.Message) -> Any:
    return _text(msg.strVal) if msg.type == 1 else msg.intVal


_SPECIAL = {
    f"{_META}.Time": lambda m: _time_value(m, micro=False),
    f"{_META}.MicroTime": lambda m: _time_value(m, micro=True),
    f"{_META}.Duration": lambda m: go_duration(m.duration),
    f"{_META}.FieldsV1": lambda m: _raw_json(m.Raw),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": lambda m: _raw_json(m.raw),
    "k8s.io.apimachinery.pkg.api.resource.Quantity": lambda m: _text(m.string) or "0",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.api.authorization.v1.ExtraValue": lambda m: [_text(i) for i in m.items],
    "k8s.io.api.authentication.v1.ExtraValue": lambda m: [_text(i) for i in m.items],
}


# ---- parsing -------------------------------------------------------------------------------

def _parse(cls: type, raw: bytes, kind: str) -> _message.Message:
    msg = cls()
    try:
        msg.ParseFromString(raw)
    except _message.DecodeError:
        raise errors.bad_request(
            f"unable to decode protobuf {kind}: the wire format is truncated or corrupt") from None
    return msg


def descriptor_for(api_version: str, kind: str) -> Descriptor:
    """The message descriptor used for apiVersion/kind (for callers that want field metadata)."""
    return message_class(api_version, kind).DESCRIPTOR
