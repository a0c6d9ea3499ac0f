"""Subresources with their own shapes: replicationcontrollers/scale, pods/binding,
pods/eviction, namespaces/finalize, and the node-agent streams' fallback answers."""
from __future__ import annotations

import orjson

from . import codec, errors
from .rest import DeleteOptions, copy_obj, parse_rv


async def scale(app, req, send, res, ns, name, extra):
    m = req.method
    if m == "GET":
        entry = await app.rest.get(res, ns, name)
        return await _send_scale(req, send, res, entry.obj)
    if m not in ("PUT", "PATCH"):
        raise app.method_not_allowed()
    opts = app.write_options(req)
    for _attempt in range(5):
        cur = await app.rest.get(res, ns, name)
        current_scale = res.to_scale(cur.obj)
        body = await req.body()
        if m == "PUT":
            new_scale = codec.decode_body(req.header("content-type"), body, "Scale")
            if not isinstance(new_scale, dict):
                raise errors.bad_request("the object provided is unrecognized (must be of type Scale)")
            k, av = new_scale.get("kind"), new_scale.get("apiVersion")
            if (k and k != "Scale") or (av and av != "autoscaling/v1"):
                raise errors.bad_request(f"the object provided is unrecognized (must be of type "
                                         f"Scale): {k}")
        else:
            from . import patch as patching
            new_scale = patching.apply_patch(codec.media_type(req.header("content-type")),
                                             current_scale, body,
                                             "io.k8s.api.autoscaling.v1.Scale")
        meta = new_scale.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the "
                                     f"name on the URL ({name})")
        rv = meta.get("resourceVersion")
        if rv and parse_rv(rv) != cur.rev:
            raise errors.conflict(res.plural, name, group=res.group)
        replicas = (new_scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise errors.bad_request('Scale in version "v1" cannot be handled as a Scale: '
                                     'json: cannot unmarshal into Go struct field '
                                     'ScaleSpec.spec.replicas of type int32')
        if replicas < 0:
            raise errors.invalid("Scale", name, [errors.invalid_value(
                "spec.replicas", replicas, "must be greater than or equal to 0")], "autoscaling")
        rc = copy_obj(cur)
        rc.setdefault("spec", {})["replicas"] = replicas
        rc["metadata"]["resourceVersion"] = str(cur.rev)
        try:
            entry, _ = await app.rest.update(res, ns, name, rc, opts)
        except errors.StatusError as e:
            if e.code == 409 and not rv:
                continue
            raise
        return await _send_scale(req, send, res, entry.obj)
    raise errors.conflict(res.plural, name, group=res.group)


async def _send_scale(req, send, res, rc):
    s = res.to_scale(rc)
    t = codec.wants(req.header("accept"), "Table")
    if t is not None:
        body = codec.table("Scale", [s], api_version=codec.table_version(t),
                           include=codec.include_object(req.query))
        return await _json(send, 200, body)
    await _json(send, 200, s)


async def _json(send, code, obj):
    from .app import respond
    await respond(send, code, orjson.dumps(obj))


def _success(code: int) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}


async def binding(app, req, send, res, ns, name, extra):
    if req.method != "POST":
        raise app.method_not_allowed()
    body = await req.body()
    b = codec.decode_body(req.header("content-type"), body, "Binding")
    if not isinstance(b, dict) or (b.get("kind") and b["kind"] != "Binding"):
        raise errors.bad_request("the object provided is unrecognized (must be of type Binding)")
    target = (b.get("target") or {})
    node = target.get("name", "")
    if not node:
        raise errors.invalid("Binding", name, [errors.required("target.name")])
    bmeta = b.get("metadata") or {}
    if bmeta.get("name") and bmeta["name"] != name:
        raise errors.bad_request(f"the name of the object ({bmeta['name']}) does not match the "
                                 f"name on the URL ({name})")
    opts = app.write_options(req)
    for _attempt in range(5):
        cur = await app.rest.get(res, ns, name)
        pod = copy_obj(cur)
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods/binding", name, f"pod {name} is being deleted, cannot be "
                                  "assigned to a host")
        if pod.get("spec", {}).get("nodeName"):
            raise errors.conflict("pods/binding", name, f'pod {name} is already assigned to node '
                                  f'"{pod["spec"]["nodeName"]}"')
        pod["spec"]["nodeName"] = node
        for k, v in (bmeta.get("annotations") or {}).items():
            pod["metadata"].setdefault("annotations", {})[k] = v
        st = pod.setdefault("status", {})
        conds = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
        from .rest import now_rfc3339
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": now_rfc3339(app.rest.clock())})
        st["conditions"] = conds
        if opts.dry_run:
            break
        try:
            await app.rest.store.update(res.key(ns, name), pod, cur.rev)
            break
        except Exception as e:
            from shim.store.base import RevisionConflict
            if isinstance(e, RevisionConflict):
                continue
            raise
    await _json(send, 201, _success(201))


async def eviction(app, req, send, res, ns, name, extra):
    if req.method != "POST":
        raise app.method_not_allowed()
    body = await req.body()
    ev = codec.decode_body(req.header("content-type"), body, "Eviction") if body else {}
    d = (ev or {}).get("deleteOptions") or {}
    dopts = DeleteOptions(grace_period_seconds=d.get("gracePeriodSeconds"),
                          propagation_policy=d.get("propagationPolicy"),
                          precondition_uid=(d.get("preconditions") or {}).get("uid"),
                          precondition_rv=(d.get("preconditions") or {}).get("resourceVersion"),
                          dry_run="All" in (d.get("dryRun") or []))
    if req.query.get("dryRun"):           # CreateOptions.dryRun propagates to the deletion
        dopts.dry_run = dopts.dry_run or app.write_options(req).dry_run
    await app.rest.delete(res, ns, name, dopts)
    await _json(send, 201, _success(201))


async def finalize(app, req, send, res, ns, name, extra):
    if req.method != "PUT":
        raise app.method_not_allowed()
    obj, _ = await app.read_object(req, res)
    if (obj.get("metadata") or {}).get("name", name) != name:
        raise errors.bad_request(f"the name of the object ({obj['metadata']['name']}) does not "
                                 f"match the name on the URL ({name})")
    dry_run = app.write_options(req).dry_run
    entry = await finalize_namespace(app.rest, res, name, obj, dry_run=dry_run)
    await app.send_object(req, send, res, entry.raw)


async def finalize_namespace(rest, res, name: str, body: dict, dry_run: bool = False):
    """namespaces/finalize: take spec.finalizers; a terminating namespace with none left goes."""
    from shim.store.base import Entry
    cur = await rest.get(res, None, name)
    new = res.prepare_for_finalize(body, cur.obj)
    if new == cur.obj:
        return cur
    if dry_run:
        return Entry(new, orjson.dumps(new), cur.rev)
    m = new["metadata"]
    if m.get("deletionTimestamp") and not new["spec"].get("finalizers") and not m.get("finalizers"):
        e = await rest.store.delete(res.key(None, name), cur.rev)
        return e
    e = await rest.store.update(res.key(None, name), new, cur.rev)
    return e if isinstance(e, Entry) else cur


async def node_stream_unavailable(app, req, send, res, ns, name, extra):
    """log / exec / attach / portforward / proxy when no node agent serves the pod."""
    entry = await app.rest.get(res, ns, name)
    pod = entry.obj
    if not pod.get("spec", {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    raise errors.StatusError(503, "ServiceUnavailable",
                             f'no node agent is serving node "{pod["spec"]["nodeName"]}"')


def install(app) -> None:
    h = app.subresource_handlers
    h[("replicationcontrollers", "scale")] = scale
    h[("pods", "binding")] = binding
    h[("pods", "eviction")] = eviction
    h[("namespaces", "finalize")] = finalize
    for sub in ("log", "exec", "attach", "portforward", "proxy"):
        h.setdefault(("pods", sub), node_stream_unavailable)
