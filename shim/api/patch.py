"""The PATCH engines: RFC 6902 JSON patch, RFC 7386 JSON merge patch, strategic merge patch.

Owns what the apiserver does between reading a PATCH body and decoding the patched
object: content-type dispatch, body parsing (with Go's error wording), and the three
patch algorithms, on plain JSON-shaped dicts. The behaviour copied is that of
k8s.io/apiserver handlers/patch.go (default fieldValidation, i.e. Warn), the
gopkg.in/evanphx/json-patch.v4 library it vendors, and
k8s.io/apimachinery util/strategicpatch (server side: StrategicMergeMapPatch), with
their quirks; the quirks kept on purpose are noted where they are implemented.

Strategic-merge metadata (x-kubernetes-patch-strategy / -merge-key) is read from the
OpenAPI definitions in shim.openapi.schema; fields the schema does not know merge like
a JSON merge patch (maps merge, lists are replaced).

Server-side apply (application/apply-patch+yaml) is not done here: the caller must
handle it before calling `apply_patch`, which otherwise answers it with 415.

All public functions are pure: inputs are never mutated.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Callable

from shim.api import errors
from shim.api.errors import StatusError
from shim.openapi import schema as openapi

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# The order the apiserver lists them in its 415 message (CBOR apply is gated off in 1.32).
PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]

MAX_JSON_PATCH_OPERATIONS = 10000
GENERIC_INVALID = "the server rejected our request due to an error in our request"


# ---- public API -------------------------------------------------------------------------

def apply_patch(content_type: str, doc: dict, body: bytes | str, definition: str) -> dict:
    """Parse `body` per `content_type` (parameters after ';' ignored) and patch `doc`.

    Raises 415 for any other type, including application/apply-patch+yaml (the caller
    must route server-side apply elsewhere first); 400 for a body that is not JSON.
    """
    media = content_type or ""
    cut = media.find(";")
    if cut > 0:
        media = media[:cut]
    if media == JSON_PATCH:
        return json_patch(doc, _decode_body(body, "error decoding patch: "))
    if media == MERGE_PATCH:
        return merge_patch(doc, _decode_body(body, "error decoding patch: "))
    if media == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(doc, _decode_body(body, ""), definition)
    raise errors.unsupported_media_type(media, PATCH_TYPES)


def json_patch(doc: dict, ops: Any) -> dict:
    """Apply an RFC 6902 patch (already JSON-decoded) the way the apiserver does."""
    _check_json_patch_shape(ops)
    if ops is None:  # `null` decodes to an empty patch
        return _clone(doc)
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise errors.too_large(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(ops)}")
    root: Any = _clone(doc)
    try:
        for op in ops:
            root = _apply_operation(root, op or {})
    except _OpFailed:
        # handlers/patch.go reports every json-patch failure through
        # NewGenericServerResponse(422, ...): the library's message is dropped.
        raise StatusError(422, "Invalid", GENERIC_INVALID, {}) from None
    if not isinstance(root, dict):
        raise _undecodable_result(root)
    return root


def merge_patch(doc: dict, patch: Any) -> dict:
    """Apply an RFC 7386 merge patch (already JSON-decoded) the way the apiserver does."""
    if patch is None:
        raise errors.bad_request("Invalid JSON Patch")
    if not isinstance(patch, dict):
        raise errors.bad_request("error decoding patch: " + _cannot_unmarshal(patch, _GO_MAP))
    result = _clone(doc)
    _merge_docs(result, _clone(patch))
    return result


def strategic_merge_patch(doc: dict, patch: Any, definition: str) -> dict:
    """Apply a strategic merge patch to `doc`, whose schema is the definition named `definition`.

    The result carries no `$...` directive keys and no null map values (the typed
    decode that follows on a real server drops both).
    """
    return _strategic_merge(doc, patch, _definition_node(definition))


# ---- body decoding ----------------------------------------------------------------------

class _GoJSONError(ValueError):
    pass


def _decode_body(body: bytes | str, prefix: str) -> Any:
    """JSON-decode a body as Go's encoding/json would; 400 with Go's wording otherwise."""
    raw = body.encode() if isinstance(body, str) else bytes(body or b"")
    try:
        return json.loads(raw.decode("utf-8", errors="replace"),
                          parse_int=_parse_int, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        message = _go_syntax_error(raw) or str(exc)
        raise errors.bad_request(prefix + message) from None


def _parse_int(text: str) -> int | float:
    value = int(text)
    return value if -(1 << 63) <= value < (1 << 63) else float(text)


def _reject_constant(text: str) -> Any:
    raise _GoJSONError(text)


def _go_syntax_error(data: bytes) -> str | None:
    """The message Go's JSON scanner gives for `data`, or None if it is valid JSON."""
    try:
        pos = _scan_value(data, _skip_ws(data, 0))
        pos = _skip_ws(data, pos)
        if pos < len(data):
            _scan_fail(data, pos, "after top-level value")
    except _GoJSONError as exc:
        return str(exc)
    except RecursionError:
        return "exceeded max depth"
    return None


def _skip_ws(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in b" \t\r\n":
        pos += 1
    return pos


def _scan_fail(data: bytes, pos: int, context: str):
    if pos >= len(data):
        raise _GoJSONError("unexpected end of JSON input")
    raise _GoJSONError(f"invalid character {_quote_char(data[pos])} {context}")


def _scan_value(data: bytes, pos: int) -> int:
    if pos >= len(data):
        _scan_fail(data, pos, "")
    c = data[pos]
    if c == 0x7B:
        return _scan_object(data, pos + 1)
    if c == 0x5B:
        return _scan_array(data, pos + 1)
    if c == 0x22:
        return _scan_string(data, pos + 1)
    if c == 0x2D or 0x30 <= c <= 0x39:
        return _scan_number(data, pos)
    for word in (b"true", b"false", b"null"):
        if c == word[0]:
            return _scan_literal(data, pos, word)
    _scan_fail(data, pos, "looking for beginning of value")


def _scan_object(data: bytes, pos: int) -> int:
    pos = _skip_ws(data, pos)
    if pos < len(data) and data[pos] == 0x7D:
        return pos + 1
    while True:
        if pos >= len(data) or data[pos] != 0x22:
            _scan_fail(data, pos, "looking for beginning of object key string")
        pos = _skip_ws(data, _scan_string(data, pos + 1))
        if pos >= len(data) or data[pos] != 0x3A:
            _scan_fail(data, pos, "after object key")
        pos = _skip_ws(data, _scan_value(data, _skip_ws(data, pos + 1)))
        if pos < len(data) and data[pos] == 0x2C:
            pos = _skip_ws(data, pos + 1)
            continue
        if pos < len(data) and data[pos] == 0x7D:
            return pos + 1
        _scan_fail(data, pos, "after object key:value pair")


def _scan_array(data: bytes, pos: int) -> int:
    pos = _skip_ws(data, pos)
    if pos < len(data) and data[pos] == 0x5D:
        return pos + 1
    while True:
        pos = _skip_ws(data, _scan_value(data, pos))
        if pos < len(data) and data[pos] == 0x2C:
            pos = _skip_ws(data, pos + 1)
            continue
        if pos < len(data) and data[pos] == 0x5D:
            return pos + 1
        _scan_fail(data, pos, "after array element")


def _scan_string(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            _scan_fail(data, pos, "")
        c = data[pos]
        if c == 0x22:
            return pos + 1
        if c == 0x5C:
            pos += 1
            if pos >= len(data):
                _scan_fail(data, pos, "")
            if data[pos] in b'"\\/bfnrt':
                pos += 1
            elif data[pos] == 0x75:
                for pos in range(pos + 1, pos + 5):
                    if pos >= len(data) or chr(data[pos]) not in "0123456789abcdefABCDEF":
                        _scan_fail(data, pos, "in \\u hexadecimal character escape")
                pos += 1
            else:
                _scan_fail(data, pos, "in string escape code")
        elif c < 0x20:
            _scan_fail(data, pos, "in string literal")
        else:
            pos += 1


def _scan_digits(data: bytes, pos: int) -> int:
    while pos < len(data) and 0x30 <= data[pos] <= 0x39:
        pos += 1
    return pos


def _is_digit_at(data: bytes, pos: int) -> bool:
    return pos < len(data) and 0x30 <= data[pos] <= 0x39


def _scan_number(data: bytes, pos: int) -> int:
    if data[pos] == 0x2D:
        pos += 1
        if not _is_digit_at(data, pos):
            _scan_fail(data, pos, "in numeric literal")
    pos = pos + 1 if data[pos] == 0x30 else _scan_digits(data, pos)
    if pos < len(data) and data[pos] == 0x2E:
        if not _is_digit_at(data, pos + 1):
            _scan_fail(data, pos + 1, "after decimal point in numeric literal")
        pos = _scan_digits(data, pos + 1)
    if pos < len(data) and data[pos] in b"eE":
        pos += 1
        if pos < len(data) and data[pos] in b"+-":
            pos += 1
        if not _is_digit_at(data, pos):
            _scan_fail(data, pos, "in exponent of numeric literal")
        pos = _scan_digits(data, pos)
    return pos


def _scan_literal(data: bytes, pos: int, word: bytes) -> int:
    for offset in range(1, len(word)):
        at = pos + offset
        if at >= len(data) or data[at] != word[offset]:
            expecting = _quote_char(word[offset])
            _scan_fail(data, at, f"in literal {word.decode()} (expecting {expecting})")
    return pos + len(word)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "\\": "\\\\"}


def _quote_char(byte: int) -> str:
    """Go's encoding/json quoteChar: one byte, shown as a single-quoted rune."""
    if byte == 0x27:
        return "'\\''"
    if byte == 0x22:
        return "'\"'"
    ch = chr(byte)
    if ch in _GO_ESCAPES:
        return f"'{_GO_ESCAPES[ch]}'"
    if byte < 0x20 or byte == 0x7F:
        return f"'\\x{byte:02x}'"
    if not ch.isprintable():
        return f"'\\u{byte:04x}'"
    return f"'{ch}'"


# ---- Go-flavoured value helpers ---------------------------------------------------------

_GO_MAP = "map[string]interface {}"
_GO_SLICE = "[]interface {}"


def _clone(value: Any) -> Any:
    """Deep copy of a JSON-shaped value."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _go_type(value: Any) -> str:
    """The Go dynamic type a decoded JSON value would have (ints decode as int64)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return _GO_MAP
    return _GO_SLICE


def _go_eq(a: Any, b: Any) -> bool:
    """Go interface equality: same dynamic type and equal value."""
    return _go_type(a) == _go_type(b) and a == b


def _go_contains(items: list, value: Any) -> bool:
    return any(_go_eq(item, value) for item in items)


def _json_kind(value: Any) -> str:
    """The JSON kind Go's UnmarshalTypeError names ("object", "array", ...)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _cannot_unmarshal(value: Any, go_type: str) -> str:
    return f"json: cannot unmarshal {_json_kind(value)} into Go value of type {go_type}"


def _gofmt(value: Any, verb: str = "v") -> str:
    """fmt's %v (or %s) rendering of a decoded JSON value, for error messages."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_gofmt(value[k], verb)}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_gofmt(v, verb) for v in value) + "]"
    if isinstance(value, str):
        return value
    if verb == "s":
        if value is None:
            return "%!s(<nil>)"
        return f"%!s({_go_type(value)}={_gofmt(value)})"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _go_float(value: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 64), which is what %v prints."""
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # position of the decimal point
    exp10 = point - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


# ---- RFC 6902 JSON patch (evanphx/json-patch v4 semantics) ------------------------------

class _OpFailed(Exception):
    """One operation could not be applied (the message never reaches the client)."""


def _check_json_patch_shape(ops: Any) -> None:
    """The strict decode into []jsonPatchOp that handlers/patch.go does first (400s)."""
    if ops is None:
        return
    if not isinstance(ops, list):
        raise errors.bad_request("error decoding patch: "
                                 + _cannot_unmarshal(ops, "[]handlers.jsonPatchOp"))
    for op in ops:
        if op is None:
            continue
        if not isinstance(op, dict):
            raise errors.bad_request("error decoding patch: "
                                     + _cannot_unmarshal(op, "handlers.jsonPatchOp"))
        for key, value in op.items():
            if key in ("op", "path", "from") and value is not None and not isinstance(value, str):
                raise errors.bad_request(
                    f"error decoding patch: json: cannot unmarshal {_json_kind(value)} into Go "
                    f"struct field jsonPatchOp.{key} of type string")


def _apply_operation(root: Any, op: dict) -> Any:
    """Apply one operation; returns the (possibly replaced) root."""
    kind = op.get("op")
    handler = _OPERATIONS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        raise _OpFailed(f"Unexpected kind: {kind}")
    return handler(root, op)


def _op_pointer(op: dict, field: str) -> str:
    value = op.get(field)
    if not isinstance(value, str):
        raise _OpFailed(f"operation missing {field} field")
    return value


def _unescape(token: str) -> str:
    return re.sub(r"~[01]", lambda m: "/" if m.group() == "~1" else "~", token)


def _locate(root: Any, pointer: str) -> tuple[Any, str]:
    """The container holding the pointer's last token, and that token (findObject).

    Like the library, the first segment is never looked at: "a/b" addresses "/b".
    """
    parts = pointer.split("/")
    if len(parts) < 2:
        raise _OpFailed(f"doc is missing path: {pointer}")
    container = root
    for part in parts[1:-1]:
        child = _get(container, _unescape(part))
        if not isinstance(child, (dict, list)):
            raise _OpFailed(f"doc is missing path: {pointer}")
        container = child
    return container, _unescape(parts[-1])


def _atoi(token: str) -> int:
    """strconv.Atoi: optional sign, decimal digits, int64 range."""
    if not re.fullmatch(r"[+-]?[0-9]+", token):
        raise _OpFailed(f"value was not a proper array index: '{token}'")
    index = int(token)
    if not -(1 << 63) <= index < (1 << 63):
        raise _OpFailed(f"value was not a proper array index: '{token}'")
    return index


def _array_index(items: list, token: str, size: int) -> int:
    """Index into a list of `size` slots; negative indices count from the end."""
    index = _atoi(token)
    if index >= size or index < -size:
        raise _OpFailed(f"Unable to access invalid index: {index}")
    return index + size if index < 0 else index


def _get(container: Any, key: str) -> Any:
    """The value at key; a missing object member reads as null (no error)."""
    if isinstance(container, dict):
        return container.get(key)
    return container[_array_index(container, key, len(container))]


def _add(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
    elif key == "-":
        container.append(value)
    else:
        container.insert(_array_index(container, key, len(container) + 1), value)


def _remove(container: Any, key: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise _OpFailed(f"Unable to remove nonexistent key: {key}")
        del container[key]
    else:
        del container[_array_index(container, key, len(container))]


def _op_add(root: Any, op: dict) -> Any:
    container, key = _locate(root, _op_pointer(op, "path"))
    _add(container, key, _clone(op.get("value")))
    return root


def _op_remove(root: Any, op: dict) -> Any:
    container, key = _locate(root, _op_pointer(op, "path"))
    _remove(container, key)
    return root


def _op_replace(root: Any, op: dict) -> Any:
    path = _op_pointer(op, "path")
    if path == "":
        value = op.get("value")
        if not isinstance(value, (dict, list)):
            raise _OpFailed("replace operation value must be object or array")
        return _clone(value)
    container, key = _locate(root, path)
    if isinstance(container, dict):
        # v4 quirk: a missing member is not an error, replace then acts as add.
        container[key] = _clone(op.get("value"))
    else:
        container[_array_index(container, key, len(container))] = _clone(op.get("value"))
    return root


def _op_move(root: Any, op: dict) -> Any:
    container, key = _locate(root, _op_pointer(op, "from"))
    value = _get(container, key)
    _remove(container, key)
    target, target_key = _locate(root, _op_pointer(op, "path"))
    _add(target, target_key, value)
    return root


def _op_copy(root: Any, op: dict) -> Any:
    container, key = _locate(root, _op_pointer(op, "from"))
    value = _get(container, key)  # v4 quirk: copying a missing member copies null
    target, target_key = _locate(root, _op_pointer(op, "path"))
    _add(target, target_key, _clone(value))
    return root


def _op_test(root: Any, op: dict) -> Any:
    path = _op_pointer(op, "path")
    if path == "":
        if "value" not in op or not _json_equal(root, op["value"]):
            raise _OpFailed("testing value failed")
        return root
    container, key = _locate(root, path)
    actual = _get(container, key)
    expected = op.get("value")
    if actual is None:
        # a missing member or a null passes against an absent or null value
        if expected is not None:
            raise _OpFailed(f"testing value {path} failed")
    elif expected is None or not _json_equal(actual, expected):
        raise _OpFailed(f"testing value {path} failed")
    return root


_OPERATIONS: dict[str, Callable[[Any, dict], Any]] = {
    "add": _op_add, "remove": _op_remove, "replace": _op_replace,
    "move": _op_move, "copy": _op_copy, "test": _op_test,
}


def _json_equal(a: Any, b: Any) -> bool:
    """Structural equality; numbers must also agree on int vs float (raw-byte compare in Go)."""
    if isinstance(a, dict):
        return (isinstance(b, dict) and len(a) == len(b)
                and all(k in b and _json_equal(v, b[k]) for k, v in a.items()))
    if isinstance(a, list):
        return (isinstance(b, list) and len(a) == len(b)
                and all(_json_equal(x, y) for x, y in zip(a, b)))
    return _go_eq(a, b)


def _undecodable_result(root: Any) -> StatusError:
    """What the apiserver says when the patched document no longer decodes as an object."""
    text = json.dumps(root, separators=(",", ":"))
    return errors.invalid("", "", [errors.invalid_value(
        "patch", text, _cannot_unmarshal(root, _GO_MAP))])


# ---- RFC 7386 merge patch (evanphx/json-patch v4 MergePatch) -----------------------------

def _merge_docs(doc: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif doc.get(key) is None:
            doc[key] = _prune_nulls(value)
        else:
            doc[key] = _merge_value(doc[key], value)


def _merge_value(current: Any, patch: Any) -> Any:
    if not isinstance(current, dict):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        return patch  # v4 quirk: an array replacing an object keeps its nulls
    _merge_docs(current, patch)
    return current


def _prune_nulls(value: Any) -> Any:
    """v4 quirk: nulls are dropped from inserted objects *and* arrays, recursively."""
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value if v is not None]
    return value


# ---- strategic merge patch (apimachinery util/strategicpatch, server side) --------------

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"

ERR_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
ERR_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
ERR_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
ERR_NO_LIST_OF_LISTS = "lists of lists are not supported"


def _strategic_merge(doc: dict, patch: Any, node: dict | None) -> dict:
    """strategic_merge_patch against an explicit schema node (None: no schema)."""
    if patch is None:  # `null` decodes to an empty patch
        return _clone(doc)
    if not isinstance(patch, dict):
        raise errors.bad_request(_cannot_unmarshal(patch, _GO_MAP))
    return _strip_directives(_merge_map(_clone(doc), _clone(patch), node))


def _internal(message: str) -> StatusError:
    """A plain Go error reaching the handler: 500 with no reason (ErrorToAPIStatus)."""
    return errors.unreasoned(500, message)


def _bad_arg_type(expected: str, actual: Any) -> StatusError:
    got = "%!s(<nil>)" if actual is None else _go_type(actual)
    return _internal(f"expected a {expected}, but received a {got}")


def _no_merge_key(item: dict, merge_key: str) -> StatusError:
    return _internal(f"map: {_gofmt(item)} does not contain declared merge key: {merge_key}")


def _definition_node(name: str) -> dict | None:
    try:
        return openapi.definition(name) if name else None
    except KeyError:
        return None


def _resolve(node: Any) -> dict | None:
    if not isinstance(node, dict):
        return None
    try:
        return openapi.resolve(node)
    except KeyError:
        return None


def _field_meta(node: dict | None, key: str) -> tuple[dict | None, list[str], str]:
    """(property schema, patch strategies, merge key) of `key` in object schema `node`."""
    if node is None:
        return None, [""], ""
    props = node.get("properties")
    if isinstance(props, dict) and key in props:
        prop = props[key]
        return (prop, prop.get("x-kubernetes-patch-strategy", "").split(","),
                prop.get("x-kubernetes-patch-merge-key", ""))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return extra, [""], ""
    return None, [""], ""


def _items_node(prop: dict | None) -> dict | None:
    return _resolve(prop.get("items")) if prop else None


def _patch_strategy(strategies: list[str]) -> str:
    """The non-retainKeys strategy of a field (extractRetainKeysPatchStrategy)."""
    if len(strategies) == 1:
        return "" if strategies[0] == "retainKeys" else strategies[0]
    if len(strategies) == 2 and "retainKeys" in strategies:
        return strategies[1] if strategies[0] == "retainKeys" else strategies[0]
    raise _internal(f"unexpected patch strategy: [{' '.join(strategies)}]")


def _strip_directives(value: Any) -> Any:
    """Drop `$...` keys and null members, as decoding into the typed object would."""
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if v is not None and not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _merge_map(original: dict, patch: dict, node: dict | None) -> dict:
    """mergeMap: merge `patch` into `original` (both owned, mutated) under schema `node`."""
    if _DIRECTIVE in patch:
        return _map_directive(patch[_DIRECTIVE], patch)
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, node)
    for key in list(patch):
        _merge_field(original, key, patch[key], node)
    return original


def _map_directive(directive: Any, patch: dict) -> dict:
    if directive == "replace" and isinstance(directive, str):
        del patch[_DIRECTIVE]
        return patch
    if directive == "delete" and isinstance(directive, str):
        return {}
    raise _internal(f"unknown patch type: {_gofmt(directive, 's')} in map: {_gofmt(patch)}")


def _merge_field(original: dict, key: str, value: Any, node: dict | None) -> None:
    delete_list = key.startswith(_DELETE_FROM_PRIMITIVE_LIST)
    if delete_list:
        key = _extract_key(key, _DELETE_FROM_PRIMITIVE_LIST) or key
    if value is None:
        original.pop(key, None)
        return
    if key not in original or _go_type(original[key]) != _go_type(value):
        if not delete_list:  # a deletion list never creates or retypes a field
            _take_patch_value(original, key, value)
        return
    current = original[key]
    prop, strategies, merge_key = _field_meta(node, key)
    strategy = _patch_strategy(strategies)
    if isinstance(current, dict):
        original[key] = (value if strategy == "replace"
                         else _merge_map(current, value, _resolve(prop)))
    elif isinstance(current, list):
        # deletion lists apply whatever the field's strategy
        original[key] = (_merge_slice(current, value, _items_node(prop), merge_key, delete_list)
                         if strategy == "merge" or delete_list else value)
    else:
        original[key] = value


def _take_patch_value(original: dict, key: str, value: Any) -> None:
    """A patch value with nothing to merge into: nulls dropped, `$patch`-marked maps removed."""
    keep, cleaned = _remove_directives(_discard_nulls(value))
    if keep:
        original[key] = cleaned
    else:
        original.pop(key, None)


def _discard_nulls(value: Any) -> Any:
    """discardNullValuesFromPatch: null members of maps go, at any depth (list items stay)."""
    if isinstance(value, dict):
        return {k: _discard_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_discard_nulls(v) for v in value]
    return value


def _remove_directives(value: Any) -> tuple[bool, Any]:
    """removeDirectives: (keep?, value) with every map carrying `$patch` dropped."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return False, None
        out = {}
        for k, v in value.items():
            keep, cleaned = _remove_directives(v)
            if keep:
                out[k] = cleaned
        return True, out
    if isinstance(value, list):
        kept = (_remove_directives(v) for v in value)
        return True, [cleaned for keep, cleaned in kept if keep]
    return True, value


def _extract_key(directive_key: str, prefix: str) -> str:
    head, sep, rest = directive_key.partition("/")
    if not sep or head != prefix:
        if prefix == _DELETE_FROM_PRIMITIVE_LIST:
            raise errors.bad_request(ERR_BAD_PRIMITIVE_LIST)
        raise errors.bad_request(ERR_BAD_SET_ELEMENT_ORDER)
    return rest


def _apply_retain_keys(original: dict, patch: dict) -> None:
    """$retainKeys: drop original fields not listed; every set patch field must be listed."""
    if _RETAIN_KEYS not in patch:
        return
    retained = patch.pop(_RETAIN_KEYS)
    if not isinstance(retained, list):
        raise errors.bad_request(ERR_BAD_RETAIN_KEYS)
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if not _go_contains(retained, key):
            raise errors.bad_request(ERR_BAD_RETAIN_KEYS)
    for key in [k for k in original if not _go_contains(retained, k)]:
        del original[key]


def _merge_ordered_lists(original: dict, patch: dict, node: dict | None) -> None:
    """mergePatchIntoOriginal: merge each list named by a $setElementOrder directive and
    put its items in the requested order; the list is then removed from the patch."""
    for directive_key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        if not isinstance(order, list):
            raise _bad_arg_type(_GO_SLICE, order)
        key = _extract_key(directive_key, _SET_ELEMENT_ORDER)
        in_original, in_patch = key in original, key in patch
        live, patch_list = original.get(key), patch.get(key)
        if in_original and not isinstance(live, list):
            raise _bad_arg_type(_GO_SLICE, live)
        if in_patch and not isinstance(patch_list, list):
            raise _bad_arg_type(_GO_SLICE, patch_list)
        prop, strategies, merge_key = _field_meta(node, key)
        strategy = _patch_strategy(strategies)
        _check_order_matches_patch(patch_list or [], order, merge_key)
        if not in_original and not in_patch:
            continue
        if in_original and in_patch:
            size = len(live)
            if strategy == "merge":
                merged = _merge_slice(live, patch_list, _items_node(prop), merge_key, False)
            else:
                merged = patch_list
            # Go slice aliasing kept: the merge shifted deletions and wrote appended
            # items into the live list's backing array, and that view orders the result.
            server_order = live[:size]
        elif in_original:
            merged, server_order = live, live
        else:
            merged, server_order = _remove_directives(patch_list)[1], []
        if merge_key:
            patch_items, server_only = _partition_maps(merged, order, merge_key)
        else:
            patch_items, server_only = _partition_primitives(merged, order)
        kind = _element_type(server_order, patch_list or [])
        original[key] = _normalize_element_order(patch_items, server_only, order, server_order,
                                                 merge_key, kind)
        patch.pop(key, None)


def _check_order_matches_patch(patch_list: list, order: list, merge_key: str) -> None:
    """validatePatchWithSetOrderList: patch items must appear in $setElementOrder's order."""
    if not order or not patch_list:
        return
    kept = _split_deletions(patch_list)[0] if merge_key else patch_list
    p = s = 0
    while p < len(kept) and s < len(order):
        if isinstance(kept[p], dict) and _DIRECTIVE in kept[p]:
            p += 1
            continue
        if _merge_key_equal(kept[p], order[s], merge_key):
            p += 1
        s += 1
    if p < len(kept) and s >= len(order):
        raise _internal(f"The order in patch list:\n{_gofmt(patch_list)}\n doesn't match "
                        f"{_SET_ELEMENT_ORDER} list:\n{_gofmt(order)}\n")


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _go_eq(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise _bad_arg_type(_GO_MAP, item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
    return _go_eq(left[merge_key], right[merge_key])


def _element_type(*lists: list) -> str:
    """sliceElementType: the one Go type of all elements of `lists`."""
    found = None
    for items in lists:
        for item in items:
            kind = _go_type(item)
            if found is None:
                found = kind
                if kind == _GO_SLICE:
                    raise StatusError(422, "Invalid", GENERIC_INVALID, {})  # ErrNoListOfLists
            elif kind != found:
                raise _internal(f"list element types are not identical: {_gofmt(list(lists))}")
    if found is None:
        raise _internal("no elements in any of the given slices")
    return found


class _Backed:
    """A Go slice over a Python list used as its backing array (len <= len(backing))."""

    def __init__(self, backing: list):
        self.backing = backing
        self.size = len(backing)

    def view(self) -> list:
        return self.backing[:self.size]

    def delete(self, index: int) -> None:  # append(s[:i], s[i+1:]...)
        self.backing[index:self.size - 1] = self.backing[index + 1:self.size]
        self.size -= 1

    def append(self, value: Any) -> None:
        if self.size < len(self.backing):
            self.backing[self.size] = value
        else:
            self.backing.append(value)
        self.size += 1


def _merge_slice(original: list, patch: list, item_node: dict | None, merge_key: str,
                 delete_list: bool) -> list:
    """mergeSlice for a list with strategy merge. `original` is used as a Go backing array."""
    if not original and not patch:
        return original
    kind = _element_type(original, patch)
    if kind != _GO_MAP:
        if delete_list:
            return [v for v in original if not _go_contains(patch, v)]
        merged = _dedupe_scalars(original + patch)
    else:
        if not merge_key:
            kind_name = "struct" if item_node and "properties" in item_node else "map"
            raise _internal(f"cannot merge lists without merge key for type {kind_name}")
        backed = _Backed(original)
        patch, replace = _apply_list_directives(backed, patch, merge_key)
        if replace:
            original, merged, patch = patch, patch, []
        else:
            size = backed.size
            _merge_list_items(backed, patch, merge_key, item_node)
            merged = backed.view()
            original = backed.backing[:size]
    if merge_key:
        patch_items, server_only = _partition_maps(merged, patch, merge_key)
    else:
        patch_items, server_only = _partition_primitives(merged, patch)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key, kind)


def _apply_list_directives(backed: _Backed, patch: list, merge_key: str) -> tuple[list, bool]:
    """mergeSliceWithSpecialElements: run `$patch` items; return the others and a replace flag."""
    plain, replace = [], False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete" and isinstance(directive, str):
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            while (index := _find_by_key(backed.view(), merge_key, item[merge_key])) is not None:
                backed.delete(index)
        elif directive == "replace" and isinstance(directive, str):
            replace = True
        elif directive == "merge" and isinstance(directive, str):
            raise _internal("merging lists cannot yet be specified in the patch")
        else:
            raise _internal(f"unknown patch type: {_gofmt(directive, 's')} in map: {_gofmt(item)}")
    return plain, replace


def _merge_list_items(backed: _Backed, patch: list, merge_key: str, item_node: dict | None) -> None:
    """mergeSliceWithoutSpecialElements: merge items with a matching key, append the rest."""
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        index = _find_by_key(backed.view(), merge_key, item[merge_key])
        if index is None:
            backed.append(item)
        else:
            backed.backing[index] = _merge_map(backed.backing[index], item, item_node)


def _find_by_key(items: list, merge_key: str, value: Any) -> int | None:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _internal(f"value for key {index} is not a map.")
        if merge_key in item and _go_eq(item[merge_key], value):
            return index
    return None


def _dedupe_scalars(items: list) -> list:
    """deduplicateScalars: drops repeats by moving the last element into their place."""
    items = list(items)
    last = len(items) - 1
    i = 0
    while i < last:
        j = i + 1
        while j <= last:
            if _go_eq(items[i], items[j]):
                items[j] = items[last]
                items = items[:last]
                last -= 1
                j -= 1
            j += 1
        i += 1
    return items


def _split_deletions(items: list) -> tuple[list, list]:
    """extractToDeleteItems: (items kept, items carrying `$patch: delete`)."""
    kept, deleted = [], []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(_GO_MAP, item)
        directive = item.get(_DIRECTIVE)
        (deleted if directive == "delete" and isinstance(directive, str) else kept).append(item)
    return kept, deleted


def _partition_primitives(items: list, present_in: list) -> tuple[list, list]:
    inside = [v for v in items if _go_contains(present_in, v)]
    outside = [v for v in items if not _go_contains(present_in, v)]
    return inside, outside


def _partition_maps(items: list, present_in: list, merge_key: str) -> tuple[list, list]:
    inside, outside = [], []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(_GO_MAP, item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        found = _find_by_key(present_in, merge_key, item[merge_key]) is not None
        (inside if found else outside).append(item)
    return inside, outside


def _position(items: list, value: Any, merge_key: str, kind: str) -> int:
    """index(): position of `value` in `items`, by merge-key value for maps; -1 if absent."""
    if kind == _GO_MAP:
        def key_of(item):
            return item.get(merge_key) if isinstance(item, dict) else None
    else:
        def key_of(item):
            return item
    wanted = key_of(value)
    for index, item in enumerate(items):
        if _go_eq(key_of(item), wanted):
            return index
    return -1


def _normalize_element_order(patch_items: list, server_only: list, patch_order: list,
                             server_order: list, merge_key: str, kind: str) -> list:
    """Sort patch items by the patch order, server-only items by the live order, interleave."""
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key, kind)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, kind)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, kind)


def _normalize_slice_order(items: list, order: list, merge_key: str, kind: str) -> list:
    deleted: list = []
    if kind == _GO_MAP:
        for item in (*items, *order):
            if not isinstance(item, dict):
                raise _bad_arg_type(_GO_MAP, item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
        items, deleted = _split_deletions(items)

    def less(a: Any, b: Any) -> bool:  # deliberately not a strict order, as in Go
        ia = _position(order, a, merge_key, kind)
        if ia >= 0:
            ib = _position(order, b, merge_key, kind)
            if ib >= 0:
                return ia < ib
        return True

    return _go_stable_sort(list(items), less) + deleted


def _merge_sorted(left: list, right: list, server_order: list, merge_key: str,
                  kind: str) -> list:
    """mergeSortedSlice: interleave server-only items (left) into patch items (right)."""
    out: list = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _position(server_order, left[i], merge_key, kind)
            ri = _position(server_order, right[j], merge_key, kind)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _go_stable_sort(data: list, less: Callable[[Any, Any], bool]) -> list:
    """Go's sort.SliceStable (insertion-sorted blocks of 20, then SymMerge), in place.

    Reproduced step for step because the comparator used above is not a strict weak
    order, so any other stable sort could give a different result.
    """
    def lt(i: int, j: int) -> bool:
        return less(data[i], data[j])

    def swap(i: int, j: int) -> None:
        data[i], data[j] = data[j], data[i]

    def insertion_sort(a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and lt(j, j - 1):
                swap(j, j - 1)
                j -= 1

    def swap_range(a: int, b: int, n: int) -> None:
        for i in range(n):
            swap(a + i, b + i)

    def rotate(a: int, m: int, b: int) -> None:
        i, j = m - a, b - m
        while i != j:
            if i > j:
                swap_range(m - i, m, j)
                i -= j
            else:
                swap_range(m - i, m + j - i, i)
                j -= i
        swap_range(m - i, m, i)

    def sym_merge(a: int, m: int, b: int) -> None:
        if m - a == 1:
            i, j = m, b
            while i < j:
                h = (i + j) // 2
                if lt(h, a):
                    i = h + 1
                else:
                    j = h
            for k in range(a, i - 1):
                swap(k, k + 1)
            return
        if b - m == 1:
            i, j = a, m
            while i < j:
                h = (i + j) // 2
                if not lt(m, h):
                    i = h + 1
                else:
                    j = h
            for k in range(m, i, -1):
                swap(k, k - 1)
            return
        mid = (a + b) // 2
        n = mid + m
        start, r = (n - b, mid) if m > mid else (a, m)
        p = n - 1
        while start < r:
            c = (start + r) // 2
            if not lt(p - c, c):
                start = c + 1
            else:
                r = c
        end = n - start
        if start < m < end:
            rotate(start, m, end)
        if a < start < mid:
            sym_merge(a, start, mid)
        if mid < end < b:
            sym_merge(mid, end, b)

    size, block = len(data), 20
    a, b = 0, block
    while b <= size:
        insertion_sort(a, b)
        a, b = b, b + block
    insertion_sort(a, size)
    while block < size:
        a, b = 0, 2 * block
        while b <= size:
            sym_merge(a, a + block, b)
            a, b = b, b + 2 * block
        if a + block < size:
            sym_merge(a, a + block, size)
        block *= 2
    return data
