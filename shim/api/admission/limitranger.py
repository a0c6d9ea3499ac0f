"""LimitRanger admission (plugin/pkg/admission/limitranger) for pods on create.

Owns: filling in the Container-type defaults of every LimitRange in the namespace
(`default` -> limits, `defaultRequest` -> requests, only where the container has none,
recording `kubernetes.io/limit-ranger: LimitRanger plugin set: ...`), then enforcing min,
max and maxLimitRequestRatio per Container and per Pod with the real messages
(`pods "x" is forbidden: maximum cpu usage per Container is 1, but limit is 2`).
"""
from __future__ import annotations

from shim.api import errors
from shim.resources import quantity as q

ANNOTATION = "kubernetes.io/limit-ranger"


def _canon(v) -> str:
    try:
        return q.canonical(v)
    except q.QuantityError:
        return str(v)


def default_requirements(lr: dict) -> tuple[dict, dict]:
    """(requests, limits) defaults of the Container items of a LimitRange."""
    requests, limits = {}, {}
    for item in (lr.get("spec") or {}).get("limits") or []:
        if item.get("type") == "Container":
            requests.update(item.get("defaultRequest") or {})
            limits.update(item.get("default") or {})
    return requests, limits


def merge_container(c: dict, requests: dict, limits: dict, prefix: str, notes: list[str]) -> None:
    res = c.get("resources")
    if not isinstance(res, dict):
        res = c["resources"] = {}
    cur_l = res.get("limits") or {}
    cur_r = res.get("requests") or {}
    set_l = [k for k in limits if k not in cur_l]
    set_r = [k for k in requests if k not in cur_r]
    if set_l:
        res["limits"] = dict(cur_l, **{k: _canon(limits[k]) for k in set_l})
    if set_r:
        res["requests"] = dict(cur_r, **{k: _canon(requests[k]) for k in set_r})
    if set_r:
        notes.append(", ".join(sorted(set_r)) + f" request for {prefix} {c.get('name', '')}")
    if set_l:
        notes.append(", ".join(sorted(set_l)) + f" limit for {prefix} {c.get('name', '')}")


def mutate(lr: dict, pod: dict) -> None:
    requests, limits = default_requirements(lr)
    if not requests and not limits:
        return
    spec = pod.get("spec") or {}
    notes: list[str] = []
    for c in spec.get("containers") or []:
        merge_container(c, requests, limits, "container", notes)
    for c in spec.get("initContainers") or []:
        merge_container(c, requests, limits, "init container", notes)
    if notes:
        pod["metadata"].setdefault("annotations", {})[ANNOTATION] = \
            "LimitRanger plugin set: " + "; ".join(notes)


# ---- constraints ------------------------------------------------------------------------

def _milli(v) -> int:
    return q.milli_value(v.value if hasattr(v, "value") else v)


def _text(v) -> str:
    return str(v) if hasattr(v, "value") else _canon(v)


def min_constraint(kind: str, name: str, enforced, requests: dict, limits: dict) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    if req is None:
        return f"minimum {name} usage per {kind} is {_canon(enforced)}.  No request is specified"
    if _milli(req) < _milli(enforced):
        return f"minimum {name} usage per {kind} is {_canon(enforced)}, but request is {_text(req)}"
    if lim is not None and _milli(lim) < _milli(enforced):
        return f"minimum {name} usage per {kind} is {_canon(enforced)}, but limit is {_text(lim)}"
    return None


def max_constraint(kind: str, name: str, enforced, requests: dict, limits: dict) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    if lim is None:
        return f"maximum {name} usage per {kind} is {_canon(enforced)}.  No limit is specified"
    if _milli(lim) > _milli(enforced):
        return f"maximum {name} usage per {kind} is {_canon(enforced)}, but limit is {_text(lim)}"
    if req is not None and _milli(req) > _milli(enforced):
        return f"maximum {name} usage per {kind} is {_canon(enforced)}, but request is {_text(req)}"
    return None


def ratio_constraint(kind: str, name: str, enforced, requests: dict, limits: dict) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    if req is None or _milli(req) == 0:
        return (f"{name} max limit to request ratio per {kind} is {_canon(enforced)}, but no "
                "request is specified or request is 0")
    if lim is None or _milli(lim) == 0:
        return (f"{name} max limit to request ratio per {kind} is {_canon(enforced)}, but no "
                "limit is specified or limit is 0")
    ratio = _milli(lim) / _milli(req)
    if ratio * 1000 > _milli(enforced):
        return (f"{name} max limit to request ratio per {kind} is {_canon(enforced)}, but "
                f"provided ratio is {ratio:f}")
    return None


def _check(item: dict, kind: str, requests: dict, limits: dict) -> list[str]:
    out = []
    for field, fn in (("min", min_constraint), ("max", max_constraint),
                      ("maxLimitRequestRatio", ratio_constraint)):
        for name in sorted(item.get(field) or {}):
            msg = fn(kind, name, item[field][name], requests, limits)
            if msg:
                out.append(msg)
    return out


def validate(lr: dict, pod: dict) -> list[str]:
    from shim.controllers.resourcequota import pod_resources
    spec = pod.get("spec") or {}
    out: list[str] = []
    for item in (lr.get("spec") or {}).get("limits") or []:
        t = item.get("type")
        if t == "Container":
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                res = c.get("resources") or {}
                out += _check(item, "Container", res.get("requests") or {}, res.get("limits") or {})
        elif t == "Pod":
            bare = {"spec": {k: v for k, v in spec.items() if k != "overhead"}}
            out += _check(item, "Pod", pod_resources(bare, "requests"), pod_resources(bare, "limits"))
    return out


def aggregate(msgs: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message as is, several in brackets."""
    seen, uniq = set(), []
    for m in msgs:
        if m not in seen:
            seen.add(m)
            uniq.append(m)
    return uniq[0] if len(uniq) == 1 else "[" + ", ".join(uniq) + "]"


class LimitRanger:
    async def admit(self, attrs) -> None:
        if attrs.operation != "CREATE" or attrs.subresource or attrs.resource.kind != "Pod":
            return
        lrres = attrs.ctx.rest.registry.get("", "v1", "limitranges")
        entries, _, _, _ = await attrs.ctx.store.list(lrres.prefix(attrs.namespace))
        if not entries:
            return
        pod = attrs.obj
        for e in entries:
            mutate(e.obj, pod)
        msgs: list[str] = []
        for e in entries:
            msgs += validate(e.obj, pod)
        if msgs:
            raise errors.forbidden("pods", attrs.name, aggregate(msgs))
        from shim.resources.defaults import qos_class
        pod.setdefault("status", {})["qosClass"] = qos_class(pod)
