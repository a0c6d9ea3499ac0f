"""The generic REST verbs, once for every kind: get, list, watch, create, update, patch,
delete, deletecollection and the status subresource.

Each verb takes the kind's strategy (shim/resources) and plain dicts, talks to the
store, and raises StatusError for every refusal; nothing here knows HTTP. The HTTP
face (app.py) and the in-process controllers both call these functions, so a
controller sees exactly the semantics a client does.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import orjson

from shim.resources.base import Registry, Resource
from shim.store.base import (ADDED, DELETED, MODIFIED, TICK, Entry, KeyExists,
                             KeyNotFound, RevisionConflict, Store)

from . import errors
from .errors import StatusError
from .selectors import label_matcher, parse_field_selector, parse_label_selector

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATED_PREFIX = 58


def now_rfc3339(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> float:
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    return _dt.datetime.fromisoformat(s).timestamp()


def parse_bool(v: str | None, default: bool = False) -> bool:
    """Go's strconv.ParseBool (the Python client sends True/False)."""
    if v is None or v == "":
        return default
    if v in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if v in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise errors.bad_request(f'strconv.ParseBool: parsing "{v}": invalid syntax')


def copy_obj(entry: Entry) -> dict:
    """A private, mutable deep copy of a stored object."""
    return orjson.loads(entry.raw)


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Warn"        # Strict | Warn | Ignore
    force: bool = False
    warnings: list[str] = field(default_factory=list)
    raw_body: bytes | None = None
    user: Any = None                      # UserInfo of the caller (admission, managedFields)


@dataclass
class ListOptions:
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""
    timeout_seconds: int | None = None
    allow_bookmarks: bool = False
    send_initial_events: bool | None = None


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    orphan_dependents: bool | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False


@dataclass
class AdmissionAttributes:
    operation: str                 # CREATE | UPDATE | DELETE
    resource: Resource
    namespace: str | None
    name: str
    obj: dict | None               # the object to be stored (None for DELETE)
    old: dict | None               # the stored object (None for CREATE)
    subresource: str | None
    user: Any
    dry_run: bool
    ctx: "Context"


class Context:
    """What strategies may use beyond the object: the clock, the store, allocators."""

    def __init__(self, rest: "REST"):
        self.rest = rest

    @property
    def store(self) -> Store:
        return self.rest.store

    def now(self) -> float:
        return self.rest.clock()


# Hooks the field-validation module provides (set by the server at start-up).
FieldCheck = Callable[[dict, str, str, str, bytes | None], list[str]]


class REST:
    def __init__(self, store: Store, registry: Registry, *, clock: Callable[[], float] = time.time,
                 field_check: FieldCheck | None = None):
        self.store = store
        self.registry = registry
        self.clock = clock
        self.ctx = Context(self)
        self.field_check = field_check
        self.extras: dict[str, Any] = {}   # shared services (allocators, config) by name
        # admission plugins: objects with `async admit(attrs: AdmissionAttributes)`; they may
        # change attrs.obj (mutating) or raise StatusError (validating). Run after validation.
        self.admission: list = []
        # managedFields: object with `update(res, new, old, manager, subresource) -> None`
        # that records an Update entry in new["metadata"]["managedFields"]; None = not tracked
        self.field_manager = None

    # ---- helpers ------------------------------------------------------------------------
    def _not_found(self, res: Resource, name: str) -> StatusError:
        return errors.not_found(res.plural, name, res.group)

    async def _get_entry(self, res: Resource, ns: str | None, name: str) -> Entry:
        e = await self.store.get(res.key(ns, name))
        if e is None:
            raise self._not_found(res, name)
        return e

    async def namespace_lifecycle(self, res: Resource, ns: str, name: str) -> None:
        """NamespaceLifecycle admission: no creates in missing or terminating namespaces."""
        nsres = self.registry.get("", "v1", "namespaces")
        e = await self.store.get(nsres.key(None, ns))
        if e is None:
            raise errors.not_found("namespaces", ns)
        if e.obj.get("metadata", {}).get("deletionTimestamp") or \
                e.obj.get("status", {}).get("phase") == "Terminating":
            raise errors.forbidden(res.plural, name,
                                   f"unable to create new content in namespace {ns} because it is "
                                   "being terminated", res.group)

    def _check_type(self, res: Resource, obj: dict, kind: str | None = None,
                    api_version: str | None = None) -> None:
        kind = kind or res.kind
        api_version = api_version or res.api_version
        if not isinstance(obj, dict):
            raise errors.bad_request(f"the object provided is unrecognized (must be of type {kind})")
        k = obj.get("kind")
        av = obj.get("apiVersion")
        if (k and k != kind) or (av and av != api_version):
            if k and k != kind:
                raise errors.bad_request(
                    f'the object provided is unrecognized (must be of type {kind}): '
                    f'{k} in version "{(av or "").split("/")[-1]}" cannot be handled as a {kind}')
            raise errors.bad_request(
                f'the API version in the data ({av}) does not match the expected API version '
                f'({api_version})')
        obj["kind"] = kind
        obj["apiVersion"] = api_version
        meta = obj.get("metadata")
        if meta is None:
            obj["metadata"] = {}
        elif not isinstance(meta, dict):
            raise errors.bad_request(f'{kind} in version "{api_version.split("/")[-1]}" cannot be '
                                     f'handled as a {kind}: json: cannot unmarshal '
                                     f'{_json_type(meta)} into Go struct field {kind}.metadata of '
                                     'type v1.ObjectMeta')

    def _field_validation(self, res: Resource, obj: dict, opts: WriteOptions) -> None:
        """fieldValidation (unknown/duplicate fields) and the decode-time checks (quantities,
        base64) that the real server reports as 400 before any validation."""
        if self.field_check is not None:
            opts.warnings.extend(self.field_check(obj, res.definition, opts.field_validation,
                                                  res.kind, opts.raw_body))
        from shim.resources import validation
        why = validation.decode_error(res.kind, obj)
        if why:
            raise errors.bad_request(why)

    async def _admit(self, op, res, ns, name, obj, old, sub, opts) -> None:
        if not self.admission:
            return
        attrs = AdmissionAttributes(op, res, ns, name, obj, old, sub, opts.user, opts.dry_run,
                                    self.ctx)
        for plugin in self.admission:
            await plugin.admit(attrs)

    # ---- read ---------------------------------------------------------------------------
    async def get(self, res: Resource, ns: str | None, name: str) -> Entry:
        return await self._get_entry(res, ns, name)

    def compile_filter(self, res: Resource, opts: ListOptions) -> Callable[[dict], bool] | None:
        lm = label_matcher(parse_label_selector(opts.label_selector))
        fields = parse_field_selector(opts.field_selector)
        for f, _, _ in fields:
            if not res.supports_field(f):
                raise errors.bad_request(f'field label not supported: {f}')
        if lm is None and not fields:
            return None

        def pred(obj: dict) -> bool:
            if lm is not None and not lm(obj.get("metadata", {}).get("labels") or {}):
                return False
            for f, op, v in fields:
                actual = res.field_value(obj, f)
                if actual is None:
                    actual = ""
                if (actual == v) != (op == "="):
                    return False
            return True
        return pred

    async def list(self, res: Resource, ns: str | None, opts: ListOptions):
        """Returns (entries, revision, continue token, remainingItemCount or None)."""
        pred = self.compile_filter(res, opts)
        start_after = ""
        prefix = res.prefix(ns)
        if opts.continue_token:
            token = decode_continue(opts.continue_token)
            if token["rv"] < self.store.compacted_revision:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter, or use the continue "
                    "token in this response to retrieve the remainder of the results. Continuing "
                    "with the provided token results in an inconsistent list - objects that were "
                    "created, modified, or deleted between the time the first chunk was returned "
                    "and now may show up in the list.")
            start_after = prefix + token["start"]
        elif opts.resource_version and opts.resource_version_match == "Exact":
            rv = parse_rv(opts.resource_version)
            if rv != self.store.revision:
                raise errors.expired("The resourceVersion for the provided list is too old.")
        epred = (lambda e: pred(e.obj)) if pred else None
        entries, rev, more, remaining = await self.store.list(
            prefix, start_after=start_after, limit=opts.limit, predicate=epred)
        token = None
        if more:
            token = encode_continue(rev, more[len(prefix):])
        return entries, rev, token, (remaining if more and pred is None else None)

    # ---- create -------------------------------------------------------------------------
    async def create(self, res: Resource, ns: str | None, obj: dict, opts: WriteOptions) -> Entry:
        self._check_type(res, obj)
        meta = obj["metadata"]
        if res.namespaced:
            bns = meta.get("namespace")
            if bns and ns and bns != ns:
                raise errors.bad_request("the namespace of the provided object does not match the "
                                         "namespace sent on the request")
            meta["namespace"] = ns or bns or ""
        else:
            meta.pop("namespace", None)
        self._field_validation(res, obj, opts)
        if meta.get("resourceVersion"):
            raise errors.unreasoned(500, "resourceVersion should not be set on objects to be created")
        generated = False
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(meta["generateName"])
            generated = True
        self.fill_system_fields(res, obj)
        res.prepare_for_create(obj, self.ctx)
        if self.field_manager is not None:   # on the defaulted request, before admission
            self.field_manager.update(res, obj, None, opts.field_manager, None)
        name = meta.get("name", "")
        errs = res.validate(obj)
        if errs:
            raise errors.invalid(res.kind, name, errs, res.group)
        if res.namespaced:
            await self.namespace_lifecycle(res, meta["namespace"], name)
        await res.admit_create(obj, self.ctx)
        await self._admit("CREATE", res, meta.get("namespace"), name, obj, None, None, opts)
        key = res.key(meta.get("namespace"), name)
        if await self.store.get(key) is not None:
            raise (errors.generate_name_conflict if generated else errors.already_exists)(
                res.plural, name, res.group)
        await res.before_create(obj, self.ctx, dry_run=opts.dry_run)
        if opts.dry_run:
            return Entry(obj, orjson.dumps(obj), 0)
        try:
            return await self.store.create(key, obj)
        except KeyExists:
            await res.after_delete(obj, self.ctx)   # give back what before_create allocated
            raise (errors.generate_name_conflict if generated else errors.already_exists)(
                res.plural, name, res.group) from None

    def fill_system_fields(self, res: Resource, obj: dict) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self.clock())
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(k, None)
        if res.generation_on_spec_change:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)

    # ---- update -------------------------------------------------------------------------
    async def update(self, res: Resource, ns: str | None, name: str, obj: dict, opts: WriteOptions,
                     subresource: str | None = None) -> tuple[Entry, bool]:
        """PUT. Returns (entry, created)."""
        self._check_type(res, obj)
        self._check_name_ns(res, ns, name, obj)
        self._field_validation(res, obj, opts)
        key = res.key(ns, name)
        cur = await self.store.get(key)
        if cur is None:
            if subresource is None and getattr(res, "allow_create_on_update", False):
                obj["metadata"].pop("resourceVersion", None)
                return await self.create(res, ns, obj, opts), True
            raise self._not_found(res, name)
        rv = obj["metadata"].get("resourceVersion")
        if not rv and not res.allow_unconditional_update and subresource is None:
            raise errors.invalid(res.kind, name, [errors.invalid_value(
                "metadata.resourceVersion", 0, "must be specified for an update")], res.group)
        expected = parse_rv(rv) if rv else None
        if expected is not None and expected != cur.rev:
            raise errors.conflict(res.plural, name, group=res.group)
        return await self._write_update(res, key, cur, obj, opts, subresource), False

    def _check_name_ns(self, res: Resource, ns: str | None, name: str, obj: dict) -> None:
        meta = obj["metadata"]
        bname = meta.get("name")
        if bname and bname != name:
            raise errors.bad_request(f"the name of the object ({bname}) does not match the name on "
                                     f"the URL ({name})")
        meta["name"] = name
        if res.namespaced:
            bns = meta.get("namespace")
            if bns and bns != ns:
                raise errors.bad_request("the namespace of the provided object does not match the "
                                         "namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    async def _write_update(self, res: Resource, key: str, cur: Entry, new: dict, opts: WriteOptions,
                            subresource: str | None) -> Entry:
        old = cur.obj
        oldm = old["metadata"]
        newm = new["metadata"]
        if subresource == "status":
            new = res.prepare_for_status_update(new, copy_obj(cur))
            newm = new["metadata"]
        elif subresource is None:
            res.prepare_for_update(new, old)
        # server-owned metadata always comes from the stored object
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if k in oldm:
                newm[k] = oldm[k]
            else:
                newm.pop(k, None)
        newm.pop("selfLink", None)
        newm["resourceVersion"] = oldm.get("resourceVersion")
        if res.generation_on_spec_change:
            gen = oldm.get("generation", 1)
            if subresource is None and res.spec_changed(new, old):
                gen += 1
            newm["generation"] = gen
        else:
            newm.pop("generation", None)
        if subresource == "status":
            errs = res.validate_status_update(new, old)
        else:
            errs = res.validate_update(new, old)
        if errs:
            raise errors.invalid(res.kind, newm.get("name", ""), errs, res.group)
        if new == old:
            return cur              # nothing changed: no write, same resourceVersion
        await self._admit("UPDATE", res, newm.get("namespace"), newm.get("name", ""), new, old,
                          subresource, opts)
        if self.field_manager is not None:
            self.field_manager.update(res, new, old, opts.field_manager, subresource)
            if new == old:
                return cur
        await res.before_update(new, old, self.ctx)
        if opts.dry_run:
            return Entry(new, orjson.dumps(new), cur.rev)
        if self._should_delete(new):
            return await self._remove(res, key, cur.rev, new)
        try:
            return await self.store.update(key, new, cur.rev)
        except RevisionConflict:
            raise errors.conflict(res.plural, newm.get("name", ""), group=res.group) from None
        except KeyNotFound:
            raise self._not_found(res, newm.get("name", "")) from None

    @staticmethod
    def _should_delete(obj: dict) -> bool:
        meta = obj["metadata"]
        return bool(meta.get("deletionTimestamp")) and not meta.get("finalizers") and \
            not meta.get("deletionGracePeriodSeconds") and \
            not (obj.get("kind") == "Namespace" and obj.get("spec", {}).get("finalizers"))

    # ---- patch --------------------------------------------------------------------------
    async def patch(self, res: Resource, ns: str | None, name: str, content_type: str, body: bytes,
                    opts: WriteOptions, subresource: str | None = None) -> Entry:
        from . import patch as patching
        key = res.key(ns, name)
        for _attempt in range(5):
            cur = await self.store.get(key)
            if cur is None:
                raise self._not_found(res, name)
            doc = copy_obj(cur)
            patched = patching.apply_patch(content_type, doc, body, res.definition)
            if not isinstance(patched, dict):
                raise errors.bad_request("the object provided is unrecognized")
            self._check_type(res, patched)
            self._check_name_ns(res, ns, name, patched)
            vopts = WriteOptions(dry_run=opts.dry_run, field_manager=opts.field_manager,
                                 field_validation=opts.field_validation, raw_body=None,
                                 warnings=opts.warnings)
            self._field_validation(res, patched, vopts)
            rv = patched["metadata"].get("resourceVersion")
            if rv and parse_rv(rv) != cur.rev:
                raise errors.conflict(res.plural, name, group=res.group)
            try:
                return await self._write_update(res, key, cur, patched, opts, subresource)
            except StatusError as e:
                if e.code == 409 and e.reason == "Conflict" and not rv:
                    continue          # raced with another writer: re-read and re-apply
                raise
        raise errors.conflict(res.plural, name, group=res.group)

    # ---- delete -------------------------------------------------------------------------
    async def delete(self, res: Resource, ns: str | None, name: str, dopts: DeleteOptions
                     ) -> tuple[dict, int, bool]:
        """Returns (object as last stored, HTTP code, removed?)."""
        key = res.key(ns, name)
        cur = await self.store.get(key)
        if cur is None:
            raise self._not_found(res, name)
        meta = cur.obj["metadata"]
        if dopts.precondition_uid is not None and dopts.precondition_uid != meta.get("uid"):
            raise errors.conflict(res.plural, name, (
                f"StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, "
                f"AdditionalErrorMsg: Precondition failed: UID in precondition: "
                f"{dopts.precondition_uid}, UID in object meta: {meta.get('uid')}"), res.group)
        if dopts.precondition_rv is not None and dopts.precondition_rv != meta.get("resourceVersion"):
            raise errors.conflict(res.plural, name, (
                f"StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, "
                f"AdditionalErrorMsg: Precondition failed: ResourceVersion in precondition: "
                f"{dopts.precondition_rv}, ResourceVersion in object meta: "
                f"{meta.get('resourceVersion')}"), res.group)
        await self._admit("DELETE", res, ns, name, None, cur.obj, None,
                          WriteOptions(dry_run=dopts.dry_run))
        grace = res.graceful_delete_seconds(cur.obj, dopts)
        obj = copy_obj(cur)
        m = obj["metadata"]
        finalizers = list(m.get("finalizers") or [])
        policy = dopts.propagation_policy
        if policy is None and dopts.orphan_dependents:
            policy = "Orphan"
        if policy == "Foreground" and "foregroundDeletion" not in finalizers and \
                not m.get("deletionTimestamp"):
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers and not m.get("deletionTimestamp"):
            finalizers.append("orphan")
        pending_ns = res.kind == "Namespace" and obj.get("spec", {}).get("finalizers")
        if finalizers or pending_ns or (grace is not None and grace > 0):
            # graceful deletion or finalizers: the object stays, marked with deletionTimestamp
            changed = False
            now = self.clock()
            if not m.get("deletionTimestamp"):
                m["deletionTimestamp"] = now_rfc3339(now + (grace or 0))
                m["deletionGracePeriodSeconds"] = grace or 0
                changed = True
            elif grace is not None and grace < (m.get("deletionGracePeriodSeconds") or 0):
                m["deletionTimestamp"] = now_rfc3339(now + grace)
                m["deletionGracePeriodSeconds"] = grace
                changed = True
            if finalizers != list(m.get("finalizers") or []):
                m["finalizers"] = finalizers
                changed = True
            if not changed:
                return cur.obj, 200, False
            res.prepare_for_delete(obj)
            if dopts.dry_run:
                return obj, 200, False
            try:
                e = await self.store.update(key, obj, cur.rev)
            except RevisionConflict:
                raise errors.conflict(res.plural, name, group=res.group) from None
            return e.obj, 200, False
        if dopts.dry_run:
            return obj, 200, True
        e = await self._remove(res, key, cur.rev, obj)
        return e.obj, 200, True

    async def _remove(self, res: Resource, key: str, rev: int, obj: dict) -> Entry:
        try:
            e = await self.store.delete(key, rev)
        except RevisionConflict:
            raise errors.conflict(res.plural, obj["metadata"].get("name", ""), group=res.group) from None
        except KeyNotFound:
            raise self._not_found(res, obj["metadata"].get("name", "")) from None
        await res.after_delete(e.obj, self.ctx)
        return e

    async def delete_collection(self, res: Resource, ns: str | None, lopts: ListOptions,
                                dopts: DeleteOptions) -> tuple[list[dict], int]:
        if "deletecollection" not in res.verbs:
            raise errors.method_not_supported(res.plural, "deletecollection", res.group)
        entries, rev, _, _ = await self.list(res, ns, ListOptions(
            label_selector=lopts.label_selector, field_selector=lopts.field_selector))
        out = []
        for e in entries:
            m = e.obj["metadata"]
            try:
                obj, _, _ = await self.delete(res, m.get("namespace"), m["name"], dopts)
                out.append(obj)
            except StatusError as err:
                if err.code != 404:
                    raise
        return out, self.store.revision

    # ---- watch --------------------------------------------------------------------------
    async def watch(self, res: Resource, ns: str | None, opts: ListOptions
                    ) -> AsyncIterator[tuple[str, dict | bytes, int]]:
        """Yields (type, object-or-raw-bytes, revision); BOOKMARK/ERROR are the caller's."""
        pred = self.compile_filter(res, opts)
        prefix = res.prefix(ns)
        rv = opts.resource_version
        initial: list[Entry] = []
        if rv in ("", "0") or opts.send_initial_events:
            ents, start, _, _ = await self.store.list(
                prefix, predicate=(lambda e: pred(e.obj)) if pred else None)
            initial = ents
            if rv not in ("", "0") and opts.send_initial_events:
                start = max(start, parse_rv(rv))
        else:
            start = parse_rv(rv)
        stream = await self.store.watch(prefix, start)   # raises Compacted
        return _WatchIter(stream, initial, pred, start)


class _WatchIter:
    """Turns store events into API watch events, honouring selectors (DELETED when an object
    stops matching, ADDED when it starts)."""

    def __init__(self, stream, initial: list[Entry], pred, start: int):
        self.stream = stream
        self.initial = initial
        self.pred = pred
        self.start = start

    @property
    def progress_rev(self) -> int:
        return max(self.start, self.stream.progress_rev)

    def close(self) -> None:
        self.stream.close()

    def poke(self) -> None:
        self.stream.poke()

    async def __aiter__(self):
        for e in self.initial:
            yield ADDED, e, e.rev
        self.initial = []
        pred = self.pred
        async for ev in self.stream:
            if ev is TICK:
                yield TICK, None, 0
                continue
            if pred is None:
                yield ev.type, ev.entry, ev.rev
                continue
            if ev.type == ADDED:
                if pred(ev.entry.obj):
                    yield ADDED, ev.entry, ev.rev
            elif ev.type == DELETED:
                if ev.prev is not None and pred(ev.prev.obj) or ev.prev is None and pred(ev.entry.obj):
                    yield DELETED, ev.entry, ev.rev
            else:
                now_m = pred(ev.entry.obj)
                was_m = ev.prev is not None and pred(ev.prev.obj)
                if now_m and was_m:
                    yield MODIFIED, ev.entry, ev.rev
                elif now_m:
                    yield ADDED, ev.entry, ev.rev
                elif was_m:
                    old = orjson.loads(ev.prev.raw)
                    old["metadata"]["resourceVersion"] = str(ev.rev)
                    yield DELETED, Entry(old, orjson.dumps(old), ev.rev), ev.rev


# ---- small shared helpers -------------------------------------------------------------------

def generate_name(prefix: str) -> str:
    if len(prefix) > MAX_GENERATED_PREFIX:
        prefix = prefix[:MAX_GENERATED_PREFIX]
    return prefix + "".join(random.choice(_NAME_CHARS) for _ in range(5))


def parse_rv(rv: str) -> int:
    try:
        n = int(rv)
        if n < 0:
            raise ValueError
        return n
    except (TypeError, ValueError):
        raise errors.bad_request(f'invalid resource version: strconv.ParseUint: parsing "{rv}": '
                                 'invalid syntax') from None


def encode_continue(rev: int, start: str) -> str:
    import base64
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rev, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> dict:
    import base64
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = orjson.loads(raw)
        if d.get("v") != "meta.k8s.io/v1" or not isinstance(d.get("rv"), int):
            raise ValueError
        return d
    except Exception:
        raise errors.bad_request("continue key is not valid: invalid continue token") from None


def _json_type(v: Any) -> str:
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, list):
        return "array"
    return "object"


async def wait_forever() -> None:
    await asyncio.Event().wait()
