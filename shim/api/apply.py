"""Server-side apply: `PATCH` with `Content-Type: application/apply-patch+yaml`.

Owns the `app.extra_routes["apply"]` handler: decoding the applied configuration (YAML or
JSON), the PatchOptions checks of an apply (fieldManager required, force), the
kind/apiVersion/name checks, creating the object when it is absent (201), and handing
the merged object to the generic update path (validation, admission, dryRun, storage).
The merge itself, conflicts and managedFields come from shim/api/fieldmanager.py.
"""
from __future__ import annotations

from typing import Any

import yaml

from shim.store.base import Entry

from . import errors, fieldmanager
from .errors import StatusError
from .rest import REST, WriteOptions, copy_obj, now_rfc3339, parse_rv

FIELD_MANAGER_MAX_LENGTH = 128


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it: timestamps stay strings."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:timestamp"]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def decode_config(body: bytes) -> dict:
    """The applied configuration as a JSON-shaped dict (400 `error decoding YAML: ...`)."""
    try:
        doc = yaml.load(body.decode("utf-8", errors="replace"), Loader=_Loader)
    except yaml.YAMLError as e:
        raise errors.bad_request(f"error decoding YAML: {_yaml_error(e)}") from None
    if doc is None:
        return {}
    doc = _jsonify(doc)
    if not isinstance(doc, dict):
        raise errors.bad_request("error decoding YAML: error unmarshaling JSON: while decoding "
                                 "JSON: json: cannot unmarshal " + _json_kind(doc) +
                                 " into Go value of type map[string]interface {}")
    return doc


def _yaml_error(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is not None:
        return f"error converting YAML to JSON: yaml: line {mark.line + 1}: {problem}"
    return f"error converting YAML to JSON: yaml: {problem}"


def _json_kind(v: Any) -> str:
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return "object"


def _jsonify(v: Any) -> Any:
    """YAML → JSON as the Go converter does: map keys become strings."""
    if isinstance(v, dict):
        return {_key(k): _jsonify(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonify(x) for x in v]
    return v


def _key(k: Any) -> str:
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "null"
    return str(k)


def duplicate_keys(body: bytes) -> list[str]:
    """`line N: key "k" already set in map` for every repeated mapping key (strict decoding)."""
    try:
        root = yaml.compose(body.decode("utf-8", errors="replace"), Loader=_Loader)
    except yaml.YAMLError:
        return []
    out: list[str] = []

    def walk(node) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for k, v in node.value:
                key = getattr(k, "value", None)
                if isinstance(key, str):
                    if key in seen:
                        out.append(f'line {k.start_mark.line + 1}: key "{key}" already set in map')
                    seen.add(key)
                walk(v)
        elif isinstance(node, yaml.SequenceNode):
            for x in node.value:
                walk(x)
    if root is not None:
        walk(root)
    return out


def check_options(opts: WriteOptions) -> None:
    """ValidatePatchOptions for an apply patch."""
    errs = []
    if not opts.field_manager:
        errs.append(errors.required("fieldManager", "is required for apply patch"))
    elif len(opts.field_manager) > FIELD_MANAGER_MAX_LENGTH:
        errs.append(errors.too_long("fieldManager", FIELD_MANAGER_MAX_LENGTH))
    if errs:
        raise errors.invalid("PatchOptions", "", errs, "meta.k8s.io")


def _gvk_string(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


def check_config(res, config: dict) -> None:
    """The version check of the apply field manager, and no managedFields in a config."""
    av = config.get("apiVersion") if isinstance(config.get("apiVersion"), str) else ""
    kind = config.get("kind") if isinstance(config.get("kind"), str) else ""
    if av != res.api_version or kind != res.kind:
        raise errors.bad_request(f"invalid object type: {_gvk_string(av, kind)}")
    meta = config.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise errors.bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a '
                                 f'{res.kind}: json: cannot unmarshal {_json_kind(meta)} into Go '
                                 f'struct field {res.kind}.metadata of type v1.ObjectMeta')
    if meta and meta.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")


def _typed_error(res, config: dict, err: fieldmanager.SchemaError) -> StatusError:
    meta = config.get("metadata") or {}
    where = f'{meta.get("namespace", "")}/{meta.get("name", "")}; ' \
            f'{_gvk_string(res.api_version, res.kind)}'
    return errors.unreasoned(500, f"failed to create typed patch object ({where}): {err}")


async def apply(rest: REST, res, ns: str | None, name: str, body: bytes, opts: WriteOptions,
                subresource: str | None) -> tuple[Entry, int]:
    """The extra_routes["apply"] handler: returns (entry, HTTP code)."""
    check_options(opts)
    config = decode_config(body)
    if opts.field_validation in ("Strict", "Warn"):
        dups = duplicate_keys(body)
        if dups:
            text = ("error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal "
                    "errors:\n  " + "\n  ".join(dups))
            if opts.field_validation == "Strict":
                raise errors.bad_request(text)
            opts.warnings.append(text)
    check_config(res, config)
    key = res.key(ns, name)
    for _attempt in range(5):
        cur = await rest.store.get(key)
        try:
            if cur is None:
                if subresource is not None:
                    raise errors.not_found(res.plural, name, res.group)
                return await _create(rest, res, ns, name, config, opts), 201
            return await _update(rest, res, ns, name, key, cur, config, opts, subresource), 200
        except StatusError as e:
            rv = (config.get("metadata") or {}).get("resourceVersion")
            if e.code == 409 and e.reason == "Conflict" and not rv and \
                    "Apply failed" not in e.message:
                continue          # raced with another writer: re-read and re-apply
            if e.code == 409 and e.reason == "AlreadyExists" and cur is None:
                continue          # created meanwhile: apply onto it
            raise
    raise errors.conflict(res.plural, name, group=res.group)


def _plan(rest: REST, res, live: dict | None, config: dict, opts: WriteOptions,
          subresource: str | None) -> fieldmanager.ApplyResult:
    try:
        return fieldmanager.plan_apply(res, live, config, opts.field_manager, opts.force,
                                       subresource, now_rfc3339(rest.clock()))
    except fieldmanager.SchemaError as e:
        raise _typed_error(res, config, e) from None


async def _create(rest: REST, res, ns, name, config: dict, opts: WriteOptions) -> Entry:
    plan = _plan(rest, res, None, config, opts, None)
    obj = plan.obj
    obj["kind"], obj["apiVersion"] = res.kind, res.api_version
    rest._check_name_ns(res, ns, name, obj)
    obj["metadata"].pop("resourceVersion", None)
    token = fieldmanager.APPLYING.set(True)
    try:
        return await rest.create(res, ns, obj, _write_opts(opts))
    finally:
        fieldmanager.APPLYING.reset(token)


async def _update(rest: REST, res, ns, name, key: str, cur: Entry, config: dict,
                  opts: WriteOptions, subresource: str | None) -> Entry:
    live = copy_obj(cur)
    plan = _plan(rest, res, live, config, opts, subresource)
    obj = plan.obj
    rest._check_type(res, obj)
    rest._check_name_ns(res, ns, name, obj)
    rv = (config.get("metadata") or {}).get("resourceVersion")
    if rv and parse_rv(rv) != cur.rev:
        raise errors.conflict(res.plural, name, group=res.group)
    token = fieldmanager.APPLYING.set(True)
    try:
        return await rest._write_update(res, key, cur, obj, _write_opts(opts), subresource)
    finally:
        fieldmanager.APPLYING.reset(token)


def _write_opts(opts: WriteOptions) -> WriteOptions:
    """The configuration was checked against the schema already; the merged object holds
    nothing unknown."""
    return WriteOptions(dry_run=opts.dry_run, field_manager=opts.field_manager,
                        field_validation="Ignore", force=opts.force, warnings=opts.warnings,
                        raw_body=None, user=opts.user)


def install(app) -> None:
    app.extra_routes["apply"] = apply
