"""Server-side field validation (`fieldValidation=Strict|Warn|Ignore`) for write requests.

Owns: finding unknown and duplicate fields in a request object the way the
apiserver's strict JSON decoder (sigs.k8s.io/json) reports them, the Strict error,
the Warn warnings, and dropping unknown fields (a real server never stores them).

Paths are dotted JSON paths in document order: `spec.containers[0].imagez`,
`metadata.labels.a` (map keys are appended with a dot). Messages are
`unknown field "<path>"` and `duplicate field "<path>"`; identical messages are
reported once and at most 100 are kept, as the Go decoder does. Fields of map type
(additionalProperties) accept any key, `x-kubernetes-preserve-unknown-fields`
and leaf types (IntOrString, Quantity, Time, FieldsV1, RawExtension) accept anything.

The per-definition property sets are compiled once into a small node graph
(`_node(definition)`), so a check is one walk over the request object.
"""
from __future__ import annotations

import functools
import json

import orjson

from shim.api import errors
from shim.openapi import schema

MAX_ERRORS = 100  # the Go decoder stops collecting strict errors here

_ANY, _STRUCT, _MAP, _LIST = 0, 1, 2, 3


class _Node:
    """A compiled schema: what keys/items a JSON value may contain."""

    __slots__ = ("kind", "props", "child")

    def __init__(self, kind: int):
        self.kind = kind
        self.props: dict[str, _Node] | None = None
        self.child: _Node | None = None


_ANY_NODE = _Node(_ANY)


def _types(s: dict) -> set:
    t = s.get("type")
    if t is None:
        return set()
    return {t} if isinstance(t, str) else set(t)


def _compile(s: dict) -> _Node:
    """Compile an inline schema (may be a `$ref`) into a node."""
    name = schema.ref_name(s)
    if name is not None:
        return _node(name)
    return _build(s, None)


def _build(s: dict, name: str | None) -> _Node:
    if s.get("x-kubernetes-preserve-unknown-fields"):
        return _ANY_NODE
    if "properties" in s:
        node = _Node(_STRUCT)
        if name is not None:
            _cache[name] = node  # registered before children: recursive types terminate
        node.props = {k: _compile(v) for k, v in s["properties"].items()}
        return node
    addl = s.get("additionalProperties")
    if isinstance(addl, dict):
        node = _Node(_MAP)
        node.child = _compile(addl)
        return node
    if addl is True:
        return _map_of_any()
    if "items" in s and "array" in _types(s):
        node = _Node(_LIST)
        node.child = _compile(s["items"]) if isinstance(s["items"], dict) else _ANY_NODE
        return node
    return _ANY_NODE


def _map_of_any() -> _Node:
    node = _Node(_MAP)
    node.child = _ANY_NODE
    return node


_cache: dict[str, _Node] = {}


def _node(definition: str) -> _Node:
    """The compiled node of a definition name (cached for the process)."""
    node = _cache.get(definition)
    if node is None:
        node = _build(schema.definition(definition), definition)
        _cache.setdefault(definition, node)
        node = _cache[definition]
    return node


# ---- walking --------------------------------------------------------------------------------

def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Collector:
    """Ordered, de-duplicated, capped strict errors (and optionally pruning)."""

    __slots__ = ("messages", "seen", "prune")

    def __init__(self, prune: bool = False):
        self.messages: list[str] = []
        self.seen: set[str] = set()
        self.prune = prune

    def add(self, what: str, path: str) -> None:
        msg = f'{what} field "{path}"'
        if msg in self.seen or len(self.messages) >= MAX_ERRORS:
            return
        self.seen.add(msg)
        self.messages.append(msg)


def _pairs(value: dict):
    """Key/value pairs in document order, duplicates included when known."""
    return getattr(value, "pairs", None) or value.items()


def _walk(node: _Node, value, path: str, out: _Collector) -> None:
    kind = node.kind
    if kind == _ANY:
        return
    if kind == _LIST:
        if isinstance(value, list) and node.child.kind != _ANY:
            for i, item in enumerate(value):
                _walk(node.child, item, f"{path}[{i}]", out)
        return
    if not isinstance(value, dict):
        return
    if kind == _MAP:
        _walk_map(node.child, value, path, out)
    else:
        _walk_struct(node.props, value, path, out)


def _walk_map(child: _Node, value: dict, path: str, out: _Collector) -> None:
    dups = getattr(value, "pairs", None) is not None
    seen: set[str] | None = set() if dups else None
    for key, sub in _pairs(value):
        sub_path = _key_path(path, key)
        if seen is not None:
            if key in seen:
                out.add("duplicate", sub_path)
            seen.add(key)
        if child.kind != _ANY:
            _walk(child, sub, sub_path, out)


def _walk_struct(props: dict, value: dict, path: str, out: _Collector) -> None:
    seen: set[str] | None = set() if getattr(value, "pairs", None) is not None else None
    unknown: list[str] | None = None
    for key, sub in _pairs(value):
        child = props.get(key)
        if child is None:
            out.add("unknown", _key_path(path, key))
            if out.prune:
                unknown = unknown or []
                unknown.append(key)
            continue
        if seen is not None:
            if key in seen:
                out.add("duplicate", _key_path(path, key))
            seen.add(key)
        if child.kind != _ANY:
            _walk(child, sub, _key_path(path, key), out)
    if unknown:
        for key in unknown:
            value.pop(key, None)


# ---- duplicate-aware JSON parsing ------------------------------------------------------------

class _DupDict(dict):
    """A decoded JSON object that had duplicate keys; `pairs` keeps them all in order."""

    __slots__ = ("pairs",)


_seen_duplicate = [False]   # set by _object_hook during one parse (parsing is synchronous)


def _object_hook(pairs):
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    _seen_duplicate[0] = True
    dup = _DupDict(d)
    dup.pairs = pairs
    return dup


def _parse_with_pairs(body: bytes):
    """Decode JSON keeping duplicate keys visible (None if the body is not a JSON object)."""
    stripped = body.lstrip()
    if not stripped.startswith(b"{"):
        return None
    try:
        return json.loads(body, object_pairs_hook=_object_hook)
    except ValueError:
        return None


def _has_duplicates(value) -> bool:
    if isinstance(value, _DupDict):
        return True
    if isinstance(value, dict):
        return any(_has_duplicates(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_duplicates(v) for v in value)
    return False


# ---- public API -----------------------------------------------------------------------------

def unknown_fields(obj: dict, definition: str) -> list[str]:
    """Dotted paths of fields `definition` does not know, in document order."""
    out = _Collector()
    _walk(_node(definition), obj, "", out)
    return [m[len('unknown field "'):-1] for m in out.messages]


def prune_unknown(obj: dict, definition: str) -> dict:
    """Drop every unknown field from `obj` in place; returns `obj`."""
    _walk(_node(definition), obj, "", _Collector(prune=True))
    return obj


def duplicate_fields(body: bytes) -> list[str]:
    """Dotted paths of keys that occur more than once in one JSON object of `body`."""
    tree = _parse_with_pairs(body)
    if tree is None:
        return []
    out = _Collector()
    _collect_duplicates(tree, "", out)
    return [m[len('duplicate field "'):-1] for m in out.messages]


def _collect_duplicates(value, path: str, out: _Collector) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _collect_duplicates(item, f"{path}[{i}]", out)
    elif isinstance(value, dict):
        seen: set[str] = set()
        for key, sub in _pairs(value):
            sub_path = _key_path(path, key)
            if key in seen:
                out.add("duplicate", sub_path)
            seen.add(key)
            _collect_duplicates(sub, sub_path, out)


def strict_errors(obj: dict, definition: str, body: bytes | None = None) -> list[str]:
    """The strict decoder's messages (`unknown field "x"`, `duplicate field "y"`) in order.

    With a JSON `body`, duplicates are found too and the order interleaves both
    kinds as the decoder meets them; without one only unknown fields are reported.
    """
    target = obj
    if body:
        _seen_duplicate[0] = False
        tree = _parse_with_pairs(body)
        if tree is not None and _seen_duplicate[0]:
            target = tree
    out = _Collector()
    _walk(_node(definition), target, "", out)
    return out.messages


def strict_message(kind: str, messages: list[str], version: str = "v1", prefixed: bool = True) -> str:
    """The BadRequest message for Strict mode.

    prefixed=True is the create/update form (`Pod in version "v1" cannot be handled as a
    Pod: strict decoding error: ...`); prefixed=False is the strategic-merge/apply patch
    form (`strict decoding error: ...`).
    """
    text = "strict decoding error: " + ", ".join(messages)
    if not prefixed:
        return text
    return f'{kind} in version "{version}" cannot be handled as a {kind}: {text}'


def check(obj: dict, definition: str, mode: str | None, kind: str, body: bytes | None = None,
          version: str = "v1", prefixed: bool = True) -> list[str]:
    """Apply fieldValidation `mode` to a decoded request object.

    Strict: raise errors.bad_request with the apiserver's message if anything is unknown
    or duplicated. Warn (also the default when mode is None/""): drop unknown fields from
    `obj` in place and return the warning texts (`unknown field "spec.foo"`) for
    `Warning: 299 - "..."` headers. Ignore: drop unknown fields silently, return [].
    """
    mode = mode or "Warn"
    # Unknown fields depend on the object's shape, not its identity: an object shaped like one
    # already found clean (pods stamped from one template) skips the schema walk; duplicate
    # keys are still looked for in its body.
    key = _clean_key(obj, definition)
    if key is not None and key in _CLEAN:
        if not body or mode == "Ignore" or not duplicate_fields(body):
            return []
    if mode == "Ignore":
        prune_unknown(obj, definition)
        _remember_clean(key)
        return []
    messages = strict_errors(obj, definition, body)
    if not messages:
        _remember_clean(key)
        return []
    if mode == "Strict":
        raise errors.bad_request(strict_message(kind, messages, version, prefixed))
    prune_unknown(obj, definition)
    return messages


VALID_MODES = ("Ignore", "Warn", "Strict")

_CLEAN: dict[bytes, None] = {}
_IDENTITY = ("name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation",
             "generateName", "selfLink")


def shape_key(obj: dict, drop: tuple[str, ...] = ()) -> bytes | None:
    """The object as bytes with the identity values of its metadata blanked (and the metadata
    keys in `drop` left out): objects stamped from one template share the key. None when the
    object cannot be encoded (e.g. integers beyond 64 bits from YAML)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        obj = {**obj, "metadata": {k: (0 if k in _IDENTITY else v) for k, v in meta.items()
                                   if k not in drop}}
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        return None


def _clean_key(obj: dict, definition: str) -> bytes | None:
    key = shape_key(obj)
    return None if key is None else definition.encode() + b"\0" + key


def _remember_clean(key: bytes | None) -> None:
    if key is None:
        return
    if len(_CLEAN) >= 512:
        _CLEAN.pop(next(iter(_CLEAN)))
    _CLEAN[key] = None


@functools.cache
def _warmup(definition: str) -> None:
    _node(definition)


def precompile(definitions) -> None:
    """Compile the nodes of `definitions` ahead of the first request (optional)."""
    for name in definitions:
        _warmup(name)
