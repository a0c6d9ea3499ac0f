"""Create/update validation of core/v1 objects, with the exact field errors of a 1.32 apiserver.

Owns the behaviour of apimachinery's util/validation (name and label rules and their
messages), api/validation (ObjectMeta), meta/v1/validation (labels) and
pkg/apis/core/validation (per-kind rules) for the kinds kubeshim serves. Every public
kind validator takes already-defaulted JSON-shaped dicts and returns list[FieldError]
(shim/api/errors.py); paths and messages read like the real server's. Go renders maps with
sorted keys and internal structs with Go field names; the helpers below mimic that where a
whole value is echoed back. Not covered (accepted without checks): affinity,
topologySpreadConstraints, resource claims, Windows options, most in-tree volume plugins'
fields, PV/PVC.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from typing import Any, Callable

from shim.api.errors import (FieldError, duplicate, forbidden_field, invalid_value,
                             not_found_field, required, too_long, unsupported)
from shim.resources import quantity

NameFn = Callable[[str, bool], "list[str]"]

IS_NEGATIVE = "must be greater than or equal to 0"
FIELD_IMMUTABLE = "field is immutable"
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
MAX_SECRET_SIZE = 1024 * 1024
TOTAL_ANNOTATION_SIZE = 256 * 1024
MAX_INT32 = 2 ** 31 - 1
FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"

# ==== util/validation: name rules and their messages ==========================================

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
C_IDENTIFIER_FMT = "[A-Za-z_][A-Za-z0-9_]*"
HTTP_HEADER_NAME_FMT = "[-A-Za-z0-9]+"

_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                      "characters or '-', and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric "
                          "character")
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or "
                      "'-', start with an alphabetic character, and end with an alphanumeric "
                      "character")
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                       "and end with an alphanumeric character")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character")
_CONFIG_MAP_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_RELAXED_ENV_MSG = ("a valid environment variable name must consist only of printable ASCII "
                    "characters other than '='")
_C_IDENTIFIER_MSG = ("a valid C identifier must start with alphabetic character or '_', "
                     "followed by a string of alphanumeric characters or '_'")
_HTTP_HEADER_MSG = "a valid HTTP header must consist of alphanumeric characters or '-'"


def _blen(s: str) -> int:
    """Go's len(): bytes, not characters."""
    return len(s.encode("utf-8", "surrogatepass"))


def _match(fmt: str, s: str) -> bool:
    return re.fullmatch(fmt, s) is not None


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """validation.RegexError: note the doubled space before each ' or '."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    parts = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {parts}regex used for validation is '{fmt}')"


def empty_error() -> str:
    return "must be non-empty"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _match(DNS1123_LABEL_FMT, value):
        errs.append(regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _match(DNS1123_SUBDOMAIN_FMT, value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _match(DNS1035_LABEL_FMT, value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys (lower-cased), finalizers, resource names."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName",
                                                  "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part " + empty_error())
    elif _blen(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _match(QUALIFIED_NAME_FMT, name):
        errs.append("name part " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName",
                                               "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = []
    if _blen(value) > 63:
        errs.append(max_len_error(63))
    if not _match(LABEL_VALUE_FMT, value):
        errs.append(regex_error(_LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_valid_port_num(port: Any) -> list[str]:
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    errs = []
    if _blen(port) > 15:
        errs.append(max_len_error(15))
    if not _match("[-a-z0-9]+", port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _ch_dir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if _blen(value) > 253:
        errs.append(max_len_error(253))
    if not _match(CONFIG_MAP_KEY_FMT, value):
        errs.append(regex_error(_CONFIG_MAP_KEY_MSG, CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME",
                                "key-name"))
    return errs + _ch_dir_prefix(value)


def is_env_var_name(value: str) -> list[str]:
    """The relaxed rule (RelaxedEnvironmentVariableValidation is on by default in 1.32)."""
    errs = []
    if not value:
        errs.append("environment variable name " + empty_error())
    if any(ord(ch) > 126 or ord(ch) < 32 or ch == "=" for ch in value):
        errs.append(_RELAXED_ENV_MSG)
    return errs


def is_c_identifier(value: str) -> list[str]:
    if _match(C_IDENTIFIER_FMT, value):
        return []
    return [regex_error(_C_IDENTIFIER_MSG, C_IDENTIFIER_FMT, "my_name", "MY_NAME", "MyName")]


def is_http_header_name(value: str) -> list[str]:
    if _match(HTTP_HEADER_NAME_FMT, value):
        return []
    return [regex_error(_HTTP_HEADER_MSG, HTTP_HEADER_NAME_FMT, "X-Header-Name")]


def is_valid_user_id(uid: Any) -> list[str]:
    if isinstance(uid, int) and 0 <= uid <= MAX_INT32:
        return []
    return [inclusive_range_error(0, MAX_INT32)]


def parse_ip_sloppy(value: str):
    """netutils.ParseIPSloppy: IPv4 octets may carry leading zeros."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    parts = value.split(".")
    if len(parts) == 4 and all(p.isdigit() and p.isascii() and int(p) < 256 for p in parts):
        return ipaddress.ip_address(".".join(str(int(p)) for p in parts))
    return None


def validate_ip(path: str, value: Any) -> list[FieldError]:
    if parse_ip_sloppy(value) is None:
        return [invalid_value(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or "
                                           "2001:db8::ffff)")]
    return []


def validate_cidr(path: str, value: Any) -> list[FieldError]:
    try:
        ipaddress.ip_network(value, strict=False)
        ok = "/" in value
    except (ValueError, TypeError):
        ok = False
    if not ok:
        return [invalid_value(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
                                           "2001:db8::/64)")]
    return []


# ---- name functions (ValidateNameFunc): name, prefix -> messages ---------------------------

def _mask_trailing_dash(name: str) -> str:
    return name[:-2] + "a" if name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


# ==== value helpers ==========================================================================

def _s(v: Any) -> str:
    """A Go string field: missing/null reads as ""."""
    return v if isinstance(v, str) else ""


def _list(v: Any) -> list:
    return v if isinstance(v, list) else []


def _map(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _sorted(d: Any) -> Any:
    """A map as Go's json.Marshal prints it (sorted keys); None stays null."""
    return {k: d[k] for k in sorted(d)} if isinstance(d, dict) else d


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _nonneg(path: str, value: Any) -> list[FieldError]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return [invalid_value(path, value, IS_NEGATIVE)]
    return []


def _names(path: str, value: str, msgs: list[str]) -> list[FieldError]:
    return [invalid_value(path, value, m) for m in msgs]


def _qualified(path: str, value: str) -> list[FieldError]:
    return _names(path, value, is_qualified_name(value))


def _label(path: str, value: str) -> list[FieldError]:
    return _names(path, value, is_dns1123_label(value))


def _subdomain(path: str, value: str) -> list[FieldError]:
    return _names(path, value, is_dns1123_subdomain(value))


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    """meta/v1 ValidateLabels: every error is reported at the map's path."""
    errs: list[FieldError] = []
    for k, v in _map(labels).items():
        errs += _qualified(path, k)
        errs += _names(path, v, is_valid_label_value(_s(v)))
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    total = 0
    for k, v in _map(annotations).items():
        errs += _names(path, k, is_qualified_name(k.lower()))
        total += _blen(k) + _blen(_s(v))
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return errs


# ==== ObjectMeta (apimachinery api/validation + core's finalizer rule) ========================

STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
_BANNED_OWNER = ("", "v1", "Event")


def _parse_group_version(api_version: str) -> tuple[str, str] | None:
    if not api_version:
        return "", ""
    parts = api_version.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return None


def _owner_reference(ref: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    api_version, kind = _s(ref.get("apiVersion")), _s(ref.get("kind"))
    gv = _parse_group_version(api_version) or ("", "")
    if not gv[1]:
        errs.append(invalid_value(f"{path}.apiVersion", api_version, "version must not be empty"))
    if not kind:
        errs.append(invalid_value(f"{path}.kind", kind, "must not be empty"))
    if not _s(ref.get("name")):
        errs.append(invalid_value(f"{path}.name", _s(ref.get("name")), "must not be empty"))
    if not _s(ref.get("uid")):
        errs.append(invalid_value(f"{path}.uid", _s(ref.get("uid")), "must not be empty"))
    if (gv[0], gv[1], kind) == _BANNED_OWNER:
        errs.append(invalid_value(path, ref, "/v1, Kind=Event is disallowed from being an owner"))
    return errs


def validate_owner_references(refs: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    first = ""
    for ref in _list(refs):
        ref = _map(ref)
        errs += _owner_reference(ref, path)
        if ref.get("controller") is True:
            current = f"{_s(ref.get('kind'))}/{_s(ref.get('name'))}"
            if first:
                errs.append(invalid_value(
                    path, refs, "Only one reference can have Controller set to true. Found "
                                f"\"true\" in references for {first} and {current}"))
            else:
                first = current
    return errs


def validate_finalizers(finalizers: Any, path: str) -> list[FieldError]:
    """apimachinery ValidateFinalizers (qualified names; orphan vs foregroundDeletion)."""
    errs: list[FieldError] = []
    names = [_s(f) for f in _list(finalizers)]
    for name in names:
        errs += _qualified(path, name)
    if "orphan" in names and "foregroundDeletion" in names:
        errs.append(invalid_value(path, names, "finalizer orphan and foregroundDeletion cannot "
                                               "be both set"))
    return errs


def _kube_finalizer_names(finalizers: Any, path: str) -> list[FieldError]:
    """core's validateKubeFinalizerName for each finalizer, indexed paths."""
    errs = []
    for i, name in enumerate(_list(finalizers)):
        name = _s(name)
        if "/" not in name and name not in STANDARD_FINALIZERS:
            errs.append(invalid_value(f"{path}[{i}]", name, "name is neither a standard "
                                                            "finalizer name nor is it fully "
                                                            "qualified"))
    return errs


def _meta_common(meta: dict, namespaced: bool, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    namespace = _s(meta.get("namespace"))
    if namespaced:
        if not namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs += _names(f"{path}.namespace", namespace, name_is_dns_label(namespace))
    elif namespace:
        errs.append(forbidden_field(f"{path}.namespace", "not allowed on this type"))
    errs += _nonneg(f"{path}.generation", meta.get("generation"))
    errs += validate_labels(meta.get("labels"), f"{path}.labels")
    errs += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    errs += validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences")
    errs += validate_finalizers(meta.get("finalizers"), f"{path}.finalizers")
    return errs


def object_meta(meta: Any, *, namespaced: bool, name_fn: NameFn = name_is_dns_subdomain,
                path: str = "metadata") -> list[FieldError]:
    """ValidateObjectMeta: name / generateName, namespace, labels, annotations, owners, finalizers."""
    meta = _map(meta)
    errs: list[FieldError] = []
    generate_name, name = _s(meta.get("generateName")), _s(meta.get("name"))
    if generate_name:
        errs += _names(f"{path}.generateName", generate_name, name_fn(generate_name, True))
    if not name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs += _names(f"{path}.name", name, name_fn(name, False))
    errs += _meta_common(meta, namespaced, path)
    errs += _kube_finalizer_names(meta.get("finalizers"), f"{path}.finalizers")
    return errs


def _immutable(path: str, new: Any, old: Any) -> list[FieldError]:
    return [] if new == old else [invalid_value(path, new, FIELD_IMMUTABLE)]


def _go_string_slice(values: list[str]) -> str:
    """fmt %#v of a []string."""
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def object_meta_update(new: Any, old: Any, path: str = "metadata") -> list[FieldError]:
    """ValidateObjectMetaUpdate. The caller must fill resourceVersion for unconditional updates."""
    new, old = _map(new), _map(old)
    errs: list[FieldError] = []
    if old.get("deletionTimestamp"):
        extra = sorted(set(_list(new.get("finalizers"))) - set(_list(old.get("finalizers"))))
        if extra:
            errs.append(forbidden_field(
                f"{path}.finalizers", "no new finalizers can be added if the object is being "
                                      f"deleted, found new finalizers {_go_string_slice(extra)}"))
    if not _s(new.get("resourceVersion")):
        errs.append(invalid_value(f"{path}.resourceVersion", _s(new.get("resourceVersion")),
                                  "must be specified for an update"))
    if _int(new.get("generation")) < _int(old.get("generation")):
        errs.append(invalid_value(f"{path}.generation", _int(new.get("generation")),
                                  "must not be decremented"))
    for key, default in (("name", ""), ("namespace", ""), ("uid", ""),
                         ("creationTimestamp", None), ("deletionTimestamp", None),
                         ("deletionGracePeriodSeconds", None)):
        errs += _immutable(f"{path}.{key}", new.get(key, default), old.get(key, default))
    errs += validate_labels(new.get("labels"), f"{path}.labels")
    errs += validate_annotations(new.get("annotations"), f"{path}.annotations")
    errs += validate_owner_references(new.get("ownerReferences"), f"{path}.ownerReferences")
    errs += validate_finalizers(new.get("finalizers"), f"{path}.finalizers")
    errs += _kube_finalizer_names(new.get("finalizers"), f"{path}.finalizers")
    return errs


# ==== resources and quantities ================================================================

STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
STANDARD_RESOURCES = (
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "storage", "requests.storage", "services.nodeports",
    "services.loadbalancers")
STANDARD_QUOTA_RESOURCES = (
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets",
    "persistentvolumeclaims", "configmaps", "services.nodeports", "services.loadbalancers")
INTEGER_RESOURCES = ("pods", "services", "replicationcontrollers", "resourcequotas", "secrets",
                     "configmaps", "persistentvolumeclaims", "services.nodeports",
                     "services.loadbalancers")


def is_huge_page(name: str) -> bool:
    return name.startswith("hugepages-")


def _is_quota_huge_page(name: str) -> bool:
    return name.startswith("hugepages-") or name.startswith("requests.hugepages-")


def is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_extended_resource(name: str) -> bool:
    if is_native_resource(name) or name.startswith("requests."):
        return False
    return not is_qualified_name("requests." + name)


def is_overcommit_allowed(name: str) -> bool:
    return is_native_resource(name) and not is_huge_page(name)


def is_integer_resource(name: str) -> bool:
    return name in INTEGER_RESOURCES or is_extended_resource(name)


def _resource_name(name: str, path: str) -> list[FieldError]:
    errs = _qualified(path, name)
    if errs:
        return errs
    if "/" not in name and not (name in STANDARD_RESOURCES or _is_quota_huge_page(name)):
        return [invalid_value(path, name, "must be a standard resource type or fully qualified")]
    return []


def _container_resource_name(name: str, path: str) -> list[FieldError]:
    errs = _resource_name(name, path)
    if "/" not in name:
        if not (name in STANDARD_CONTAINER_RESOURCES or is_huge_page(name)):
            errs.append(invalid_value(path, name, "must be a standard resource for containers"))
    elif not is_native_resource(name) and not is_extended_resource(name):
        errs.append(invalid_value(path, name, "doesn't follow extended resource name standard"))
    return errs


def _quota_resource_name(name: str, path: str) -> list[FieldError]:
    errs = _resource_name(name, path)
    if "/" not in name and not (name in STANDARD_QUOTA_RESOURCES or _is_quota_huge_page(name)):
        errs.append(invalid_value(path, name, "must be a standard resource for quota"))
    return errs


def _quantity(value: Any, path: str) -> tuple[quantity.Quantity | None, list[FieldError]]:
    """Parse a quantity field; a bad one is reported as Invalid with the decoder's message."""
    try:
        return quantity.parse(value), []
    except quantity.QuantityError as e:
        return None, [invalid_value(path, value, str(e))]


def resource_quantity_value(name: str, value: Any, path: str) -> list[FieldError]:
    """ValidateResourceQuantityValue: non-negative; integral for countable resources."""
    q, errs = _quantity(value, path)
    if q is None:
        return errs
    if q.value < 0:
        errs.append(invalid_value(path, q.text, IS_NEGATIVE))
    if is_integer_resource(name) and quantity.milli_value(q.value) % 1000 != 0:
        errs.append(invalid_value(path, q.text, "must be an integer"))
    return errs


def resource_requirements(res: Any, path: str, name_fn=_container_resource_name) -> list[FieldError]:
    """validateResourceRequirements for a container's resources."""
    res = _map(res)
    errs: list[FieldError] = []
    limits, requests = _map(res.get("limits")), _map(res.get("requests"))
    lim_cpu_mem = req_cpu_mem = lim_huge = req_huge = False
    for name, value in limits.items():
        fld = f"{path}.limits[{name}]"
        errs += name_fn(name, fld)
        errs += resource_quantity_value(name, value, fld)
        lim_huge = lim_huge or is_huge_page(name)
        lim_cpu_mem = lim_cpu_mem or name in ("cpu", "memory")
    for name, value in requests.items():
        fld = f"{path}.requests[{name}]"
        errs += name_fn(name, fld)
        errs += resource_quantity_value(name, value, fld)
        errs += _request_vs_limit(name, value, limits, path)
        req_huge = req_huge or is_huge_page(name)
        req_cpu_mem = req_cpu_mem or name in ("cpu", "memory")
    if not lim_cpu_mem and not req_cpu_mem and (lim_huge or req_huge):
        errs.append(forbidden_field(path, "HugePages require cpu or memory"))
    return errs


def _request_vs_limit(name: str, value: Any, limits: dict, path: str) -> list[FieldError]:
    req = quantity.parse(value) if quantity.is_quantity(value) else None
    if req is None:
        return []
    if name not in limits:
        if not is_overcommit_allowed(name):
            return [required(f"{path}.limits", "Limit must be set for non overcommitable resources")]
        return []
    if not quantity.is_quantity(limits[name]):
        return []
    lim = quantity.parse(limits[name])
    if req.value != lim.value and not is_overcommit_allowed(name):
        return [invalid_value(f"{path}.requests", req.text,
                              f"must be equal to {name} limit of {lim.text}")]
    if req.value > lim.value:
        return [invalid_value(f"{path}.requests", req.text,
                              f"must be less than or equal to {name} limit of {lim.text}")]
    return []


# ==== volumes =================================================================================

# validateVolumeSource's order and the (sometimes quirky) paths it reports "more than 1" at.
_VOLUME_SOURCE_PATHS = (
    ("emptyDir", "emptyDir"), ("hostPath", "hostPath"), ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"), ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"), ("nfs", "nfs"), ("iscsi", "iscsi"), ("glusterfs", "glusterfs"),
    ("flocker", "flocker"), ("persistentVolumeClaim", "persistentVolumeClaim"), ("rbd", "rbd"),
    ("cinder", "cinder"), ("cephfs", "cephFS"), ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"), ("fc", "fc"), ("flexVolume", "flexVolume"),
    ("configMap", "configMap"), ("azureFile", "azureFile"), ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"), ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"), ("storageos", "storageos"), ("projected", "projected"),
    ("scaleIO", "scaleIO"), ("csi", "csi"), ("ephemeral", "ephemeral"), ("image", "image"),
)
HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                   "FileOrCreate", "Socket")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def _no_backsteps(path: str, target: str) -> list[FieldError]:
    if ".." in target.replace("\\", "/").split("/"):
        return [invalid_value(path, target, "must not contain '..'")]
    return []


def _local_descending_path(path: str, target: str) -> list[FieldError]:
    errs = []
    if target.startswith("/"):
        errs.append(invalid_value(path, target, "must be a relative path"))
    return errs + _no_backsteps(path, target)


def _local_non_reserved_path(path: str, target: str) -> list[FieldError]:
    errs = _local_descending_path(path, target)
    if target.startswith("..") and not target.startswith("../"):
        errs.append(invalid_value(path, target, "must not start with '..'"))
    return errs


def _file_mode(path: str, mode: Any) -> list[FieldError]:
    if isinstance(mode, int) and not 0 <= mode <= 0o777:
        return [invalid_value(path, mode, FILE_MODE_MSG)]
    return []


def _key_to_path(item: dict, path: str) -> list[FieldError]:
    errs = []
    if not _s(item.get("key")):
        errs.append(required(f"{path}.key"))
    if not _s(item.get("path")):
        errs.append(required(f"{path}.path"))
    errs += _local_non_reserved_path(f"{path}.path", _s(item.get("path")))
    return errs + _file_mode(f"{path}.mode", item.get("mode"))


def _keyed_source(src: dict, path: str, name_key: str) -> list[FieldError]:
    """secret / configMap volume sources."""
    errs = [] if _s(src.get(name_key)) else [required(f"{path}.{name_key}")]
    errs += _file_mode(f"{path}.defaultMode", src.get("defaultMode"))
    for i, item in enumerate(_list(src.get("items"))):
        errs += _key_to_path(_map(item), f"{path}.items[{i}]")
    return errs


_VOLUME_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.labels",
                       "metadata.annotations", "metadata.uid")


def _downward_file(item: dict, path: str) -> list[FieldError]:
    errs = [] if _s(item.get("path")) else [required(f"{path}.path")]
    errs += _local_non_reserved_path(f"{path}.path", _s(item.get("path")))
    if isinstance(item.get("fieldRef"), dict):
        errs += _object_field_selector(item["fieldRef"], _VOLUME_FIELD_PATHS, f"{path}.fieldRef")
        if item.get("resourceFieldRef") is not None:
            errs.append(invalid_value(path, "resource", "fieldRef and resourceFieldRef can not be "
                                                        "specified simultaneously"))
    elif isinstance(item.get("resourceFieldRef"), dict):
        if not _s(item["resourceFieldRef"].get("containerName")):
            errs.append(required(f"{path}.resourceFieldRef.containerName"))
    else:
        errs.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    return errs + _file_mode(f"{path}.mode", item.get("mode"))


def _projected(src: dict, path: str) -> list[FieldError]:
    errs = _file_mode(f"{path}.defaultMode", src.get("defaultMode"))
    seen: set[str] = set()
    for i, source in enumerate(_list(src.get("sources"))):
        source, spath = _map(source), f"{path}.sources[{i}]"
        count = 0
        for kind, name_key in (("secret", "name"), ("configMap", "name")):
            if isinstance(source.get(kind), dict):
                count += 1
                sub = source[kind]
                if not _s(sub.get(name_key)):
                    errs.append(required(f"{spath}.{kind}.name"))
                for j, item in enumerate(_list(sub.get("items"))):
                    errs += _key_to_path(_map(item), f"{spath}.{kind}.items[{j}]")
                    p = _s(_map(item).get("path"))
                    if p and p in seen:
                        errs.append(invalid_value(path, _s(sub.get("name")),
                                                  "conflicting duplicate paths"))
                    seen.add(p)
        if isinstance(source.get("downwardAPI"), dict):
            count += 1
            for item in _list(source["downwardAPI"].get("items")):
                errs += _downward_file(_map(item), f"{spath}.downwardAPI")
                p = _s(_map(item).get("path"))
                if p and p in seen:
                    errs.append(invalid_value(path, p, "conflicting duplicate paths"))
                seen.add(p)
        if isinstance(source.get("serviceAccountToken"), dict):
            count += 1
            errs += _token_projection(source["serviceAccountToken"], spath, path)
        if isinstance(source.get("clusterTrustBundle"), dict):
            count += 1
        if count > 1:
            errs.append(forbidden_field(spath, "may not specify more than 1 volume type per source"))
    return errs


def _token_projection(token: dict, spath: str, path: str) -> list[FieldError]:
    errs = []
    seconds = _int(token.get("expirationSeconds"))
    tpath = f"{spath}.serviceAccountToken.expirationSeconds"
    if seconds < 600:
        errs.append(invalid_value(tpath, seconds, "may not specify a duration less than 10 minutes"))
    if seconds > 1 << 32:
        errs.append(invalid_value(tpath, seconds, "may not specify a duration larger than 2^32 "
                                                  "seconds"))
    if not _s(token.get("path")):
        errs.append(required(f"{path}.path"))
    else:
        errs += _local_non_reserved_path(f"{path}.path", _s(token.get("path")))
    return errs


def _source_errors(key: str, src: Any, path: str, is_pod: bool) -> list[FieldError]:
    src = _map(src)
    if key == "emptyDir":
        limit = src.get("sizeLimit")
        if limit is not None and quantity.is_quantity(limit) and quantity.parse_quantity(limit) < 0:
            return [forbidden_field(f"{path}.sizeLimit", "SizeLimit field must be a valid resource "
                                                         "quantity")]
        return []
    if key == "hostPath":
        if not _s(src.get("path")):
            return [required(f"{path}.path")]
        errs = _no_backsteps(f"{path}.path", src["path"])
        if src.get("type") is not None and src.get("type") not in HOST_PATH_TYPES:
            errs.append(unsupported(f"{path}.type", src.get("type"), list(HOST_PATH_TYPES)))
        return errs
    if key == "secret":
        return _keyed_source(src, path, "secretName")
    if key == "configMap":
        return _keyed_source(src, path, "name")
    if key == "persistentVolumeClaim":
        return [] if _s(src.get("claimName")) else [required(f"{path}.claimName")]
    if key == "nfs":
        errs = [required(f"{path}.{k}") for k in ("server", "path") if not _s(src.get(k))]
        if not _s(src.get("path")).startswith("/"):
            errs.append(invalid_value(f"{path}.path", _s(src.get("path")), "must be an absolute path"))
        return errs
    if key == "downwardAPI":
        errs = _file_mode(f"{path}.defaultMode", src.get("defaultMode"))
        for item in _list(src.get("items")):
            errs += _downward_file(_map(item), path)
        return errs
    if key == "projected":
        return _projected(src, path)
    if key == "ephemeral":
        return [] if src.get("volumeClaimTemplate") else [required(f"{path}.volumeClaimTemplate")]
    if key == "image":
        errs = [required(f"{path}.reference")] if is_pod and not _s(src.get("reference")) else []
        return errs + _pull_policy(_s(src.get("pullPolicy")), f"{path}.pullPolicy")
    return []


def _volume_source(vol: dict, path: str, is_pod: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    count = 0
    for key, err_key in _VOLUME_SOURCE_PATHS:
        if vol.get(key) is None:
            continue
        if count > 0:
            errs.append(forbidden_field(f"{path}.{err_key}", "may not specify more than 1 volume type"))
            continue
        count += 1
        errs += _source_errors(key, vol[key], f"{path}.{key}", is_pod)
    if count == 0:
        errs.append(required(path, "must specify a volume type"))
    return errs


def validate_volumes(volumes: Any, path: str, is_pod: bool = True) -> tuple[dict, list[FieldError]]:
    """ValidateVolumes: (valid volumes by name, errors). Names are DNS labels and unique."""
    errs: list[FieldError] = []
    valid: dict[str, dict] = {}
    seen: set[str] = set()
    for i, vol in enumerate(_list(volumes)):
        vol, vpath = _map(vol), f"{path}[{i}]"
        name = _s(vol.get("name"))
        el = _volume_source(vol, vpath, is_pod)
        el += [required(f"{vpath}.name")] if not name else _label(f"{vpath}.name", name)
        if name in seen:
            el.append(duplicate(f"{vpath}.name", name))
        if el:
            errs += el
        else:
            seen.add(name)
            valid[name] = vol
    return valid, errs


# ==== containers ==============================================================================

PORT_PROTOCOLS = ("SCTP", "TCP", "UDP")
_ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                    "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                    "status.podIPs")
_DOWNWARD_CONVERTIBLE = ("metadata.annotations", "metadata.labels", "metadata.name",
                         "metadata.namespace", "metadata.uid", "spec.nodeName",
                         "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName",
                         "status.phase", "status.hostIP", "status.hostIPs", "status.podIP",
                         "status.podIPs")
_SUBSCRIPTED = re.compile(r"^(metadata\.(?:annotations|labels))\['(.*)'\]$", re.S)


def _pull_policy(policy: str, path: str) -> list[FieldError]:
    if policy in PULL_POLICIES:
        return []
    if not policy:
        return [required(path)]
    return [unsupported(path, policy, list(PULL_POLICIES))]


def _object_field_selector(ref: dict, allowed: tuple, path: str) -> list[FieldError]:
    api_version, field_path = _s(ref.get("apiVersion")), _s(ref.get("fieldPath"))
    if not api_version:
        return [required(f"{path}.apiVersion")]
    if not field_path:
        return [required(f"{path}.fieldPath")]
    if api_version != "v1":
        return [invalid_value(f"{path}.fieldPath", field_path,
                              f"error converting fieldPath: unsupported pod version: {api_version}")]
    m = _SUBSCRIPTED.match(field_path)
    if m:
        key = m.group(2)
        return _qualified(path, key.lower() if m.group(1) == "metadata.annotations" else key)
    if field_path not in _DOWNWARD_CONVERTIBLE:
        return [invalid_value(f"{path}.fieldPath", field_path,
                              f"error converting fieldPath: field label not supported: {field_path}")]
    if field_path not in allowed:
        return [unsupported(f"{path}.fieldPath", field_path, sorted(allowed))]
    return []


def _key_selector(ref: dict, path: str) -> list[FieldError]:
    name = _s(ref.get("name"))
    errs = _names(f"{path}.name", name, name_is_dns_subdomain(name))
    key = _s(ref.get("key"))
    if not key:
        errs.append(required(f"{path}.key"))
    else:
        errs += _names(f"{path}.key", key, is_config_map_key(key))
    return errs


def _env_value_from(env: dict, path: str) -> list[FieldError]:
    value_from = env.get("valueFrom")
    if not isinstance(value_from, dict):
        return []
    errs: list[FieldError] = []
    count = 0
    if isinstance(value_from.get("fieldRef"), dict):
        count += 1
        errs += _object_field_selector(value_from["fieldRef"], _ENV_FIELD_PATHS, f"{path}.fieldRef")
    if isinstance(value_from.get("resourceFieldRef"), dict):
        count += 1
        if not _s(value_from["resourceFieldRef"].get("resource")):
            errs.append(required(f"{path}.resourceFieldRef.resource"))
    for key in ("configMapKeyRef", "secretKeyRef"):
        if isinstance(value_from.get(key), dict):
            count += 1
            errs += _key_selector(value_from[key], f"{path}.{key}")
    if count == 0:
        errs.append(invalid_value(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                            "`configMapKeyRef` or `secretKeyRef`"))
    elif _s(env.get("value")):
        errs.append(invalid_value(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errs.append(invalid_value(path, "", "may not have more than one field specified at a time"))
    return errs


def validate_env(env: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(_list(env)):
        var, ipath = _map(var), f"{path}[{i}]"
        name = _s(var.get("name"))
        if not name:
            errs.append(required(f"{ipath}.name"))
        else:
            errs += _names(f"{ipath}.name", name, is_env_var_name(name))
        errs += _env_value_from(var, f"{ipath}.valueFrom")
    return errs


def _env_from(sources: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, src in enumerate(_list(sources)):
        src, ipath = _map(src), f"{path}[{i}]"
        prefix = _s(src.get("prefix"))
        if prefix:
            errs += _names(f"{ipath}.prefix", prefix, is_env_var_name(prefix))
        count = 0
        for key in ("configMapRef", "secretRef"):
            if isinstance(src.get(key), dict):
                count += 1
                name = _s(src[key].get("name"))
                if not name:
                    errs.append(required(f"{ipath}.{key}.name"))
                else:
                    errs += _names(f"{ipath}.{key}.name", name, name_is_dns_subdomain(name, True))
        if count == 0:
            errs.append(invalid_value(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            errs.append(invalid_value(path, "", "may not have more than one field specified at a time"))
    return errs


def _container_ports(ports: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(_list(ports)):
        port, ipath = _map(port), f"{path}[{i}]"
        name = _s(port.get("name"))
        if name:
            msgs = is_valid_port_name(name)
            if msgs:
                errs += _names(f"{ipath}.name", name, msgs)
            elif name in names:
                errs.append(duplicate(f"{ipath}.name", name))
            else:
                names.add(name)
        cport = port.get("containerPort")
        if not cport:
            errs.append(required(f"{ipath}.containerPort"))
        else:
            errs += [invalid_value(f"{ipath}.containerPort", cport, m) for m in is_valid_port_num(cport)]
        hport = port.get("hostPort")
        if hport:
            errs += [invalid_value(f"{ipath}.hostPort", hport, m) for m in is_valid_port_num(hport)]
        errs += _protocol(port.get("protocol"), f"{ipath}.protocol")
    return errs


def _protocol(proto: Any, path: str) -> list[FieldError]:
    if not proto:
        return [required(path)]
    if proto not in PORT_PROTOCOLS:
        return [unsupported(path, proto, list(PORT_PROTOCOLS))]
    return []


def _volume_mounts(mounts: Any, volumes: dict, container: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    mount_points: set[str] = set()
    for i, mount in enumerate(_list(mounts)):
        mount, ipath = _map(mount), f"{path}[{i}]"
        name, mount_path = _s(mount.get("name")), _s(mount.get("mountPath"))
        if not name:
            errs.append(required(f"{ipath}.name"))
        if name not in volumes:
            errs.append(not_found_field(f"{ipath}.name", name))
        if not mount_path:
            errs.append(required(f"{ipath}.mountPath"))
        if mount_path in mount_points:
            errs.append(invalid_value(f"{ipath}.mountPath", mount_path, "must be unique"))
        mount_points.add(mount_path)
        if _s(mount.get("subPath")):
            errs += _local_descending_path(f"{path}.subPath", mount["subPath"])
        errs += _mount_propagation(mount.get("mountPropagation"), container, f"{ipath}.mountPropagation")
    return errs


def _mount_propagation(mode: Any, container: dict, path: str) -> list[FieldError]:
    if mode is None:
        return []
    supported = ["Bidirectional", "HostToContainer", "None"]
    errs = [] if mode in supported else [unsupported(path, mode, supported)]
    privileged = _map(container.get("securityContext")).get("privileged") is True
    if mode == "Bidirectional" and not privileged:
        errs.append(forbidden_field(path, "Bidirectional mount propagation is available only to "
                                          "privileged containers"))
    return errs


def _security_context(sc: Any, path: str) -> list[FieldError]:
    if not isinstance(sc, dict):
        return []
    errs: list[FieldError] = []
    for key in ("runAsUser", "runAsGroup"):
        if sc.get(key) is not None:
            errs += [invalid_value(f"{path}.{key}", sc[key], m) for m in is_valid_user_id(sc[key])]
    proc_mount = sc.get("procMount")
    if proc_mount is not None and proc_mount not in ("Default", "Unmasked"):
        errs.append(unsupported(f"{path}.procMount", proc_mount, ["Default", "Unmasked"]))
    if sc.get("allowPrivilegeEscalation") is False and sc.get("privileged") is True:
        errs.append(invalid_value(path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                                            "`privileged` to true"))
    return errs


def _port_num_or_name(port: Any, path: str) -> list[FieldError]:
    if isinstance(port, str):
        return _names(path, port, is_valid_port_name(port))
    value = port if isinstance(port, int) and not isinstance(port, bool) else 0
    return [invalid_value(path, value, m) for m in is_valid_port_num(value)]


def _handler(handler: dict, grace: Any, path: str, kinds: tuple) -> list[FieldError]:
    """validateHandler: exactly one of the handler kinds."""
    errs: list[FieldError] = []
    count = 0
    for kind in kinds:
        action = handler.get(kind)
        if not isinstance(action, dict):
            continue
        if count > 0:
            errs.append(forbidden_field(f"{path}.{kind}", "may not specify more than 1 handler type"))
            continue
        count += 1
        errs += _action(kind, action, grace, f"{path}.{kind}")
    if count == 0:
        errs.append(required(path, "must specify a handler type"))
    return errs


def _action(kind: str, action: dict, grace: Any, path: str) -> list[FieldError]:
    if kind == "exec":
        return [] if _list(action.get("command")) else [required(f"{path}.command")]
    if kind == "httpGet":
        errs = [] if _s(action.get("path")) else [required(f"{path}.path")]
        errs += _port_num_or_name(action.get("port"), f"{path}.port")
        scheme = _s(action.get("scheme"))
        if scheme not in ("HTTP", "HTTPS"):
            errs.append(unsupported(f"{path}.scheme", scheme, ["HTTP", "HTTPS"]))
        for header in _list(action.get("httpHeaders")):
            hname = _s(_map(header).get("name"))
            errs += _names(f"{path}.httpHeaders", hname, is_http_header_name(hname))
        return errs
    if kind in ("tcpSocket", "grpc"):
        port = action.get("port")
        return _port_num_or_name(port if kind == "tcpSocket" else _int(port), f"{path}.port")
    if kind == "sleep":
        seconds = _int(action.get("seconds"))
        if isinstance(grace, int) and (seconds <= 0 or seconds > grace):
            return [invalid_value(path, seconds, "must be greater than 0 and less than "
                                                 f"terminationGracePeriodSeconds ({grace}). Enable "
                                                 "AllowPodLifecycleSleepActionZeroValue feature "
                                                 "gate for zero sleep.")]
    return []


_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")


def _probe(probe: Any, grace: Any, path: str, kind: str) -> list[FieldError]:
    if not isinstance(probe, dict):
        return []
    errs = _handler(probe, grace, path, _PROBE_HANDLERS)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        errs += _nonneg(f"{path}.{key}", probe.get(key))
    tgps = probe.get("terminationGracePeriodSeconds")
    if isinstance(tgps, int) and tgps <= 0:
        errs.append(invalid_value(f"{path}.terminationGracePeriodSeconds", tgps, "must be greater than 0"))
    if kind in ("livenessProbe", "startupProbe") and probe.get("successThreshold") != 1:
        errs.append(invalid_value(f"{path}.successThreshold", _int(probe.get("successThreshold")),
                                  "must be 1"))
    if kind == "readinessProbe" and tgps is not None:
        errs.append(invalid_value(f"{path}.terminationGracePeriodSeconds", tgps,
                                  "must not be set for readinessProbes"))
    return errs


def _lifecycle(lifecycle: Any, grace: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for hook in ("postStart", "preStop"):
        if isinstance(_map(lifecycle).get(hook), dict):
            errs += _handler(lifecycle[hook], grace, f"{path}.{hook}", _LIFECYCLE_HANDLERS)
    return errs


def _container_common(c: dict, volumes: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = _s(c.get("name"))
    errs += [required(f"{path}.name")] if not name else _label(f"{path}.name", name)
    if not _s(c.get("image")):
        errs.append(required(f"{path}.image"))
    policy = _s(c.get("terminationMessagePolicy"))
    if not policy:
        errs.append(required(f"{path}.terminationMessagePolicy"))
    elif policy not in ("File", "FallbackToLogsOnError"):
        errs.append(unsupported(f"{path}.terminationMessagePolicy", policy,
                                ["File", "FallbackToLogsOnError"]))
    errs += _container_ports(c.get("ports"), f"{path}.ports")
    errs += validate_env(c.get("env"), f"{path}.env")
    errs += _env_from(c.get("envFrom"), f"{path}.envFrom")
    errs += _volume_mounts(c.get("volumeMounts"), volumes, c, f"{path}.volumeMounts")
    errs += _pull_policy(_s(c.get("imagePullPolicy")), f"{path}.imagePullPolicy")
    errs += resource_requirements(c.get("resources"), f"{path}.resources")
    errs += _security_context(c.get("securityContext"), f"{path}.securityContext")
    return errs


def _host_port_conflicts(containers: list, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for ci, c in enumerate(containers):
        for pi, port in enumerate(_list(_map(c).get("ports"))):
            port = _map(port)
            host_port = _int(port.get("hostPort"))
            if not host_port:
                continue
            key = f"{_s(port.get('protocol'))}/{_s(port.get('hostIP'))}/{host_port}"
            if key in seen:
                errs.append(duplicate(f"{path}[{ci}].ports[{pi}].hostPort", key))
            seen.add(key)
    return errs


def _containers(containers: Any, volumes: dict, grace: Any, path: str) -> list[FieldError]:
    containers = [_map(c) for c in _list(containers)]
    if not containers:
        return [required(path)]
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, c in enumerate(containers):
        cpath = f"{path}[{i}]"
        errs += _container_common(c, volumes, cpath)
        name = _s(c.get("name"))
        if name in names:
            errs.append(duplicate(f"{cpath}.name", name))
        names.add(name)
        if c.get("lifecycle") is not None:
            errs += _lifecycle(c["lifecycle"], grace, f"{cpath}.lifecycle")
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            errs += _probe(c.get(kind), grace, f"{cpath}.{kind}", kind)
        if c.get("restartPolicy") is not None:
            errs.append(forbidden_field(f"{cpath}.restartPolicy", "may not be set for non-init containers"))
    return errs + _host_port_conflicts(containers, path)


def _init_containers(inits: Any, regular: Any, volumes: dict, grace: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names = {_s(_map(c).get("name")) for c in _list(regular)}
    for i, c in enumerate(_list(inits)):
        c, cpath = _map(c), f"{path}[{i}]"
        errs += _container_common(c, volumes, cpath)
        restart = c.get("restartPolicy")
        if restart is not None and restart != "Always":
            errs.append(unsupported(f"{cpath}.restartPolicy", restart, ["Always"]))
        name = _s(c.get("name"))
        if name in names:
            errs.append(duplicate(f"{cpath}.name", name))
        elif name:
            names.add(name)
        errs += _host_port_conflicts([c], path)
        if restart == "Always":
            if c.get("lifecycle") is not None:
                errs += _lifecycle(c["lifecycle"], grace, f"{cpath}.lifecycle")
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                errs += _probe(c.get(kind), grace, f"{cpath}.{kind}", kind)
        else:
            for kind in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(kind) is not None:
                    errs.append(forbidden_field(f"{cpath}.{kind}", "may not be set for init "
                                                                   "containers without "
                                                                   "restartPolicy=Always"))
    return errs


# ==== pod spec ================================================================================

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")


def _tolerations(tolerations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, tol in enumerate(_list(tolerations)):
        tol, ipath = _map(tol), f"{path}[{i}]"
        key, op, effect = _s(tol.get("key")), _s(tol.get("operator")), _s(tol.get("effect"))
        value = _s(tol.get("value"))
        if key:
            errs += _qualified(f"{ipath}.key", key)
        if not key and op != "Exists":
            errs.append(invalid_value(f"{ipath}.operator", op, "operator must be Exists when `key` "
                                      "is empty, which means \"match all values and all keys\""))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid_value(f"{ipath}.effect", effect, "effect must be 'NoExecute' when "
                                                                  "`tolerationSeconds` is set"))
        if op in ("Equal", ""):
            msgs = is_valid_label_value(value)
            if msgs:
                errs.append(invalid_value(f"{ipath}.operator", value, ";".join(msgs)))
        elif op == "Exists":
            if value:
                errs.append(invalid_value(f"{ipath}.operator", value, "value must be empty when "
                                                                      "`operator` is 'Exists'"))
        else:
            errs.append(unsupported(f"{ipath}.operator", op, ["Equal", "Exists"]))
        if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            errs.append(unsupported(f"{ipath}.effect", effect,
                                    ["NoSchedule", "PreferNoSchedule", "NoExecute"]))
    return errs


def _dns_config(cfg: Any, policy: str, path: str) -> list[FieldError]:
    if policy == "None":
        if not isinstance(cfg, dict):
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not _list(cfg.get("nameservers")):
            return [required(f"{path}.nameservers", "must provide at least one DNS nameserver "
                                                    "when `dnsPolicy` is None")]
    if not isinstance(cfg, dict):
        return []
    errs: list[FieldError] = []
    servers, searches = _list(cfg.get("nameservers")), _list(cfg.get("searches"))
    if len(servers) > 3:
        errs.append(invalid_value(f"{path}.nameservers", servers, "must not have more than 3 nameservers"))
    for i, ns in enumerate(servers):
        errs += validate_ip(f"{path}.nameservers[{i}]", ns)
    if len(searches) > 32:
        errs.append(invalid_value(f"{path}.searches", searches, "must not have more than 32 search paths"))
    if len(" ".join(_s(s) for s in searches)) > 2048:
        errs.append(invalid_value(f"{path}.searches", searches, "must not have more than 2048 "
                                  "characters (including spaces) in the search list"))
    for i, search in enumerate(searches):
        errs += _subdomain(f"{path}.searches[{i}]", _s(search).removesuffix("."))
    for i, option in enumerate(_list(cfg.get("options"))):
        if not _s(_map(option).get("name")):
            errs.append(required(f"{path}.options[{i}]", "must not be empty"))
    return errs


def _pod_security_context(sc: Any, path: str) -> list[FieldError]:
    if not isinstance(sc, dict):
        return []
    errs: list[FieldError] = []
    for key in ("fsGroup", "runAsUser", "runAsGroup"):
        if sc.get(key) is not None:
            errs += [invalid_value(f"{path}.{key}", sc[key], m) for m in is_valid_user_id(sc[key])]
    for i, gid in enumerate(_list(sc.get("supplementalGroups"))):
        errs += [invalid_value(f"{path}.supplementalGroups[{i}]", gid, m) for m in is_valid_user_id(gid)]
    policy = sc.get("fsGroupChangePolicy")
    if policy is not None and policy not in ("Always", "OnRootMismatch"):
        errs.append(unsupported(f"{path}.fsGroupChangePolicy", policy, ["Always", "OnRootMismatch"]))
    return errs


def _host_network_ports(spec: dict, path: str, is_pod: bool) -> list[FieldError]:
    if spec.get("hostNetwork") is not True:
        return []
    errs = []
    for i, c in enumerate(_list(spec.get("containers"))):
        for j, port in enumerate(_list(_map(c).get("ports"))):
            port = _map(port)
            hp, cp = _int(port.get("hostPort")), _int(port.get("containerPort"))
            if (is_pod or hp != 0) and hp != cp:
                errs.append(invalid_value(f"{path}.containers[{i}].ports[{j}].hostPort", hp,
                                          "must match `containerPort` when `hostNetwork` is true"))
    return errs


def _enum(path: str, value: Any, allowed: tuple) -> list[FieldError]:
    if value in allowed:
        return []
    if not value:
        return [required(path)]
    return [unsupported(path, value, list(allowed))]


def _named(path: str, value: Any, fn: NameFn) -> list[FieldError]:
    value = _s(value)
    return _names(path, value, fn(value, False)) if value else []


def pod_spec(spec: Any, path: str = "spec", *, is_pod: bool = True) -> list[FieldError]:
    """ValidatePodSpec (is_pod=False for templates: RC pods may leave hostPort 0 etc.)."""
    spec = _map(spec)
    errs: list[FieldError] = []
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is None:
        errs.append(required(f"{path}.terminationGracePeriodSeconds"))
    volumes, verrs = validate_volumes(spec.get("volumes"), f"{path}.volumes", is_pod)
    errs += verrs
    errs += _containers(spec.get("containers"), volumes, grace, f"{path}.containers")
    errs += _init_containers(spec.get("initContainers"), spec.get("containers"), volumes, grace,
                             f"{path}.initContainers")
    errs += _host_network_ports(spec, path, is_pod)
    errs += _enum(f"{path}.restartPolicy", spec.get("restartPolicy"), RESTART_POLICIES)
    errs += _enum(f"{path}.dnsPolicy", spec.get("dnsPolicy"), DNS_POLICIES)
    errs += validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    errs += _pod_security_context(spec.get("securityContext"), f"{path}.securityContext")
    errs += _dns_config(spec.get("dnsConfig"), _s(spec.get("dnsPolicy")), f"{path}.dnsConfig")
    for i, gate in enumerate(_list(spec.get("readinessGates"))):
        errs += _qualified(f"{path}.readinessGates[{i}].conditionType",
                           _s(_map(gate).get("conditionType")))
    errs += _scheduling_gates(spec.get("schedulingGates"), f"{path}.schedulingGates")
    errs += _named(f"{path}.serviceAccountName", spec.get("serviceAccountName"), name_is_dns_subdomain)
    errs += _named(f"{path}.nodeName", spec.get("nodeName"), name_is_dns_subdomain)
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= MAX_INT32:
        errs.append(invalid_value(f"{path}.activeDeadlineSeconds", deadline,
                                  inclusive_range_error(1, MAX_INT32)))
    for key in ("hostname", "subdomain"):
        if _s(spec.get(key)):
            errs += _label(f"{path}.{key}", spec[key])
    errs += _tolerations(spec.get("tolerations"), f"{path}.tolerations")
    errs += _host_aliases(spec.get("hostAliases"), f"{path}.hostAliases")
    errs += _named(f"{path}.priorityClassName", spec.get("priorityClassName"), name_is_dns_subdomain)
    if spec.get("runtimeClassName") is not None:
        name = _s(spec["runtimeClassName"])
        errs += _names(f"{path}.runtimeClassName", name, name_is_dns_subdomain(name))
    if spec.get("preemptionPolicy") is not None:
        errs += _enum(f"{path}.preemptionPolicy", spec["preemptionPolicy"],
                      ("PreemptLowerPriority", "Never"))
    if isinstance(spec.get("overhead"), dict):
        errs += resource_requirements({"limits": spec["overhead"]}, f"{path}.overhead")
    if isinstance(spec.get("os"), dict):
        os_name = _s(spec["os"].get("name"))
        if not os_name:
            errs.append(required(f"{path}.os.name", "cannot be empty"))
        elif os_name not in ("linux", "windows"):
            errs.append(unsupported(f"{path}.os", os_name, ["linux", "windows"]))
    return errs


def _scheduling_gates(gates: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, gate in enumerate(_list(gates)):
        name = _s(_map(gate).get("name"))
        errs += _qualified(f"{path}[{i}]", name)
        if name in seen:
            errs.append(duplicate(f"{path}[{i}]", name))
        seen.add(name)
    return errs


def _host_aliases(aliases: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, alias in enumerate(_list(aliases)):
        alias = _map(alias)
        errs += validate_ip(f"{path}[{i}].ip", _s(alias.get("ip")))
        for j, host in enumerate(_list(alias.get("hostnames"))):
            errs += _subdomain(f"{path}[{i}].hostnames[{j}]", _s(host))
    return errs


def pod_template_spec(template: Any, path: str) -> list[FieldError]:
    """ValidatePodTemplateSpec: labels, annotations, the spec as a template."""
    template = _map(template)
    meta = _map(template.get("metadata"))
    errs = validate_labels(meta.get("labels"), f"{path}.labels")
    errs += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    spec = _map(template.get("spec"))
    errs += pod_spec(spec, f"{path}.spec", is_pod=False)
    if _list(spec.get("ephemeralContainers")):
        errs.append(forbidden_field(f"{path}.spec.ephemeralContainers",
                                    "ephemeral containers not allowed in pod template"))
    return errs


# ==== pods ====================================================================================

def _pod_metadata_and_spec(obj: dict) -> list[FieldError]:
    meta, spec = _map(obj.get("metadata")), _map(obj.get("spec"))
    errs = object_meta(meta, namespaced=True, name_fn=name_is_dns_subdomain)
    errs += pod_spec(spec, "spec", is_pod=True)
    if not _s(spec.get("serviceAccountName")):
        for vi, vol in enumerate(_list(spec.get("volumes"))):
            sources = _list(_map(_map(vol).get("projected")).get("sources"))
            for si, source in enumerate(sources):
                if _map(source).get("serviceAccountToken") is not None:
                    errs.append(forbidden_field(
                        f"spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                        "must not be specified when serviceAccountName is not set"))
    for key in ("containers", "initContainers"):
        for i, c in enumerate(_list(spec.get(key))):
            image = _s(_map(c).get("image"))
            if image != image.strip():
                errs.append(invalid_value(f"spec.{key}[{i}].image", image,
                                          "must not have leading or trailing whitespace"))
    return errs


def pod(obj: Any) -> list[FieldError]:
    """ValidatePodCreate."""
    obj = _map(obj)
    spec = _map(obj.get("spec"))
    errs = _pod_metadata_and_spec(obj)
    if _list(spec.get("ephemeralContainers")):
        errs.append(forbidden_field("spec.ephemeralContainers", "cannot be set on create"))
    if _s(spec.get("nodeName")) and _list(spec.get("schedulingGates")):
        errs.append(forbidden_field("spec.nodeName", "cannot be set until all schedulingGates "
                                                     "have been cleared"))
    return errs


UPDATABLE_POD_SPEC_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)
POD_UPDATE_FORBIDDEN = ("pod updates may not change fields other than "
                        + ",".join(UPDATABLE_POD_SPEC_FIELDS))


def _container_updates(new: list, old: list, path: str) -> tuple[list[FieldError], bool]:
    if len(new) != len(old):
        return [forbidden_field(path, "pod updates may not add or remove containers")], True
    errs: list[FieldError] = []
    for i, c in enumerate(new):
        image = _s(_map(c).get("image"))
        if not image:
            errs.append(required(f"{path}[{i}].image"))
        if image != image.strip():
            errs.append(invalid_value(f"{path}[{i}].image", image,
                                      "must not have leading or trailing whitespace"))
    return errs, False


def _only_added_tolerations(new: list, old: list, path: str) -> list[FieldError]:
    for tol in old:
        base = {k: v for k, v in _map(tol).items() if k != "tolerationSeconds"}
        if not any(_semantic_equal(base, {k: v for k, v in _map(n).items()
                                          if k != "tolerationSeconds"}) for n in new):
            return [forbidden_field(path, "existing toleration can not be modified except its "
                                          "tolerationSeconds")]
    return _tolerations(new, path)


def _normalize(v: Any) -> Any:
    """Semantic equality: empty and missing collections/strings compare equal."""
    if isinstance(v, dict):
        out = {k: _normalize(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x not in (None, "", [], {})}
    if isinstance(v, list):
        return [_normalize(x) for x in v]
    return v


def _semantic_equal(a: Any, b: Any) -> bool:
    return _normalize(a) == _normalize(b)


def _go_name(key: str) -> str:
    special = {"hostPID": "HostPID", "hostIPC": "HostIPC", "dnsPolicy": "DNSPolicy",
               "dnsConfig": "DNSConfig", "os": "OS"}
    return special.get(key, key[:1].upper() + key[1:])


def _spec_diff(old: dict, new: dict) -> str:
    """A cmp.Diff-like rendering of the top-level PodSpec fields that differ."""
    a, b = _normalize(old), _normalize(new)
    lines = ["  core.PodSpec{"]
    for key in list(dict.fromkeys(list(a) + list(b))):
        if a.get(key) == b.get(key):
            continue
        for sign, side in (("-", a), ("+", b)):
            if key in side:
                lines.append(f"{sign} \t{_go_name(key)}: {json.dumps(side[key], sort_keys=True)},")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def pod_update(new: Any, old: Any) -> list[FieldError]:
    """ValidatePodUpdate: only images, activeDeadlineSeconds, added tolerations (and a few) change."""
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _pod_metadata_and_spec(new)
    nspec, ospec = _map(new.get("spec")), _map(old.get("spec"))
    for key in ("containers", "initContainers"):
        cerrs, stop = _container_updates(_list(nspec.get(key)), _list(ospec.get(key)), f"spec.{key}")
        errs += cerrs
        if stop:
            return errs
    nd, od = nspec.get("activeDeadlineSeconds"), ospec.get("activeDeadlineSeconds")
    if nd is not None:
        if not isinstance(nd, int) or nd < 0 or nd > MAX_INT32:
            return errs + [invalid_value("spec.activeDeadlineSeconds", nd,
                                         inclusive_range_error(0, MAX_INT32))]
        if isinstance(od, int) and od < nd:
            return errs + [invalid_value("spec.activeDeadlineSeconds", nd,
                                         "must be less than or equal to previous value")]
    elif od is not None:
        errs.append(invalid_value("spec.activeDeadlineSeconds", None,
                                  "must not update from a positive integer to nil value"))
    errs += _only_added_tolerations(_list(nspec.get("tolerations")), _list(ospec.get("tolerations")),
                                    "spec.tolerations")
    errs += _only_deleted_gates(_list(nspec.get("schedulingGates")),
                                _list(ospec.get("schedulingGates")), "spec.schedulingGates")
    if _semantic_equal(nspec, ospec):
        return errs
    munged = _munge_pod_spec(nspec, ospec)
    if not _semantic_equal(munged, ospec):
        errs.append(forbidden_field("spec", POD_UPDATE_FORBIDDEN + "\n" + _spec_diff(ospec, munged)))
    return errs


def _only_deleted_gates(new: list, old: list, path: str) -> list[FieldError]:
    old_names = {_s(_map(g).get("name")) for g in old}
    added: dict[str, int] = {}
    for i, gate in enumerate(new):
        added[_s(_map(gate).get("name"))] = i
    return [forbidden_field(f"{path}[{i}].name", f"only deletion is allowed, but found new "
                                                 f"scheduling gate '{name}'")
            for name, i in added.items() if name not in old_names]


def _munge_pod_spec(nspec: dict, ospec: dict) -> dict:
    """The new spec with every field a pod update may change put back to its old value."""
    munged = json.loads(json.dumps(nspec))
    for key in ("containers", "initContainers"):
        olds = _list(ospec.get(key))
        for i, c in enumerate(_list(munged.get(key))):
            if isinstance(c, dict) and i < len(olds):
                c["image"] = _map(olds[i]).get("image")
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        if key in ospec:
            munged[key] = ospec[key]
        else:
            munged.pop(key, None)
    old_grace, new_grace = ospec.get("terminationGracePeriodSeconds"), munged.get(
        "terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    return munged


def _state_transitions(new: list, old: list, path: str, restart: str,
                       restartable: set | None = None) -> list[FieldError]:
    if restart == "Always":
        return []
    errs = []
    for i, status in enumerate(old):
        status = _map(status)
        terminated = _map(status.get("state")).get("terminated")
        if terminated is None:
            continue
        if _int(_map(terminated).get("exitCode")) != 0 and restart == "OnFailure":
            continue
        if restartable and _s(status.get("name")) in restartable:
            continue
        for ns in new:
            ns = _map(ns)
            if ns.get("name") == status.get("name") and _map(ns.get("state")).get("terminated") is None:
                errs.append(forbidden_field(f"{path}[{i}].state",
                                            "may not be transitioned to non-terminated state"))
    return errs


def pod_status_update(new: Any, old: Any) -> list[FieldError]:
    """ValidatePodStatusUpdate: nodeName, qosClass, terminated containers stay terminated, IPs."""
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    nstatus, ostatus = _map(new.get("status")), _map(old.get("status"))
    ospec = _map(old.get("spec"))
    for i, cond in enumerate(_list(nstatus.get("conditions"))):
        ctype = _s(_map(cond).get("type"))
        if ctype not in ("PodScheduled", "Ready", "Initialized"):
            errs += _qualified(f"metadata.conditions[{i}].Type", ctype)
    if _s(_map(new.get("spec")).get("nodeName")) != _s(ospec.get("nodeName")):
        errs.append(forbidden_field("status.nodeName", "may not be changed directly"))
    nominated = _s(nstatus.get("nominatedNodeName"))
    if nominated and nominated != _s(ostatus.get("nominatedNodeName")):
        errs += _names("status.nominatedNodeName", nominated, name_is_dns_subdomain(nominated))
    errs += _immutable("status.qosClass", _s(nstatus.get("qosClass")), _s(ostatus.get("qosClass")))
    restart = _s(ospec.get("restartPolicy"))
    errs += _state_transitions(_list(nstatus.get("containerStatuses")),
                               _list(ostatus.get("containerStatuses")),
                               "status.containerStatuses", restart)
    restartable = {_s(_map(c).get("name")) for c in _list(ospec.get("initContainers"))
                   if _map(c).get("restartPolicy") == "Always"}
    errs += _state_transitions(_list(nstatus.get("initContainerStatuses")),
                               _list(ostatus.get("initContainerStatuses")),
                               "status.initContainerStatuses", restart, restartable)
    errs += _pod_ips(nstatus)
    return errs


def _pod_ips(status: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    pod_ips = _list(status.get("podIPs"))
    for i, entry in enumerate(pod_ips):
        errs += validate_ip(f"status.podIPs[{i}]", _s(_map(entry).get("ip")))
    host_ips = _list(status.get("hostIPs"))
    if host_ips:
        first = _s(_map(host_ips[0]).get("ip"))
        if _s(status.get("hostIP")) != first:
            errs.append(invalid_value("status.hostIPs[0].ip", first, "must be equal to `hostIP`"))
        for i, entry in enumerate(host_ips):
            errs += validate_ip(f"status.hostIPs[{i}]", _s(_map(entry).get("ip")))
    return errs


# ==== replication controllers =================================================================

def _selector_matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def replication_controller_spec(spec: Any, path: str = "spec") -> list[FieldError]:
    spec = _map(spec)
    errs = _nonneg(f"{path}.minReadySeconds", spec.get("minReadySeconds"))
    selector = _map(spec.get("selector"))
    if not selector:
        errs.append(required(f"{path}.selector"))
    errs += _nonneg(f"{path}.replicas", spec.get("replicas"))
    template = spec.get("template")
    tpath = f"{path}.template"
    if not isinstance(template, dict):
        return errs + [required(tpath)]
    labels = _map(template.get("metadata")).get("labels")
    if selector and not _selector_matches(selector, _map(labels)):
        errs.append(invalid_value(f"{tpath}.metadata.labels", _sorted(labels),
                                  "`selector` does not match template `labels`"))
    errs += pod_template_spec(template, tpath)
    tspec = _map(template.get("spec"))
    restart = _s(tspec.get("restartPolicy"))
    if restart != "Always":
        errs.append(unsupported(f"{tpath}.spec.restartPolicy", restart, ["Always"]))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden_field(f"{tpath}.spec.activeDeadlineSeconds",
                                    "activeDeadlineSeconds in ReplicationController is not Supported"))
    return errs


def replication_controller(obj: Any) -> list[FieldError]:
    obj = _map(obj)
    errs = object_meta(obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain)
    return errs + replication_controller_spec(obj.get("spec"))


def replication_controller_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    return errs + replication_controller_spec(new.get("spec"))


def replication_controller_status_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    status = _map(new.get("status"))
    for key in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                "observedGeneration"):
        errs += _nonneg(f"status.{key}", status.get(key))
    replicas, ready = _int(status.get("replicas")), _int(status.get("readyReplicas"))
    for key in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
        if _int(status.get(key)) > replicas:
            errs.append(invalid_value(f"status.{key}", _int(status.get(key)),
                                      "cannot be greater than status.replicas"))
    if _int(status.get("availableReplicas")) > ready:
        errs.append(invalid_value("status.availableReplicas", _int(status.get("availableReplicas")),
                                  "cannot be greater than readyReplicas"))
    return errs


# ==== services and endpoints ==================================================================

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _is_headless(spec: dict) -> bool:
    return _list(spec.get("clusterIPs")) == ["None"]


def _go_service_port(port: dict) -> dict:
    """core.ServicePort as Go's json.Marshal prints the internal (tag-less) struct."""
    return {"Name": "", "Protocol": _s(port.get("protocol")), "AppProtocol": None,
            "Port": _int(port.get("port")), "TargetPort": 0, "NodePort": 0}


def _service_port(port: dict, require_name: bool, names: set, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = _s(port.get("name"))
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += _label(f"{path}.name", name)
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
    errs += [invalid_value(f"{path}.port", _int(port.get("port")), m)
             for m in is_valid_port_num(port.get("port"))]
    errs += _protocol(port.get("protocol"), f"{path}.protocol")
    errs += _port_num_or_name(port.get("targetPort"), f"{path}.targetPort")
    if port.get("appProtocol") is not None:
        errs += _qualified(f"{path}.appProtocol", _s(port["appProtocol"]))
    return errs


def _service_type_rules(spec: dict) -> list[FieldError]:
    kind = spec.get("type")
    ips = _list(spec.get("clusterIPs"))
    if kind in ("LoadBalancer", "NodePort") and _is_headless(spec):
        return [invalid_value("spec.clusterIPs[0]", ips[0],
                              f"may not be set to 'None' for {kind} services")]
    if kind != "ExternalName":
        return []
    errs = []
    for key in ("clusterIPs", "ipFamilies"):
        if _list(spec.get(key)):
            errs.append(forbidden_field(f"spec.{key}", "may not be set for ExternalName services"))
    if spec.get("ipFamilyPolicy") is not None:
        errs.append(forbidden_field("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
    cname = _s(spec.get("externalName")).removesuffix(".")
    errs += _subdomain("spec.externalName", cname) if cname else [required("spec.externalName")]
    return errs


def _session_affinity(spec: dict) -> list[FieldError]:
    affinity = spec.get("sessionAffinity")
    errs = _enum("spec.sessionAffinity", affinity, ("ClientIP", "None"))
    cfg_path = "spec.sessionAffinityConfig"
    if affinity == "ClientIP":
        cfg = spec.get("sessionAffinityConfig")
        detail = "when session affinity type is ClientIP"
        if not isinstance(cfg, dict):
            return errs + [required(cfg_path, detail)]
        if not isinstance(cfg.get("clientIP"), dict):
            return errs + [required(f"{cfg_path}.clientIP", detail)]
        timeout = cfg["clientIP"].get("timeoutSeconds")
        if timeout is None:
            return errs + [required(f"{cfg_path}.clientIP.timeoutSeconds", detail)]
        if not isinstance(timeout, int) or timeout <= 0 or timeout > 86400:
            errs.append(invalid_value(f"{cfg_path}.clientIP.timeoutSeconds", timeout,
                                      "must be greater than 0 and less than 86400"))
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        errs.append(forbidden_field(cfg_path, "must not be set when session affinity is None"))
    return errs


def _cluster_ips(spec: dict) -> list[FieldError]:
    """ValidateServiceClusterIPsRelatedFields (single-stack subset, plus families/policy enums)."""
    if spec.get("type") == "ExternalName":
        return []
    errs: list[FieldError] = []
    cluster_ip, ips = _s(spec.get("clusterIP")), _list(spec.get("clusterIPs"))
    if cluster_ip:
        if not ips:
            errs.append(required("spec.clusterIPs"))
        elif ips[0] != cluster_ip:
            errs.append(invalid_value("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    elif ips:
        errs.append(invalid_value("spec.clusterIPs", ips, "must be empty when `clusterIP` is not "
                                                          "specified"))
    seen: set = set()
    for i, family in enumerate(_list(spec.get("ipFamilies"))):
        if family not in ("IPv4", "IPv6"):
            errs.append(unsupported(f"spec.ipFamilies[{i}]", family, ["IPv4", "IPv6"]))
        if family in seen:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in ("PreferDualStack", "RequireDualStack", "SingleStack"):
        errs.append(unsupported("spec.ipFamilyPolicy", policy,
                                ["PreferDualStack", "RequireDualStack", "SingleStack"]))
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                errs.append(invalid_value("spec.clusterIPs", ips, "'None' must be the first and "
                                                                  "only value"))
            continue
        errs += validate_ip(f"spec.clusterIPs[{i}]", ip)
    if len(ips) > 2:
        errs.append(invalid_value("spec.clusterIPs", ips, "may only hold up to 2 values"))
    return errs


def _non_special_ip(path: str, value: str) -> list[FieldError]:
    ip = parse_ip_sloppy(value)
    if ip is None:
        return [invalid_value(path, value, "must be a valid IP address")]
    errs = []
    if ip.is_unspecified:
        errs.append(invalid_value(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        errs.append(invalid_value(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local and not ip.is_multicast:
        errs.append(invalid_value(path, value, "may not be in the link-local range "
                                               "(169.254.0.0/16, fe80::/10)"))
    link_local_multicast = "224.0.0.0/24" if ip.version == 4 else "ff02::/16"
    if ip in ipaddress.ip_network(link_local_multicast):
        errs.append(invalid_value(path, value, "may not be in the link-local multicast range "
                                               "(224.0.0.0/24, ff02::/10)"))
    return errs


def _service_ports_all(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    ports = [_map(p) for p in _list(spec.get("ports"))]
    names: set[str] = set()
    for i, port in enumerate(ports):
        errs += _service_port(port, len(ports) > 1, names, f"spec.ports[{i}]")
    return errs


def _service_port_uniqueness(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    ports = [_map(p) for p in _list(spec.get("ports"))]
    if spec.get("type") == "ClusterIP":
        for i, port in enumerate(ports):
            if _int(port.get("nodePort")):
                errs.append(forbidden_field(f"spec.ports[{i}].nodePort",
                                            "may not be used when `type` is 'ClusterIP'"))
    node_ports: set = set()
    for i, port in enumerate(ports):
        node_port = _int(port.get("nodePort"))
        if not node_port:
            continue
        key = (_s(port.get("protocol")), node_port)
        if key in node_ports:
            errs.append(duplicate(f"spec.ports[{i}].nodePort", node_port))
        node_ports.add(key)
    seen: set = set()
    for i, port in enumerate(ports):
        key = (_s(port.get("protocol")), _int(port.get("port")))
        if key in seen:
            errs.append(duplicate(f"spec.ports[{i}]", _go_service_port(port)))
        seen.add(key)
    return errs


def _service_lb_fields(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    is_lb = spec.get("type") == "LoadBalancer"
    ranges = _list(spec.get("loadBalancerSourceRanges"))
    if ranges:
        if not is_lb:
            errs.append(forbidden_field("spec.LoadBalancerSourceRanges",
                                        "may only be used when `type` is 'LoadBalancer'"))
        for i, value in enumerate(ranges):
            errs += validate_cidr(f"spec.LoadBalancerSourceRanges[{i}]", _s(value).strip())
    if spec.get("allocateLoadBalancerNodePorts") is not None and not is_lb:
        errs.append(forbidden_field("spec.allocateLoadBalancerNodePorts",
                                    "may only be used when `type` is 'LoadBalancer'"))
    if is_lb and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(required("allocateLoadBalancerNodePorts"))
    lb_class = spec.get("loadBalancerClass")
    if lb_class is not None:
        if is_lb:
            errs += _qualified("spec.loadBalancerClass", _s(lb_class))
        else:
            errs.append(forbidden_field("spec.loadBalancerClass",
                                        "may only be used when `type` is 'LoadBalancer'"))
    return errs


def _traffic_policies(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    external = _s(spec.get("externalTrafficPolicy"))
    accessible = spec.get("type") in ("LoadBalancer", "NodePort") or (
        spec.get("type") == "ClusterIP" and bool(_list(spec.get("externalIPs"))))
    if not accessible:
        if external:
            errs.append(invalid_value("spec.externalTrafficPolicy", external,
                                      "may only be set for externally-accessible services"))
    elif not external:
        errs.append(required("spec.externalTrafficPolicy"))
    elif external not in ("Cluster", "Local"):
        errs.append(unsupported("spec.externalTrafficPolicy", external, ["Cluster", "Local"]))
    health = _int(spec.get("healthCheckNodePort"))
    if not (spec.get("type") == "LoadBalancer" and external == "Local"):
        if health:
            errs.append(invalid_value("spec.healthCheckNodePort", health,
                                      "may only be set when `type` is 'LoadBalancer' and "
                                      "`externalTrafficPolicy` is 'Local'"))
    elif not health:
        errs.append(required("spec.healthCheckNodePort"))
    else:
        errs += [invalid_value("spec.healthCheckNodePort", health, m) for m in is_valid_port_num(health)]
    internal = spec.get("internalTrafficPolicy")
    if internal is None:
        if spec.get("type") in ("NodePort", "LoadBalancer", "ClusterIP"):
            errs.append(required("spec.internalTrafficPolicy"))
    elif internal not in ("Cluster", "Local"):
        errs.append(unsupported("spec.internalTrafficPolicy", internal, ["Cluster", "Local"]))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        errs.append(unsupported("spec.trafficDistribution", distribution, ["PreferClose"]))
    return errs


def service(obj: Any) -> list[FieldError]:
    """ValidateService (after defaulting and after clusterIP allocation or clusterIPs sync)."""
    obj = _map(obj)
    errs = object_meta(obj.get("metadata"), namespaced=True, name_fn=name_is_dns1035_label)
    spec = _map(obj.get("spec"))
    if not _list(spec.get("ports")) and not _is_headless(spec) and spec.get("type") != "ExternalName":
        errs.append(required("spec.ports"))
    errs += _service_type_rules(spec)
    errs += _service_ports_all(spec)
    if spec.get("selector") is not None:
        errs += validate_labels(spec.get("selector"), "spec.selector")
    errs += _session_affinity(spec)
    errs += _cluster_ips(spec)
    for i, ip in enumerate(_list(spec.get("externalIPs"))):
        ip_errs = validate_ip(f"spec.externalIPs[{i}]", ip)
        errs += ip_errs or _non_special_ip(f"spec.externalIPs[{i}]", ip)
    errs += _enum("spec.type", spec.get("type"), SERVICE_TYPES)
    errs += _service_port_uniqueness(spec)
    errs += _service_lb_fields(spec)
    return errs + _traffic_policies(spec)


def _cluster_ip_changes(nspec: dict, ospec: dict) -> list[FieldError]:
    """validateUpgradeDowngradeClusterIPs: allocated IPs never change (except via ExternalName)."""
    if "ExternalName" in (nspec.get("type"), ospec.get("type")):
        return []
    if _is_headless(nspec) and _is_headless(ospec):
        return []
    new, old = _list(nspec.get("clusterIPs")), _list(ospec.get("clusterIPs"))
    path = "spec.clusterIPs[0]"
    if len(new) == len(old):
        return [invalid_value(f"spec.clusterIPs[{i}]", new, "may not change once set")
                for i, ip in enumerate(old) if ip != new[i]]
    if len(old) > len(new):
        errs = []
        if not new:
            errs.append(invalid_value(path, new, "primary clusterIP can not be unset"))
        elif old[0] != new[0]:
            errs.append(invalid_value(path, new, "may not change once set"))
        if len(new) == 1 and nspec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid_value("spec.ipFamilyPolicy", nspec.get("ipFamilyPolicy"),
                                      "must be set to 'SingleStack' when releasing the secondary "
                                      "clusterIP"))
        return errs
    if old and new[0] != old[0]:
        return [invalid_value(path, new, "may not change once set")]
    return []


def service_update(new: Any, old: Any) -> list[FieldError]:
    """ValidateServiceUpdate: clusterIPs/ipFamilies/loadBalancerClass/healthCheckNodePort kept."""
    new, old = _map(new), _map(old)
    nspec, ospec = _map(new.get("spec")), _map(old.get("spec"))
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _cluster_ip_changes(nspec, ospec)
    if "ExternalName" not in (nspec.get("type"), ospec.get("type")) and \
            _is_headless(nspec) == _is_headless(ospec) and not _is_headless(nspec):
        nf, of = _list(nspec.get("ipFamilies")), _list(ospec.get("ipFamilies"))
        if len(nf) == len(of) and nf != of:
            errs.append(invalid_value("spec.ipFamilies[0]", nf, "may not change once set"))
    if nspec.get("type") == "LoadBalancer" == ospec.get("type") and \
            nspec.get("loadBalancerClass") != ospec.get("loadBalancerClass"):
        errs.append(invalid_value("spec.loadBalancerClass", nspec.get("loadBalancerClass"),
                                  "may not change once set"))

    def needs_health(s: dict) -> bool:
        return s.get("type") == "LoadBalancer" and s.get("externalTrafficPolicy") == "Local"
    if needs_health(nspec) and needs_health(ospec) and \
            nspec.get("healthCheckNodePort") != ospec.get("healthCheckNodePort"):
        errs.append(forbidden_field("spec.healthCheckNodePort", FIELD_IMMUTABLE))
    return errs + service(new)


def service_status_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    ingress = _list(_map(_map(new.get("status")).get("loadBalancer")).get("ingress"))
    if ingress and _map(new.get("spec")).get("type") != "LoadBalancer":
        return errs + [forbidden_field("status.loadBalancer.ingress",
                                       "may only be used when `spec.type` is 'LoadBalancer'")]
    for i, ing in enumerate(ingress):
        ing, ipath = _map(ing), f"status.loadBalancer.ingress[{i}]"
        if _s(ing.get("ip")):
            errs += validate_ip(f"{ipath}.ip", ing["ip"])
        if ing.get("ipMode") is None and _s(ing.get("ip")):
            errs.append(required(f"{ipath}.ipMode", "must be specified when `ip` is set"))
        elif ing.get("ipMode") is not None and not _s(ing.get("ip")):
            errs.append(forbidden_field(f"{ipath}.ipMode", "may not be specified when `ip` is not set"))
        elif ing.get("ipMode") is not None and ing["ipMode"] not in ("Proxy", "VIP"):
            errs.append(unsupported(f"{ipath}.ipMode", ing["ipMode"], ["Proxy", "VIP"]))
        if _s(ing.get("hostname")):
            errs += _subdomain(f"{ipath}.hostname", ing["hostname"])
    return errs


def endpoints(obj: Any) -> list[FieldError]:
    obj = _map(obj)
    errs = object_meta(obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain)
    for i, subset in enumerate(_list(obj.get("subsets"))):
        subset, spath = _map(subset), f"subsets[{i}]"
        if not _list(subset.get("addresses")) and not _list(subset.get("notReadyAddresses")):
            errs.append(required(spath, "must specify `addresses` or `notReadyAddresses`"))
        for key in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(_list(subset.get(key))):
                errs += _endpoint_address(_map(addr), f"{spath}.{key}[{j}]")
        ports = _list(subset.get("ports"))
        for j, port in enumerate(ports):
            errs += _endpoint_port(_map(port), len(ports) > 1, f"{spath}.ports[{j}]")
    return errs


def endpoints_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    return object_meta_update(new.get("metadata"), old.get("metadata")) + endpoints(new)


def _endpoint_address(addr: dict, path: str) -> list[FieldError]:
    ip = _s(addr.get("ip"))
    errs = validate_ip(f"{path}.ip", ip)
    if _s(addr.get("hostname")):
        errs += _label(f"{path}.hostname", addr["hostname"])
    if addr.get("nodeName") is not None:
        node_name = _s(addr["nodeName"])
        errs += _names(f"{path}.nodeName", node_name, name_is_dns_subdomain(node_name))
    return errs + _non_special_ip(f"{path}.ip", ip)


def _endpoint_port(port: dict, require_name: bool, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = _s(port.get("name"))
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += _label(f"{path}.name", name)
    errs += [invalid_value(f"{path}.port", _int(port.get("port")), m)
             for m in is_valid_port_num(port.get("port"))]
    errs += _protocol(port.get("protocol"), f"{path}.protocol")
    if port.get("appProtocol") is not None:
        errs += _qualified(f"{path}.appProtocol", _s(port["appProtocol"]))
    return errs


# ==== secrets and config maps =================================================================

def _b64_decode(value: Any) -> bytes | None:
    """Decode a []byte field the way encoding/json does (std alphabet, \\r\\n ignored)."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


def _go_json_error(raw: bytes) -> str | None:
    """json.Unmarshal into map[string]interface{}: the Go error text, or None if it decodes."""
    text = raw.decode("utf-8", "replace")
    if not text.strip():
        return "unexpected end of JSON input"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()):
            return "unexpected end of JSON input"
        return f"invalid character '{text[e.pos]}' looking for beginning of value"
    go_types = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}
    if value is not None and not isinstance(value, dict):
        return (f"json: cannot unmarshal {go_types.get(type(value), 'value')} into Go value of "
                "type map[string]interface {}")
    return None


def _secret_type_rules(obj: dict, data: dict) -> list[FieldError]:
    kind = _s(obj.get("type"))
    errs: list[FieldError] = []
    if kind == "kubernetes.io/service-account-token":
        annotations = _map(_map(obj.get("metadata")).get("annotations"))
        if not _s(annotations.get("kubernetes.io/service-account.name")):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in data:
            return [required(f"data[{key}]")]
        raw = data[key] if data[key] is not None else b""
        problem = _go_json_error(raw)
        if problem:
            errs.append(invalid_value(f"data[{key}]", "<secret contents redacted>", problem))
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            errs += [required("data[username]"), required("data[password]")]
    elif kind == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            errs.append(required("data[ssh-privatekey]"))
    elif kind == "kubernetes.io/tls":
        errs += [required(f"data[{k}]") for k in ("tls.crt", "tls.key") if k not in data]
    return errs


def secret(obj: Any) -> list[FieldError]:
    """ValidateSecret: keys, 1 MiB of decoded data, per-type required keys."""
    obj = _map(obj)
    errs = object_meta(obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain)
    data: dict[str, bytes | None] = {}
    total = 0
    for key, value in _map(obj.get("data")).items():
        errs += _names(f"data[{key}]", key, is_config_map_key(key))
        data[key] = _b64_decode(value)
        total += len(data[key] or b"")
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("data", MAX_SECRET_SIZE))
    return errs + _secret_type_rules(obj, data)


def _immutable_guard(new: dict, old: dict, keys: tuple) -> list[FieldError]:
    if old.get("immutable") is not True:
        return []
    errs = []
    if new.get("immutable") is not True:
        errs.append(forbidden_field("immutable", IMMUTABLE_WHEN_SET))
    for key in keys:
        if _map(new.get(key)) != _map(old.get(key)):
            errs.append(forbidden_field(key, IMMUTABLE_WHEN_SET))
    return errs


def secret_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _immutable("type", _s(new.get("type")), _s(old.get("type")))
    errs += _immutable_guard(new, old, ("data",))
    return errs + secret(new)


def config_map(obj: Any) -> list[FieldError]:
    """ValidateConfigMap: keys, no key in both data and binaryData, 1 MiB total."""
    obj = _map(obj)
    errs = object_meta(obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain)
    data, binary = _map(obj.get("data")), _map(obj.get("binaryData"))
    total = 0
    for key, value in data.items():
        errs += _names(f"data[{key}]", key, is_config_map_key(key))
        if key in binary:
            errs.append(invalid_value(f"data[{key}]", key, "duplicate of key present in binaryData"))
        total += _blen(_s(value))
    for key, value in binary.items():
        errs += _names(f"binaryData[{key}]", key, is_config_map_key(key))
        total += len(_b64_decode(value) or b"")
    if total > MAX_SECRET_SIZE:
        errs.append(too_long("", MAX_SECRET_SIZE))
    return errs


def config_map_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _immutable_guard(new, old, ("data", "binaryData"))
    return errs + config_map(new)


# ==== quota, limit ranges, namespaces, service accounts, nodes, events =======================

QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                "CrossNamespacePodAffinity")


def _quota_map(values: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for name, value in _map(values).items():
        rpath = f"{path}[{name}]"
        errs += _quota_resource_name(name, rpath)
        errs += resource_quantity_value(name, value, rpath)
    return errs


def resource_quota_spec(spec: Any, path: str = "spec") -> list[FieldError]:
    spec = _map(spec)
    errs = _quota_map(spec.get("hard"), f"{path}.hard")
    scopes = [_s(x) for x in _list(spec.get("scopes"))]
    for scope in scopes:
        if scope not in QUOTA_SCOPES:
            errs.append(invalid_value(f"{path}.scopes", scopes, "unsupported scope"))
    if {"BestEffort", "NotBestEffort"} <= set(scopes) or \
            {"Terminating", "NotTerminating"} <= set(scopes):
        errs.append(invalid_value(f"{path}.scopes", scopes, "conflicting scopes"))
    return errs


def resource_quota(obj: Any) -> list[FieldError]:
    obj = _map(obj)
    errs = object_meta(obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain)
    errs += resource_quota_spec(obj.get("spec"))
    status = _map(obj.get("status"))
    errs += _quota_map(status.get("hard"), "status.hard")
    return errs + _quota_map(status.get("used"), "status.used")


def resource_quota_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += resource_quota_spec(new.get("spec"))
    nscopes = [_s(x) for x in _list(_map(new.get("spec")).get("scopes"))]
    oscopes = [_s(x) for x in _list(_map(old.get("spec")).get("scopes"))]
    if set(nscopes) != set(oscopes):
        errs.append(invalid_value("spec.scopes", nscopes, FIELD_IMMUTABLE))
    return errs


def resource_quota_status_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    status = _map(new.get("status"))
    return errs + _quota_map(status.get("hard"), "status.hard") + \
        _quota_map(status.get("used"), "status.used")


def limit_range(obj: Any) -> list[FieldError]:
    """ValidateLimitRange (types, resource names, min <= default(request) <= max, ratio >= 1)."""
    obj = _map(obj)
    errs = object_meta(obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain)
    seen: set[str] = set()
    for i, item in enumerate(_list(_map(obj.get("spec")).get("limits"))):
        item, ipath = _map(item), f"spec.limits[{i}]"
        kind = _s(item.get("type"))
        errs += _qualified(f"{ipath}.type", kind)
        if "/" not in kind and kind not in ("Pod", "Container", "PersistentVolumeClaim") and \
                not is_qualified_name(kind):
            errs.append(invalid_value(f"{ipath}.type", kind,
                                      "must be a standard limit type or fully qualified"))
        if kind in seen:
            errs.append(duplicate(f"{ipath}.type", kind))
        seen.add(kind)
        errs += _limit_range_item(item, kind, ipath)
    return errs


def _limit_range_item(item: dict, kind: str, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name_fn = _container_resource_name if kind in ("Pod", "Container") else _resource_name
    values: dict[str, dict] = {}
    keys = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")
    for key in keys:
        if kind == "Pod" and key in ("default", "defaultRequest"):
            if _map(item.get(key)):
                errs.append(forbidden_field(f"{path}.{key}", "may not be specified when `type` is 'Pod'"))
            continue
        values[key] = {}
        for name, value in _map(item.get(key)).items():
            errs += name_fn(name, f"{path}.{key}[{name}]")
            q, qerrs = _quantity(value, f"{path}.{key}[{name}]")
            errs += qerrs
            if q is not None:
                values[key][name] = q
    if kind == "PersistentVolumeClaim" and "storage" not in values.get("min", {}) and \
            "storage" not in values.get("max", {}):
        errs.append(required(f"{path}.limits", "either minimum or maximum storage value is "
                                               "required, but neither was provided"))
    return errs + _limit_range_order(values, path)


def _limit_range_order(v: dict, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names = sorted({n for group in v.values() for n in group})
    for n in names:
        mn, mx = v.get("min", {}).get(n), v.get("max", {}).get(n)
        df, dr = v.get("default", {}).get(n), v.get("defaultRequest", {}).get(n)
        ratio = v.get("maxLimitRequestRatio", {}).get(n)
        if mn and mx and mn.value > mx.value:
            errs.append(invalid_value(f"{path}.min[{n}]", mn.text,
                                      f"min value {mn.text} is greater than max value {mx.text}"))
        if dr and mn and mn.value > dr.value:
            errs.append(invalid_value(f"{path}.defaultRequest[{n}]", dr.text,
                                      f"min value {mn.text} is greater than default request value "
                                      f"{dr.text}"))
        if dr and mx and dr.value > mx.value:
            errs.append(invalid_value(f"{path}.defaultRequest[{n}]", dr.text,
                                      f"default request value {dr.text} is greater than max value "
                                      f"{mx.text}"))
        if dr and df and dr.value > df.value:
            errs.append(invalid_value(f"{path}.defaultRequest[{n}]", dr.text,
                                      f"default request value {dr.text} is greater than default "
                                      f"limit value {df.text}"))
        if df and mn and mn.value > df.value:
            errs.append(invalid_value(f"{path}.default[{n}]", mn.text,
                                      f"min value {mn.text} is greater than default value {df.text}"))
        if df and mx and df.value > mx.value:
            errs.append(invalid_value(f"{path}.default[{n}]", mx.text,
                                      f"default value {df.text} is greater than max value {mx.text}"))
        if ratio and ratio.value < 1:
            errs.append(invalid_value(f"{path}.maxLimitRequestRatio[{n}]", ratio.text,
                                      f"ratio {ratio.text} is less than 1"))
    return errs


def namespace(obj: Any) -> list[FieldError]:
    obj = _map(obj)
    errs = object_meta(obj.get("metadata"), namespaced=False, name_fn=name_is_dns_label)
    for name in _list(_map(obj.get("spec")).get("finalizers")):
        name = _s(name)
        errs += _qualified("spec.finalizers", name)
        if "/" not in name and name not in STANDARD_FINALIZERS:
            errs.append(invalid_value("spec.finalizers", name, "name is neither a standard "
                                                               "finalizer name nor is it fully "
                                                               "qualified"))
    return errs


def namespace_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    return object_meta_update(new.get("metadata"), old.get("metadata"))


def namespace_status_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    phase = _s(_map(new.get("status")).get("phase"))
    if not _map(new.get("metadata")).get("deletionTimestamp"):
        if phase != "Active":
            errs.append(invalid_value("status.Phase", phase,
                                      "may only be 'Active' if `deletionTimestamp` is empty"))
    elif phase != "Terminating":
        errs.append(invalid_value("status.Phase", phase,
                                  "may only be 'Terminating' if `deletionTimestamp` is not empty"))
    return errs


def service_account(obj: Any) -> list[FieldError]:
    return object_meta(_map(obj).get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain)


def service_account_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    return object_meta_update(new.get("metadata"), old.get("metadata")) + service_account(new)


def _taints(taints: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set = set()
    for i, taint in enumerate(_list(taints)):
        taint, ipath = _map(taint), f"{path}[{i}]"
        key, effect = _s(taint.get("key")), _s(taint.get("effect"))
        errs += _qualified(f"{ipath}.key", key)
        msgs = is_valid_label_value(_s(taint.get("value")))
        if msgs:
            errs.append(invalid_value(f"{ipath}.value", _s(taint.get("value")), ";".join(msgs)))
        if not effect:
            errs.append(required(f"{ipath}.effect"))
        elif effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            errs.append(unsupported(f"{ipath}.effect", effect,
                                    ["NoSchedule", "PreferNoSchedule", "NoExecute"]))
        if (key, effect) in seen:
            err = duplicate(ipath, taint)
            err.detail = "taints must be unique by key and effect pair"
            errs.append(err)
            continue
        seen.add((key, effect))
    return errs


def node(obj: Any) -> list[FieldError]:
    obj = _map(obj)
    errs = object_meta(obj.get("metadata"), namespaced=False, name_fn=name_is_dns_subdomain)
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    errs += _taints(spec.get("taints"), "metadata.taints")
    for key in ("capacity", "allocatable"):
        for name, value in _map(status.get(key)).items():
            errs += resource_quantity_value(name, value, f"status.{key}.{name}")
    for i, cidr in enumerate(_list(spec.get("podCIDRs"))):
        errs += validate_cidr(f"spec.podCIDRs[{i}]", _s(cidr))
    return errs


def node_update(new: Any, old: Any) -> list[FieldError]:
    new, old = _map(new), _map(old)
    errs = object_meta_update(new.get("metadata"), old.get("metadata"))
    nspec, ospec = _map(new.get("spec")), _map(old.get("spec"))
    old_cidrs = _list(ospec.get("podCIDRs"))
    if old_cidrs and old_cidrs != _list(nspec.get("podCIDRs")):
        errs.append(forbidden_field("spec.podCIDRs", "node updates may not change podCIDR except "
                                                     "from \"\" to valid"))
    if _s(ospec.get("providerID")) and ospec.get("providerID") != nspec.get("providerID"):
        errs.append(forbidden_field("spec.providerID", "node updates may not change providerID "
                                                       "except from \"\" to valid"))
    status = _map(new.get("status"))
    for key in ("capacity", "allocatable"):
        for name, value in _map(status.get(key)).items():
            errs += resource_quantity_value(name, value, f"status.{key}.{name}")
    return errs + _taints(nspec.get("taints"), "metadata.taints")


def event(obj: Any) -> list[FieldError]:
    """core/v1 Event (legacyValidateEvent): lenient for old-style events without eventTime."""
    obj = _map(obj)
    meta = _map(obj.get("metadata"))
    errs = object_meta(meta, namespaced=True, name_fn=name_is_dns_subdomain)
    ns = _s(meta.get("namespace"))
    involved_ns = _s(_map(obj.get("involvedObject")).get("namespace"))
    mismatch = invalid_value("involvedObject.namespace", involved_ns, "does not match event.namespace")
    if not obj.get("eventTime"):
        if (not involved_ns and ns not in ("", "default")) or (involved_ns and ns != involved_ns):
            errs.append(mismatch)
    else:
        if not involved_ns and ns not in ("default", "kube-system"):
            errs.append(mismatch)
        errs += _new_style_event_fields(obj)
    return errs + _names("namespace", ns, is_dns1123_subdomain(ns))


def _new_style_event_fields(obj: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    controller = _s(obj.get("reportingComponent"))
    if not controller:
        errs.append(required("reportingComponent"))
    errs += _qualified("reportingComponent", controller)
    for key, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
        if not _s(obj.get(key)):
            errs.append(required(key))
        if _blen(_s(obj.get(key))) > limit:
            errs.append(invalid_value(key, "", f"can have at most {limit} characters"))
    if _blen(_s(obj.get("message"))) > 1024:
        errs.append(invalid_value("message", "", "can have at most 1024 characters"))
    return errs


# ==== decode errors (400, not 422) ============================================================

_QUANTITY_MAPS = {
    "Pod": ("spec.overhead",),
    "ResourceQuota": ("spec.hard", "status.hard", "status.used"),
    "Node": ("status.capacity", "status.allocatable"),
}


def _dig(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = _map(obj).get(part)
    return obj


def _container_quantities(spec: Any) -> list:
    out = []
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in _list(_map(spec).get(key)):
            res = _map(_map(c).get("resources"))
            out += list(_map(res.get("limits")).values()) + list(_map(res.get("requests")).values())
    return out


def decode_error(kind: str, obj: Any) -> str | None:
    """The 400 message the apiserver's decoder would give for this body, or None.

    Covers quantities that do not parse and []byte fields that are not base64:
    `<Kind> in version "v1" cannot be handled as a <Kind>: <reason>`.
    """
    values: list = []
    if kind == "Pod":
        values = _container_quantities(_dig(obj, "spec"))
    elif kind in ("ReplicationController", "PodTemplate"):
        values = _container_quantities(_dig(obj, "spec.template.spec"))
    elif kind == "LimitRange":
        for item in _list(_dig(obj, "spec.limits")):
            for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                values += list(_map(_map(item).get(key)).values())
    for dotted in _QUANTITY_MAPS.get(kind, ()):
        values += list(_map(_dig(obj, dotted)).values())
    for value in values:
        try:
            quantity.parse(value)
        except quantity.QuantityError as e:
            return f'{kind} in version "v1" cannot be handled as a {kind}: {e}'
    byte_maps = {"Secret": "data", "ConfigMap": "binaryData"}
    if kind in byte_maps:
        for value in _map(_map(obj).get(byte_maps[kind])).values():
            if value is not None and _b64_decode(value) is None:
                return (f'{kind} in version "v1" cannot be handled as a {kind}: '
                        f"illegal base64 data at input byte {_b64_bad_offset(_s(value))}")
    return None


def _b64_bad_offset(value: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for i, ch in enumerate(value):
        if ch == "=":
            return i
        if ch not in alphabet and ch not in "\r\n":
            return i
    return len(value) - len(value) % 4 if len(value) % 4 else len(value)
