"""metadata.managedFields: who owns which field, as the apiserver's field manager keeps it.

Owns the REST.field_manager hook (`FieldManager.update`, called before every create and
update write) and the server-side apply computation used by shim/api/apply.py
(`plan_apply`). The behaviour reproduced is that of k8s.io/apimachinery
util/managedfields/internal (decode/encode of entries, the "current-operation" timestamp
rule, stripping of server-owned metadata, capping update managers at 10 into
"ancient-changes", the "before-first-apply" manager, the kubectl last-applied
interplay) on top of sigs.k8s.io/structured-merge-diff (typed field sets, compare,
merge by the schema's list/map types, pruning, conflicts).

Field sets are Python sets of paths; a path is a tuple of path elements:
  ("f", name)      a struct field or map key          -> fieldsV1 "f:name"
  ("k", json)      a list-map item by its key fields   -> "k:{"name":"c"}"
  ("v", json)      a set-list item by its value        -> "v:"a""
  ("i", n)         a list item by index                -> "i:0"
(json = compact canonical JSON text). Types come from the OpenAPI definitions in
shim.openapi.schema: x-kubernetes-list-type / -list-map-keys (else the patch strategy's
merge key, else atomic), x-kubernetes-map-type.
"""
from __future__ import annotations

import contextvars
import json
import time as _time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import orjson

from shim.openapi import fieldvalidation, schema

from . import errors
from .errors import StatusError

MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# list-map key fields the schema defaults (the real OpenAPI carries `default: "TCP"`)
KEY_DEFAULTS = {"protocol": "TCP"}

# Set while apply.py runs a write whose managedFields it already computed.
APPLYING: contextvars.ContextVar[bool] = contextvars.ContextVar("kubeshim_applying", default=False)

Path = tuple
_ABSENT = object()


class SchemaError(Exception):
    """A value does not fit the schema (what SMD's typed conversion reports)."""

    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{path_string(self.path)}: {self.message}" if self.path else self.message


class DecodeError(Exception):
    pass


# ============================================================================================
# Types (what structured-merge-diff derives from the OpenAPI schema)
# ============================================================================================

SCALAR, MAP, LIST, ATOMIC, ANY = "scalar", "map", "list", "atomic", "any"


class Type:
    """One schema node: a scalar, a (struct or string-keyed) map, a list, an atomic blob
    or a deduced type (x-kubernetes-preserve-unknown-fields)."""

    __slots__ = ("kind", "raw_fields", "_fields", "raw_elem", "_elem", "list_type", "keys")

    def __init__(self, kind: str):
        self.kind = kind
        self.raw_fields: dict = {}
        self._fields: dict[str, Type] = {}
        self.raw_elem: Any = None
        self._elem: Type | None = None
        self.list_type = "atomic"
        self.keys: list[str] = []

    def field(self, name: str) -> "Type | None":
        t = self._fields.get(name)
        if t is None and name in self.raw_fields:
            t = self._fields[name] = compile_schema(self.raw_fields[name])
        return t

    @property
    def elem(self) -> "Type | None":
        if self._elem is None and self.raw_elem is not None:
            self._elem = _ANY_T if self.raw_elem is True else compile_schema(self.raw_elem)
        return self._elem


_SCALAR_T = Type(SCALAR)
_ATOMIC_T = Type(ATOMIC)
_ANY_T = Type(ANY)
_named: dict[str, Type] = {}
_inline: dict[int, Type] = {}


def compile_schema(s: dict) -> Type:
    name = schema.ref_name(s)
    if name is not None:
        if s.get("x-kubernetes-map-type") == "atomic":
            return _ATOMIC_T
        t = _named.get(name)
        if t is None:
            t = _named[name] = _build(schema.definition(name))
        return t
    key = id(s)
    t = _inline.get(key)
    if t is None:
        t = _inline[key] = _build(s)
    return t


def definition_type(definition: str) -> Type:
    return compile_schema({"$ref": f"#/$defs/{definition}"})


def _types(s: dict) -> set:
    t = s.get("type")
    if t is None:
        return set()
    return {t} if isinstance(t, str) else set(t)


def _build(s: dict) -> Type:
    if "oneOf" in s or "anyOf" in s:            # IntOrString, Quantity
        return _SCALAR_T
    if s.get("x-kubernetes-preserve-unknown-fields"):
        return _ANY_T
    ts = _types(s)
    if "array" in ts:
        t = Type(LIST)
        t.raw_elem = s.get("items") or {}
        lt = s.get("x-kubernetes-list-type")
        if lt in ("atomic", "set", "map"):
            t.list_type = lt
            t.keys = list(s.get("x-kubernetes-list-map-keys") or []) if lt == "map" else []
        elif s.get("x-kubernetes-patch-strategy", "").startswith("merge"):
            key = s.get("x-kubernetes-patch-merge-key")
            t.list_type, t.keys = ("map", [key]) if key else ("set", [])
        if t.list_type == "map" and not t.keys:
            t.list_type = "atomic"
        return t
    props = s.get("properties")
    addl = s.get("additionalProperties")
    if "object" in ts or props is not None or addl is not None:
        if not props and not isinstance(addl, dict) and addl is not True:
            return _ATOMIC_T                      # FieldsV1, RawExtension: untyped, atomic
        if s.get("x-kubernetes-map-type") == "atomic":
            return _ATOMIC_T
        t = Type(MAP)
        t.raw_fields = props or {}
        t.raw_elem = addl if (isinstance(addl, dict) or addl is True) else None
        return t
    return _SCALAR_T


def _resolve(t: Type, v: Any) -> Type:
    """Deduced types take their shape from the value."""
    if t.kind != ANY:
        return t
    if isinstance(v, dict):
        m = Type(MAP)
        m.raw_elem = True
        return m
    if isinstance(v, list):
        return _ATOMIC_T
    return _SCALAR_T


def _child_type(t: Type, key: str, path: Path) -> tuple[Type, bool]:
    """(type of map entry `key`, is it a declared struct field?)"""
    ft = t.field(key)
    if ft is not None:
        return ft, True
    el = t.elem
    if el is None:
        raise SchemaError(path + (("f", key),), "field not declared in schema")
    return el, False


# ============================================================================================
# Path elements, paths, JSON encoding of sets (fieldsV1)
# ============================================================================================

def canon(v: Any) -> str:
    """Compact JSON as Go's encoder writes it (sorted map keys, HTML-escaped)."""
    s = json.dumps(v, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _value_rank(v: Any) -> tuple:
    if isinstance(v, bool):
        return (2, v)
    if isinstance(v, (int, float)):
        return (0, v)
    if isinstance(v, str):
        return (1, v)
    if isinstance(v, list):
        return (3, canon(v))
    if isinstance(v, dict):
        return (4, canon(v))
    return (5, 0)


def pe_sort_key(pe: tuple) -> tuple:
    """The total order of structured-merge-diff path elements: field names, then keys,
    then values, then indexes."""
    kind, x = pe
    if kind == "f":
        return (0, x)
    if kind == "k":
        d = json.loads(x)
        return (1, tuple((k, _value_rank(d[k])) for k in sorted(d)))
    if kind == "v":
        return (2, _value_rank(json.loads(x)))
    return (3, x)


def _go_string(v: Any) -> str:
    """value.ToString: strings quoted, numbers and booleans bare."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return "[" + ",".join(_go_string(x) for x in v) + "]"
    return "{" + ";".join(f"{k}={_go_string(v[k])}" for k in sorted(v)) + "}"


def pe_string(pe: tuple) -> str:
    kind, x = pe
    if kind == "f":
        return "." + x
    if kind == "k":
        d = json.loads(x)
        return "[" + ",".join(f"{k}={_go_string(d[k])}" for k in sorted(d)) + "]"
    if kind == "v":
        return f"[={_go_string(json.loads(x))}]"
    return f"[{x}]"


def path_string(path: Path) -> str:
    return "".join(pe_string(pe) for pe in path)


def _pe_encode(pe: tuple) -> str:
    kind, x = pe
    return f"{kind}:{x}"


def _pe_decode(key: str) -> tuple:
    kind, sep, rest = key.partition(":")
    if not sep:
        raise DecodeError(f"unable to parse path element {key!r}")
    if kind == "f":
        return ("f", rest)
    if kind in ("k", "v"):
        try:
            v = json.loads(rest)
        except ValueError as e:
            raise DecodeError(f"parsing JSON: {e}") from None
        if kind == "k" and not isinstance(v, dict):
            raise DecodeError("expected key value pairs")
        return (kind, canon(v))
    if kind == "i":
        try:
            return ("i", int(rest))
        except ValueError:
            raise DecodeError(f"unable to parse index {rest!r}") from None
    raise DecodeError(f"unknown path element type {kind!r}")


class _Node:
    __slots__ = ("member", "children")

    def __init__(self):
        self.member = False
        self.children: dict[tuple, _Node] = {}


def trie(paths: Iterable[Path]) -> _Node:
    root = _Node()
    for p in paths:
        n = root
        for pe in p:
            c = n.children.get(pe)
            if c is None:
                c = n.children[pe] = _Node()
            n = c
        n.member = True
    return root


def set_to_fields(paths: Iterable[Path]) -> dict:
    """A field set as its fieldsV1 JSON object."""
    def emit(n: _Node) -> dict:
        out: dict = {}
        if n.member and n.children:
            out["."] = {}
        for pe in sorted(n.children, key=pe_sort_key):
            out[_pe_encode(pe)] = emit(n.children[pe])
        return out
    return emit(trie(paths))


def fields_to_set(fields: Any) -> set:
    """Parse a fieldsV1 object; DecodeError if it is not one."""
    out: set = set()

    def walk(d: Any, prefix: Path) -> None:
        if not isinstance(d, dict):
            raise DecodeError("expected an object")
        for k, v in d.items():
            if k == ".":
                if prefix:
                    out.add(prefix)
                continue
            p = prefix + (_pe_decode(k),)
            if not isinstance(v, dict):
                raise DecodeError("expected an object")
            if not v:
                out.add(p)
            else:
                walk(v, p)
    if fields is None:
        return out
    walk(fields, ())
    return out


def iterate(paths: Iterable[Path]) -> list[Path]:
    """Paths in structured-merge-diff's iteration order (per level: members, then subtrees)."""
    out: list[Path] = []

    def walk(n: _Node, prefix: Path) -> None:
        keys = sorted(n.children, key=pe_sort_key)
        for pe in keys:
            if n.children[pe].member:
                out.append(prefix + (pe,))
        for pe in keys:
            c = n.children[pe]
            if c.children:
                walk(c, prefix + (pe,))
    walk(trie(paths), ())
    return out


def recursive_difference(paths: set, exclude: set) -> set:
    """Paths not equal to, nor below, any excluded path."""
    if not exclude:
        return paths
    return {p for p in paths if not any(p[:i] in exclude for i in range(1, len(p) + 1))}


# ============================================================================================
# Typed walks: field sets, compare, merge, removal
# ============================================================================================

def _item_pe(t: Type, item: Any, index: int, path: Path) -> tuple:
    if t.list_type == "map":
        if not isinstance(item, dict):
            raise SchemaError(path, f"element {index}: associative list with keys may not have "
                                    "non-map elements")
        kv = {}
        for k in t.keys:
            v = item.get(k)
            if v is None:
                if k not in KEY_DEFAULTS:
                    raise SchemaError(path, f"element {index}: associative list with keys has an "
                                            f"element that omits key field \"{k}\" (and doesn't "
                                            "have default value)")
                v = KEY_DEFAULTS[k]
            kv[k] = v
        return ("k", canon(kv))
    if t.list_type == "set":
        return ("v", canon(item))
    return ("i", index)


def to_field_set(value: Any, t: Type) -> set:
    out: set = set()
    _tfs(value, t, (), out)
    return out


def _tfs(v: Any, t: Type, path: Path, out: set) -> None:
    t = _resolve(t, v)
    if t.kind in (SCALAR, ATOMIC):
        out.add(path)
        return
    if t.kind == LIST:
        if t.list_type == "atomic":
            out.add(path)
            return
        if not isinstance(v, list):
            return
        pes = [_item_pe(t, item, i, path) for i, item in enumerate(v)]
        seen: set = set()
        dups: set = set()
        for pe in pes:
            (dups if pe in seen else seen).add(pe)
        for pe in dups:
            out.add(path + (pe,))
        for pe, item in zip(pes, v):
            if pe in dups:
                continue
            _tfs(item, t.elem, path + (pe,), out)
            out.add(path + (pe,))
        return
    if not isinstance(v, dict):
        return
    for k, cv in v.items():
        ct, named = _child_type(t, k, path)
        p = path + (("f", k),)
        _tfs(cv, ct, p, out)
        if cv is None or (isinstance(cv, dict) and not cv) or not named:
            out.add(p)


def same(a: Any, b: Any) -> bool:
    """JSON value equality (booleans are not numbers)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


@dataclass
class Comparison:
    added: set = field(default_factory=set)
    modified: set = field(default_factory=set)
    removed: set = field(default_factory=set)

    def exclude(self, ignored: set) -> "Comparison":
        return Comparison(recursive_difference(self.added, ignored),
                          recursive_difference(self.modified, ignored),
                          recursive_difference(self.removed, ignored))


def compare(lhs: Any, rhs: Any, t: Type) -> Comparison:
    c = Comparison()
    _cmp(lhs, rhs, t, (), c)
    return c


def _index(t: Type, items: Any, path: Path) -> dict:
    """pe -> list of items carrying it (duplicates kept)."""
    out: dict = {}
    if isinstance(items, list):
        for i, item in enumerate(items):
            out.setdefault(_item_pe(t, item, i, path), []).append(item)
    return out


def _cmp(l: Any, r: Any, t: Type, path: Path, c: Comparison) -> None:
    t = _resolve(t, r if r is not _ABSENT else l)
    leaf = t.kind in (SCALAR, ATOMIC)
    if t.kind == MAP:
        lm = l if isinstance(l, dict) else None
        rm = r if isinstance(r, dict) else None
        if not lm and not rm:
            leaf = True
        else:
            for k in list((lm or {}).keys()) + [k for k in (rm or {}) if k not in (lm or {})]:
                ct, _ = _child_type(t, k, path)
                _cmp((lm or {}).get(k, _ABSENT), (rm or {}).get(k, _ABSENT), ct,
                     path + (("f", k),), c)
    elif t.kind == LIST:
        ll = l if isinstance(l, list) else None
        rl = r if isinstance(r, list) else None
        if t.list_type == "atomic" or (not ll and not rl):
            leaf = True
        else:
            li, ri = _index(t, ll, path), _index(t, rl, path)
            for pe in list(li) + [pe for pe in ri if pe not in li]:
                ls, rs = li.get(pe, []), ri.get(pe, [])
                p = path + (pe,)
                if len(ls) >= 2 or len(rs) >= 2:
                    if ls and rs:
                        if not same(ls, rs):
                            c.modified.add(p)
                    elif ls:
                        c.removed.add(p)
                    else:
                        c.added.add(p)
                    continue
                _cmp(ls[0] if ls else _ABSENT, rs[0] if rs else _ABSENT, t.elem, p, c)
    if leaf:
        if l is _ABSENT and r is _ABSENT:
            return
        if l is _ABSENT:
            c.added.add(path)
        elif r is _ABSENT:
            c.removed.add(path)
        elif not same(l, r):
            c.modified.add(path)
        return
    if l is _ABSENT:
        c.added.add(path)
    elif r is _ABSENT:
        c.removed.add(path)


def merge(lhs: Any, rhs: Any, t: Type) -> Any:
    """rhs (an applied configuration) merged into lhs (the live object)."""
    out = _merge(lhs, rhs, t, ())
    return None if out is _ABSENT else out


def _merge(l: Any, r: Any, t: Type, path: Path) -> Any:
    if r is _ABSENT:
        return l
    if r is None:
        return _ABSENT                   # an applied null unsets the field (typed decode)
    if l is _ABSENT:
        _tfs(r, t, path, set())          # validates the applied value against the schema
        return drop_nulls(r)
    t = _resolve(t, r)
    if t.kind in (SCALAR, ATOMIC):
        return drop_nulls(r)
    if t.kind == MAP:
        lm = l if isinstance(l, dict) else None
        rm = r if isinstance(r, dict) else None
        if (not lm and not rm) or rm is None:
            return drop_nulls(r)
        lm = lm or {}
        out = {}
        for k, lv in lm.items():
            ct, _ = _child_type(t, k, path)
            v = _merge(lv, rm.get(k, _ABSENT), ct, path + (("f", k),))
            if v is not _ABSENT:
                out[k] = v
        for k, rv in rm.items():
            if k not in lm:
                ct, _ = _child_type(t, k, path)
                v = _merge(_ABSENT, rv, ct, path + (("f", k),))
                if v is not _ABSENT:
                    out[k] = v
        return out if out else _ABSENT
    ll = l if isinstance(l, list) else None
    rl = r if isinstance(r, list) else None
    if t.list_type == "atomic" or (not ll and not rl) or rl is None:
        return drop_nulls(r)
    return _merge_list(t, ll or [], rl, path)


def _merge_list(t: Type, lhs: list, rhs: list, path: Path) -> list:
    """Associative list merge keeping the live order for items the configuration does not
    name and the configuration's order among the items it does."""
    lpes = [_item_pe(t, x, i, path) for i, x in enumerate(lhs)]
    rpes = [_item_pe(t, x, i, path) for i, x in enumerate(rhs)]
    if len(set(rpes)) != len(rpes):
        seen: set = set()
        for pe in rpes:
            if pe in seen:
                raise SchemaError(path, f"duplicate entries for key {pe_string(pe)}")
            seen.add(pe)
    lmap: dict = {}
    for pe, x in zip(lpes, lhs):
        lmap.setdefault(pe, x)
    rmap = dict(zip(rpes, rhs))
    shared = [pe for pe in rpes if pe in lmap]
    shared_i = 0
    merged: set = set()
    out: list = []

    def next_shared():
        return shared[shared_i] if shared_i < len(shared) else None

    def emit(pe, lv, rv):
        v = _merge(lv, rv, t.elem, path + (pe,))
        if v is not _ABSENT:
            out.append(v)

    li = ri = 0
    while li < len(lpes) or ri < len(rpes):
        if li < len(lpes) and ri < len(rpes):
            pe = lpes[li]
            if pe == rpes[ri]:
                merged.add(pe)
                emit(pe, lmap[pe], rmap[pe])
                li += 1
                ri += 1
                shared_i += 1
                continue
            nxt = next_shared()
            if pe in rmap and nxt is not None and nxt != pe:
                li += 1
                continue
        if li < len(lpes):
            pe = lpes[li]
            if pe not in rmap:
                emit(pe, lhs[li], _ABSENT)
                li += 1
                continue
            if pe in merged:
                li += 1
        if ri < len(rpes):
            pe = rpes[ri]
            merged.add(pe)
            emit(pe, lmap.get(pe, _ABSENT), rmap[pe])
            ri += 1
            if next_shared() == pe:
                shared_i += 1
    return out


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def remove_items(value: Any, paths: set, t: Type) -> Any:
    """`value` without the subtrees at `paths` (maps or lists left empty become null)."""
    if not paths:
        return value
    out = _remove(value, trie(paths), t, ())
    return {} if out is None and isinstance(value, dict) else out


def _remove(v: Any, node: _Node, t: Type, path: Path) -> Any:
    t = _resolve(t, v)
    if t.kind == SCALAR:
        return v
    if t.kind == ATOMIC:
        return None
    if t.kind == LIST:
        if not isinstance(v, list) or not v:
            return None
        if t.list_type == "atomic":
            return None
        new = []
        for i, item in enumerate(v):
            pe = _item_pe(t, item, i, path)
            c = node.children.get(pe)
            if c is not None and c.member:
                continue
            if c is not None and c.children:
                item = _remove(item, c, t.elem, path + (pe,))
                if item is None:
                    continue
            new.append(item)
        return new or None
    if not isinstance(v, dict) or not v:
        return None
    new = {}
    for k, cv in v.items():
        pe = ("f", k)
        c = node.children.get(pe)
        if c is not None and c.member:
            continue
        if c is not None and c.children:
            ct, _ = _child_type(t, k, path)
            cv = _remove(cv, c, ct, path + (pe,))
            if cv is None:
                continue
        new[k] = cv
    return new or None


def ensure_named_fields(paths: set, t: Type) -> set:
    """Also own the named (struct) fields above owned paths, so that pruning removes them."""
    out = set(paths)
    for p in paths:
        cur: Type | None = t
        for i, pe in enumerate(p[:-1]):
            if cur is None:
                break
            if cur.kind == ANY:
                cur = None
                break
            if pe[0] == "f" and cur.kind == MAP:
                ft = cur.field(pe[1])
                if ft is not None:
                    out.add(p[:i + 1])
                    cur = ft
                else:
                    cur = cur.elem
            elif pe[0] != "f" and cur.kind == LIST:
                cur = cur.elem
            else:
                cur = None
    return out


def drop_nulls(v: Any) -> Any:
    """What the typed decode does to explicit nulls: the field is simply unset."""
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v if x is not None]
    return v


# ============================================================================================
# managedFields entries
# ============================================================================================

@dataclass
class Entry:
    manager: str
    operation: str                 # Apply | Update
    api_version: str
    subresource: str
    time: str | None
    fields: set

    @property
    def ident(self) -> tuple:
        """BuildManagerIdentifier: appliers are one manager whatever the apiVersion."""
        return (self.manager, self.operation,
                "" if self.operation == "Apply" else self.api_version, self.subresource)

    def describe(self) -> str:
        """printManager, as conflicts name the manager."""
        s = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            s += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == "Update":
            s += f" using {self.api_version}"
        return s

    def encode(self) -> dict:
        out: dict = {}
        if self.manager:
            out["manager"] = self.manager
        out["operation"] = self.operation
        out["apiVersion"] = self.api_version
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = set_to_fields(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


Managed = dict   # ident -> Entry


def _time_seconds(t: str | None) -> float:
    if not t:
        return 0
    from .rest import parse_rfc3339
    try:
        return int(parse_rfc3339(t))
    except ValueError:
        return 0


def sort_entries(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.operation, _time_seconds(e.time), e.manager,
                                          e.api_version, e.subresource))


def encode_managed(managed: Managed) -> list[dict] | None:
    if not managed:
        return None
    return [e.encode() for e in sort_entries(managed.values())]


def decode_managed(raw: Any) -> Managed:
    """DecodeManagedFields: entries must name an operation, an apiVersion and FieldsV1."""
    out: Managed = {}
    if raw is None:
        return out
    if not isinstance(raw, list):
        raise DecodeError("managedFields must be a list")
    for i, e in enumerate(raw):
        if not isinstance(e, dict):
            raise DecodeError("entry must be an object")
        op = e.get("operation")
        if op not in ("Apply", "Update"):
            raise DecodeError("operation must be `Apply` or `Update`")
        if not e.get("apiVersion"):
            raise DecodeError("apiVersion must not be empty")
        ft = e.get("fieldsType") or ""
        if ft == "":
            raise DecodeError(f"missing fieldsType in managed fields entry {i}")
        if ft != "FieldsV1":
            raise DecodeError(f'invalid fieldsType "{ft}" in managed fields entry {i}')
        entry = Entry(e.get("manager") or "", op, e["apiVersion"], e.get("subresource") or "",
                      e.get("time"), fields_to_set(e.get("fieldsV1") or {}))
        out[entry.ident] = entry
    return out


_ENTRY_FIELD_TYPES = {"manager": str, "operation": str, "apiVersion": str, "time": str,
                      "fieldsType": str, "subresource": str, "fieldsV1": dict}


def check_shape(kind: str, version: str, raw: Any) -> None:
    """What decoding metadata.managedFields into Go structs rejects (400)."""
    if raw is None:
        return
    prefix = f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal '
    if not isinstance(raw, list):
        raise errors.bad_request(prefix + f"{_json_kind(raw)} into Go struct field "
                                 "ObjectMeta.metadata.managedFields of type []v1.ManagedFieldsEntry")
    for e in raw:
        if e is None:
            continue
        if not isinstance(e, dict):
            raise errors.bad_request(prefix + f"{_json_kind(e)} into Go struct field "
                                     "ObjectMeta.metadata.managedFields of type v1.ManagedFieldsEntry")
        for k, typ in _ENTRY_FIELD_TYPES.items():
            v = e.get(k)
            if v is not None and not isinstance(v, typ):
                gotype = "v1.FieldsV1" if k == "fieldsV1" else ("v1.Time" if k == "time" else
                                                                "v1.ManagedFieldsOperationType"
                                                                if k == "operation" else "string")
                raise errors.bad_request(prefix + f"{_json_kind(v)} into Go struct field "
                                         f"ManagedFieldsEntry.metadata.managedFields.{k} of type "
                                         f"{gotype}")


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def is_reset(raw: Any) -> bool:
    """`managedFields: []` or `[{}]` asks the server to drop all managers."""
    return isinstance(raw, list) and (len(raw) == 0 or (len(raw) == 1 and raw[0] == {}))


# ============================================================================================
# Per-kind knowledge: reset fields, stripped metadata, the Go zero value
# ============================================================================================

STRIPPED: frozenset = frozenset({
    (("f", "apiVersion"),), (("f", "kind"),), (("f", "metadata"),),
    (("f", "metadata"), ("f", "name")), (("f", "metadata"), ("f", "namespace")),
    (("f", "metadata"), ("f", "creationTimestamp")), (("f", "metadata"), ("f", "selfLink")),
    (("f", "metadata"), ("f", "uid")), (("f", "metadata"), ("f", "clusterName")),
    (("f", "metadata"), ("f", "generation")), (("f", "metadata"), ("f", "managedFields")),
    (("f", "metadata"), ("f", "resourceVersion")),
})


def reset_fields(res, subresource: str | None) -> set:
    """Fields the strategy resets for this write (GetResetFields): never owned."""
    if subresource == "status":
        out = {(("f", "spec"),)}
        if res.kind == "Pod":
            out |= {(("f", "metadata"), ("f", "deletionTimestamp")),
                    (("f", "metadata"), ("f", "ownerReferences"))}
        return out
    if getattr(res, "has_status", False):
        return {(("f", "status"),)}
    return set()


_ZERO = {
    "Pod": {"spec": {"containers": None}, "status": {}},
    "ReplicationController": {"spec": {}, "status": {"replicas": 0}},
    "Service": {"spec": {}, "status": {"loadBalancer": {}}},
    "Namespace": {"spec": {}, "status": {}},
    "ResourceQuota": {"spec": {}, "status": {}},
    "Node": {"spec": {}, "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                                    "nodeInfo": {}}},
    "LimitRange": {"spec": {"limits": None}},
    "Event": {"involvedObject": {}, "source": {}, "firstTimestamp": None, "lastTimestamp": None,
              "eventTime": None, "reportingComponent": "", "reportingInstance": ""},
    "Lease": {"spec": {}},
}


def zero_object(kind: str) -> dict:
    """The JSON of the kind's Go zero value: what a create is compared against."""
    out = {"metadata": {"creationTimestamp": None}}
    out.update(_copy(_ZERO.get(kind, {})))
    return out


def _stripped_copy(obj: dict) -> dict:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


# ============================================================================================
# The two operations
# ============================================================================================

def _update_managers(managed: Managed, cmp: Comparison, skip: tuple | None,
                     force: bool = True) -> list[tuple[Entry, Path]]:
    """Other managers lose what changed (conflicts) and what was removed; returns the
    conflicts (when not forced nothing is changed)."""
    conflicts: list[tuple[Entry, Path]] = []
    changed = cmp.modified | cmp.added
    for ident, e in managed.items():
        if ident == skip:
            continue
        for p in e.fields & changed:
            conflicts.append((e, p))
    if conflicts and not force:
        return conflicts
    for ident in list(managed):
        if ident == skip:
            continue
        e = managed[ident]
        e.fields = (e.fields - changed) - cmp.removed
        if not e.fields:
            del managed[ident]
    return conflicts


def compute_update(t: Type, old: dict, new: dict, managed: Managed, entry: Entry,
                   ignored: set, now: str) -> Managed:
    """An Update by `entry`'s manager from `old` to `new` (both without managedFields)."""
    managed = {k: Entry(e.manager, e.operation, e.api_version, e.subresource, e.time, set(e.fields))
               for k, e in managed.items()}
    cmp = compare(old, new, t).exclude(ignored)
    _update_managers(managed, cmp, None)
    taken = recursive_difference(cmp.modified | cmp.added, ignored) - STRIPPED
    if taken:
        prev = managed.get(entry.ident)
        fields = taken | (prev.fields if prev else set())
        managed[entry.ident] = Entry(entry.manager, "Update", entry.api_version, entry.subresource,
                                     now, fields)
    _cap_updaters(managed)
    return managed


def _cap_updaters(managed: Managed) -> None:
    updaters = [k for k, e in managed.items() if e.operation == "Update"]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda k: (_time_seconds(managed[k].time), json.dumps(list(k))))
    first_by_version: dict[str, tuple] = {}
    length = len(updaters)
    for ident in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        e = managed[ident]
        bucket = (ANCIENT_CHANGES, "Update", e.api_version, "")
        first = first_by_version.get(e.api_version)
        if first is None:
            first_by_version[e.api_version] = ident
            continue
        if bucket not in managed:
            f = managed.pop(first)
            managed[bucket] = Entry(ANCIENT_CHANGES, "Update", e.api_version, "", f.time, f.fields)
        b = managed[bucket]
        managed[bucket] = Entry(ANCIENT_CHANGES, "Update", e.api_version, "", e.time,
                                b.fields | e.fields)
        del managed[ident]
        length -= 1


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[tuple[Entry, Path]]):
        super().__init__("conflicts")
        self.conflicts = conflicts


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> StatusError:
    """409 as NewConflictError writes it."""
    by_manager: dict[str, list] = {}
    desc: dict[str, str] = {}
    for e, p in conflicts:
        key = json.dumps(list(e.ident))
        by_manager.setdefault(key, []).append(p)
        desc[key] = e.describe()
    ordered: list[tuple[str, Path]] = []
    for key in sorted(by_manager, key=lambda k: _identifier(desc, k)):
        ordered += [(key, p) for p in iterate(by_manager[key])]
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {desc[k]}",
               "field": path_string(p)} for k, p in ordered]
    if len(ordered) == 1:
        k, p = ordered[0]
        msg = f"Apply failed with 1 conflict: conflict with {desc[k]}: {path_string(p)}"
    else:
        lines = []
        for key in sorted(by_manager, key=lambda k: _identifier(desc, k)):
            lines.append(f"conflicts with {desc[key]}:")
            lines += [f"- {path_string(p)}" for p in iterate(by_manager[key])]
        msg = f"Apply failed with {len(ordered)} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", msg, {"causes": causes})


def _identifier(desc: dict, key: str) -> str:
    """The Go manager identifier JSON, which is what the conflict message sorts by."""
    manager, op, av, sub = json.loads(key)
    d: dict = {}
    if manager:
        d["manager"] = manager
    d["operation"] = op
    if av:
        d["apiVersion"] = av
    if sub:
        d["subresource"] = sub
    return json.dumps(d, separators=(",", ":"))


@dataclass
class ApplyResult:
    obj: dict               # the merged object, managedFields set (not yet defaulted)
    changed: bool           # did the object (managedFields aside) change


def plan_apply(res, live: dict | None, config: dict, manager: str, force: bool,
               subresource: str | None, now: str) -> ApplyResult:
    """Server-side apply of `config` by `manager` onto `live` (None: the object is new).

    Raises StatusError 409 on conflicts (unless `force`), 500 when the configuration does
    not fit the schema (as the real server's typed conversion does)."""
    t = definition_type(res.definition)
    ignored = reset_fields(res, subresource)
    sub = subresource or ""
    applier = Entry(manager, "Apply", res.api_version, sub, None, set())
    if live is None:
        base = zero_object(res.kind)
        managed: Managed = {}
    else:
        base = _stripped_copy(live)
        try:
            managed = decode_managed((live.get("metadata") or {}).get("managedFields"))
        except DecodeError as e:
            raise errors.internal(f"failed to decode managed fields: {e}") from None
        if not managed:
            first = Entry(BEFORE_FIRST_APPLY, "Update", res.api_version, sub, None, set())
            managed = compute_update(t, zero_object(res.kind), base, {}, first, ignored, now)
    try:
        result, managed = _apply(t, base, config, managed, applier, force, ignored)
    except ApplyConflict as c:
        if manager != "kubectl" or live is None:
            raise conflict_error(c.conflicts) from None
        allowed = _allowed_by_last_applied(t, base, res.api_version)
        rest = [(e, p) for e, p in c.conflicts if p not in allowed]
        if rest:
            raise conflict_error(rest) from None
        result, managed = _apply(t, base, config, managed, applier, True, ignored)
    if not isinstance(result, dict):
        result = {}
    cur = managed.get(applier.ident)
    if cur is not None:
        cur.fields = cur.fields - STRIPPED
        if not cur.fields:
            del managed[applier.ident]
    changed = live is None or not same(result, base)
    if cur is not None and cur.ident in managed:
        prev_time = None
        if live is not None:
            try:
                old = decode_managed((live.get("metadata") or {}).get("managedFields"))
                prev_time = old[cur.ident].time if cur.ident in old else None
            except DecodeError:
                pass
        cur.time = now if changed else prev_time
    if manager == "kubectl" and live is not None and \
            ((base.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED):
        _set_last_applied(result, config)
    meta = result.setdefault("metadata", {})
    mf = encode_managed(managed)
    if mf:
        meta["managedFields"] = mf
    else:
        meta.pop("managedFields", None)
    return ApplyResult(result, changed)


def _apply(t: Type, live: dict, config: dict, managed: Managed, applier: Entry, force: bool,
           ignored: set) -> tuple[Any, Managed]:
    managed = {k: Entry(e.manager, e.operation, e.api_version, e.subresource, e.time, set(e.fields))
               for k, e in managed.items()}
    merged = merge(live, config, t)
    last = managed.get(applier.ident)
    applied = recursive_difference(to_field_set(config, t), ignored)
    managed[applier.ident] = Entry(applier.manager, "Apply", applier.api_version,
                                   applier.subresource, last.time if last else None, applied)
    if last is not None and last.fields:
        merged = _prune(t, merged, managed, last.fields)
    cmp = compare(live, merged, t).exclude(ignored)
    conflicts = _update_managers(managed, cmp, applier.ident, force)
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    return merged, managed


def _prune(t: Type, merged: Any, managed: Managed, last: set) -> Any:
    """Remove what the applier applied last time and no longer applies, unless another
    manager (or the applier's new configuration) owns it."""
    last_e = ensure_named_fields(last, t)
    pruned = remove_items(merged, last_e, t)
    owned: set = set()
    for e in managed.values():
        owned |= e.fields
    owned = ensure_named_fields(owned, t)
    merged_set = ensure_named_fields(to_field_set(merged, t), t)
    pruned_set = ensure_named_fields(to_field_set(pruned, t), t)
    pruned = remove_items(merged, merged_set - (pruned_set | owned), t)
    pruned_set = ensure_named_fields(to_field_set(pruned, t), t)
    return remove_items(merged, (merged_set - pruned_set) & last_e, t)


def _allowed_by_last_applied(t: Type, live: dict, api_version: str) -> set:
    """Conflicts kubectl may override: fields of the last-applied annotation still holding
    the value it recorded (client-side apply to server-side apply upgrade)."""
    raw = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        last = json.loads(raw)
        if not isinstance(last, dict) or last.get("apiVersion") != api_version:
            return set()
        fs = to_field_set(last, t)
        cmp = compare(last, live, t)
    except (ValueError, SchemaError):
        return set()
    return fs - cmp.modified - cmp.added - cmp.removed


def _set_last_applied(obj: dict, config: dict) -> None:
    cfg = _copy(config)
    ann = (cfg.get("metadata") or {}).get("annotations")
    if isinstance(ann, dict):
        ann.pop(LAST_APPLIED, None)
        if not ann:
            cfg["metadata"].pop("annotations")
    text = canon(cfg) + "\n"
    obj.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = text


# ============================================================================================
# The REST hook
# ============================================================================================

_CREATE_MEMO: dict[tuple, bytes] = {}   # (definition, manager, subresource, shape) -> entries


class FieldManager:
    """REST.field_manager: keeps metadata.managedFields on every create and update."""

    def __init__(self, clock: Callable[[], float] = _time.time):
        self.clock = clock

    def now(self) -> str:
        from .rest import now_rfc3339
        return now_rfc3339(self.clock())

    def update(self, res, new: dict, old: dict | None, manager: str,
               subresource: str | None) -> None:
        meta = new.setdefault("metadata", {})
        if APPLYING.get():
            return                         # apply.py computed the entries already
        raw = meta.get("managedFields")
        check_shape(res.kind, res.version, raw)
        old_raw = ((old or {}).get("metadata") or {}).get("managedFields")
        managed = self._base(raw, old_raw, subresource)
        meta.pop("managedFields", None)
        if not managed and old is not None:
            return                         # never tracked: wait for the first apply
        memo_key = None
        if old is None and not managed:
            # A create's entries depend on the object's shape, not on its identity: objects
            # stamped from one template (RC pods) share them, only the time differs.
            shape = fieldvalidation.shape_key(new, drop=("managedFields",))
            memo_key = (res.definition, manager, subresource or "", shape) if shape else None
            hit = _CREATE_MEMO.get(memo_key) if memo_key else None
            if hit is not None:
                mf = orjson.loads(hit)
                now = self.now()
                for e in mf or ():
                    e["time"] = now
                if mf:
                    meta["managedFields"] = mf
                return
        try:
            t = definition_type(res.definition)
            entry = Entry(manager, "Update", res.api_version, subresource or "", None, set())
            before = zero_object(res.kind) if old is None else _stripped_copy(old)
            managed = compute_update(t, before, _stripped_copy(new), managed, entry,
                                     reset_fields(res, subresource), self.now())
        except (SchemaError, KeyError, TypeError):
            if old_raw is not None:
                meta["managedFields"] = old_raw      # UpdateNoErrors keeps the live entries
            return
        mf = encode_managed(managed)
        if memo_key is not None:
            if len(_CREATE_MEMO) >= 256:
                _CREATE_MEMO.pop(next(iter(_CREATE_MEMO)))
            _CREATE_MEMO[memo_key] = orjson.dumps(mf)
        if mf:
            meta["managedFields"] = mf

    @staticmethod
    def _base(raw: Any, old_raw: Any, subresource: str | None) -> Managed:
        """decodeLiveOrNew: the request's entries, unless absent, undecodable or sent to a
        subresource; `[]`/`[{}]` resets."""
        def live() -> Managed:
            try:
                return decode_managed(old_raw)
            except DecodeError:
                return {}
        if subresource:
            return live()
        if is_reset(raw):
            return {}
        try:
            managed = decode_managed(raw)
        except DecodeError:
            return live()
        return managed or live()
