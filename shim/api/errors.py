"""metav1.Status errors: the one exception type every layer raises, and its wire form.

Anything below the HTTP face raises StatusError; the request pipeline turns it
into a `{"kind":"Status",...}` body with the matching HTTP code. The helpers
mirror k8s.io/apimachinery/pkg/api/errors so messages read exactly like the
real apiserver's.
"""
from __future__ import annotations

from typing import Any


class StatusError(Exception):
    """A failed request, as the metav1.Status the client will see."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": self.message}
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _qualified(resource: str, group: str = "") -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str | None, resource: str, group: str = "", **extra) -> dict:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    d["group"] = group
    d["kind"] = resource
    d.update(extra)
    return d


def not_found(resource: str, name: str, group: str = "") -> StatusError:
    return StatusError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                       _details(name, resource, group))


def already_exists(resource: str, name: str, group: str = "") -> StatusError:
    return StatusError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                       _details(name, resource, group))


def generate_name_conflict(resource: str, name: str, group: str = "") -> StatusError:
    return StatusError(
        409, "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists, the server was not able to '
        f'generate a unique name for the object',
        _details(name, resource, group, retryAfterSeconds=1))


OPTIMISTIC_LOCK = ("the object has been modified; please apply your changes to the latest "
                   "version and try again")


def conflict(resource: str, name: str, why: str = OPTIMISTIC_LOCK, group: str = "") -> StatusError:
    return StatusError(409, "Conflict",
                       f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
                       _details(name, resource, group))


def forbidden(resource: str, name: str | None, why: str, group: str = "") -> StatusError:
    if name:
        msg = f'{_qualified(resource, group)} "{name}" is forbidden: {why}'
    elif resource:
        msg = f"{_qualified(resource, group)} is forbidden: {why}"
    else:
        msg = f"forbidden: {why}"
    return StatusError(403, "Forbidden", msg, _details(name, resource, group))


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def method_not_supported(resource: str, verb: str, group: str = "") -> StatusError:
    return StatusError(405, "MethodNotAllowed",
                       f'{verb} is not supported on resources of kind "{_qualified(resource, group)}"',
                       _details(None, resource, group))


def not_acceptable(accepted: list[str]) -> StatusError:
    return StatusError(406, "NotAcceptable",
                       "only the following media types are accepted: " + ", ".join(accepted))


def unsupported_media_type(content_type: str, accepted: list[str]) -> StatusError:
    return StatusError(415, "UnsupportedMediaType",
                       "the body of the request was in an unknown format - accepted media types "
                       "include: " + ", ".join(accepted))


def too_large(message: str = "limit is 3145728") -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", f"Request entity too large: {message}")


def expired(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}",
                       {"causes": [{"message": message}]})


def unreasoned(code: int, message: str) -> StatusError:
    """A Go error that is not an APIStatus: reason-less Status (kubectl: `Error from server: ...`)."""
    return StatusError(code, "", message)


# ---- field errors (k8s.io/apimachinery/pkg/util/validation/field) --------------------------

_CAUSE_REASON = {
    "Required value": "FieldValueRequired",
    "Invalid value": "FieldValueInvalid",
    "Unsupported value": "FieldValueNotSupported",
    "Duplicate value": "FieldValueDuplicate",
    "Forbidden": "FieldValueForbidden",
    "Too long": "FieldValueTooLong",
    "Too many": "FieldValueTooMany",
    "Not found": "FieldValueNotFound",
    "Internal error": "InternalError",
    "Invalid value type": "FieldValueTypeInvalid",
}

_NO_VALUE = object()


def _render_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    import orjson
    return orjson.dumps(v).decode()


class FieldError:
    """One field.Error: type ('Required value', 'Invalid value', ...), dotted path, bad value, detail."""

    __slots__ = ("type", "field", "value", "detail")

    def __init__(self, type: str, field: str, value: Any = _NO_VALUE, detail: str = ""):
        self.type = type
        self.field = field
        self.value = value
        self.detail = detail

    def body(self) -> str:
        """The error text without the field path (what goes in causes[].message)."""
        parts = [self.type]
        if self.value is not _NO_VALUE and self.type not in ("Required value", "Forbidden",
                                                             "Too long", "Too many", "Internal error"):
            parts.append(_render_value(self.value))
        s = ": ".join(parts)
        if self.detail:
            s += ": " + self.detail
        return s

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()

    def __repr__(self) -> str:
        return f"FieldError({str(self)!r})"

    def cause(self) -> dict:
        return {"reason": _CAUSE_REASON.get(self.type, "FieldValueInvalid"),
                "message": self.body(), "field": self.field}


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("Required value", field, _NO_VALUE, detail)


def invalid_value(field: str, value: Any, detail: str = "") -> FieldError:
    return FieldError("Invalid value", field, value, detail)


def unsupported(field: str, value: Any, supported: list[str]) -> FieldError:
    return FieldError("Unsupported value", field, value,
                      "supported values: " + ", ".join(f'"{s}"' for s in supported))


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("Duplicate value", field, value)


def forbidden_field(field: str, detail: str) -> FieldError:
    return FieldError("Forbidden", field, _NO_VALUE, detail)


def too_long(field: str, max_len: int) -> FieldError:
    return FieldError("Too long", field, _NO_VALUE, f"may not be more than {max_len} bytes")


def not_found_field(field: str, value: Any) -> FieldError:
    return FieldError("Not found", field, value)


def invalid(kind: str, name: str, errors: list[FieldError], group: str = "") -> StatusError:
    """422 Invalid: `<Kind> "<name>" is invalid: <err>` or `...: [e1, e2]`."""
    if len(errors) == 1:
        agg = str(errors[0])
    else:
        agg = "[" + ", ".join(str(e) for e in errors) + "]"
    qk = f"{kind}.{group}" if group else kind
    return StatusError(422, "Invalid", f'{qk} "{name}" is invalid: {agg}',
                       {"name": name, "group": group, "kind": kind,
                        "causes": [e.cause() for e in errors]})
