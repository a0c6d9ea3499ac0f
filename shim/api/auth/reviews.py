"""The answers of the create-only review kinds and of serviceaccounts/token:

- authorization.k8s.io/v1 SelfSubjectAccessReview (`kubectl auth can-i`),
  SelfSubjectRulesReview (`kubectl auth can-i --list`), SubjectAccessReview,
  LocalSubjectAccessReview;
- authentication.k8s.io/v1 SelfSubjectReview (`kubectl auth whoami`), TokenReview;
- the TokenRequest subresource (`kubectl create token`).

Nothing is stored: each handler decodes the request (JSON or protobuf), validates it
with the real messages, computes the status, and answers 201 with the request echoed
plus its status, as the real registry does.
"""
from __future__ import annotations

import datetime as _dt

import orjson

from shim.api import errors
from shim.api.requestinfo import RequestInfo, UserInfo

from . import tokens as _tokens
from .authn import Authenticator
from .authz import Authorizer


def _respond(send, code: int, obj: dict):
    from shim.api.app import respond
    return respond(send, code, orjson.dumps(obj))


async def _read(app, req, res) -> dict:
    obj, _ = await app.read_object(req, res)
    k, av = obj.get("kind"), obj.get("apiVersion")
    if (k and k != res.kind) or (av and av != res.api_version):
        raise errors.bad_request(f"the object provided is unrecognized (must be of type "
                                 f"{res.kind}): {k} in version \"{(av or '').split('/')[-1]}\" "
                                 f"cannot be handled as a {res.kind}")
    obj["kind"], obj["apiVersion"] = res.kind, res.api_version
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    meta = {k: v for k, v in meta.items() if v is not None}
    meta["creationTimestamp"] = None
    obj["metadata"] = meta
    return obj


def user_info_dict(u: UserInfo) -> dict:
    d: dict = {"username": u.name}
    if u.uid:
        d["uid"] = u.uid
    if u.groups:
        d["groups"] = list(u.groups)
    if u.extra:
        d["extra"] = {k: list(v) for k, v in u.extra.items()}
    return d


def attributes(spec: dict, ns_default: str = "") -> RequestInfo:
    ra = spec.get("resourceAttributes")
    if isinstance(ra, dict):
        return RequestInfo(True, "", ra.get("verb", ""), ra.get("group", ""), ra.get("version", ""),
                           ra.get("namespace", "") or ns_default, ra.get("resource", ""),
                           ra.get("subresource", ""), ra.get("name", ""))
    nra = spec.get("nonResourceAttributes") or {}
    return RequestInfo(False, nra.get("path", ""), nra.get("verb", ""))


def _spec_errors(spec: dict) -> list:
    ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if ra is not None and nra is not None:
        return [errors.invalid_value("spec.nonResourceAttributes", nra,
                                     "cannot be specified in combination with resourceAttributes")]
    if ra is None and nra is None:
        return [errors.invalid_value("spec.resourceAttributes", None,
                                     "exactly one of nonResourceAttributes or resourceAttributes "
                                     "must be specified")]
    return []


def _status(allowed: bool, reason: str) -> dict:
    st: dict = {"allowed": allowed}
    if reason:
        st["reason"] = reason
    return st


class Reviews:
    """The handlers, bound to the server's authenticator, authorizer and signing key."""

    def __init__(self, authenticator: Authenticator, authorizer: Authorizer | None,
                 signing_key: _tokens.SigningKey, clock=None):
        import time
        self.authn = authenticator
        self.authz = authorizer
        self.key = signing_key
        self.clock = clock or time.time

    def install(self, app) -> None:
        h = app.create_handlers
        h[("authorization.k8s.io", "selfsubjectaccessreviews")] = self.self_subject_access_review
        h[("authorization.k8s.io", "selfsubjectrulesreviews")] = self.self_subject_rules_review
        h[("authorization.k8s.io", "subjectaccessreviews")] = self.subject_access_review
        h[("authorization.k8s.io", "localsubjectaccessreviews")] = self.local_subject_access_review
        h[("authentication.k8s.io", "selfsubjectreviews")] = self.self_subject_review
        h[("authentication.k8s.io", "tokenreviews")] = self.token_review
        app.subresource_handlers[("serviceaccounts", "token")] = self.token_request

    async def _decide(self, user: UserInfo, info: RequestInfo) -> tuple[bool, str]:
        if self.authz is None:
            return True, ""
        return await self.authz.decide(user, info)

    # ---- authorization.k8s.io ----------------------------------------------------------
    async def self_subject_access_review(self, app, req, send, res, ns):
        obj = await _read(app, req, res)
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        errs = _spec_errors(spec)
        if errs:
            raise errors.invalid(res.kind, "", errs, res.group)
        allowed, reason = await self._decide(req.user or UserInfo(""), attributes(spec))
        obj["status"] = _status(allowed, reason)
        await _respond(send, 201, obj)

    async def subject_access_review(self, app, req, send, res, ns):
        obj = await _read(app, req, res)
        await self._subject_access(obj, res, send, "")

    async def local_subject_access_review(self, app, req, send, res, ns):
        obj = await _read(app, req, res)
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        meta_ns = obj["metadata"].get("namespace") or ns
        if meta_ns != ns:
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        obj["metadata"]["namespace"] = ns
        errs = []
        if spec.get("nonResourceAttributes") is not None:
            errs.append(errors.invalid_value("spec.nonResourceAttributes",
                                             spec["nonResourceAttributes"],
                                             "disallowed on this kind of request"))
        ra = spec.get("resourceAttributes")
        if isinstance(ra, dict) and ra.get("namespace", ns) != ns:
            errs.append(errors.invalid_value("spec.resourceAttributes.namespace",
                                             ra.get("namespace"), "must match metadata.namespace"))
        if errs:
            raise errors.invalid(res.kind, "", errs, res.group)
        await self._subject_access(obj, res, send, ns)

    async def _subject_access(self, obj: dict, res, send, ns: str):
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        errs = _spec_errors(spec)
        if not spec.get("user") and not spec.get("groups"):
            errs.append(errors.invalid_value("spec.user", spec.get("user", ""),
                                             "at least one of user or group must be specified"))
        if errs:
            raise errors.invalid(res.kind, "", errs, res.group)
        user = UserInfo(spec.get("user", ""), spec.get("uid", ""), list(spec.get("groups") or []),
                        dict(spec.get("extra") or {}))
        allowed, reason = await self._decide(user, attributes(spec, ns))
        obj["status"] = _status(allowed, reason)
        await _respond(send, 201, obj)

    async def self_subject_rules_review(self, app, req, send, res, ns):
        obj = await _read(app, req, res)
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        if not spec.get("namespace"):
            raise errors.invalid(res.kind, "", [errors.required("spec.namespace")], res.group)
        user = req.user or UserInfo("")
        if self.authz is None:
            from .rbac import Rule
            rules = ([Rule(("*",), ("*",), ("*",))], [Rule(("*",), non_resource_urls=("*",))],
                     False, "")
        else:
            rules = self.authz.rules_for(user, spec["namespace"])
        res_rules, non_rules, incomplete, err = rules
        st: dict = {"resourceRules": [_resource_rule(r) for r in res_rules],
                    "nonResourceRules": [{"verbs": list(r.verbs),
                                          "nonResourceURLs": list(r.non_resource_urls)}
                                         for r in non_rules],
                    "incomplete": incomplete}
        if err:
            st["evaluationError"] = err
        obj["status"] = st
        await _respond(send, 201, obj)

    # ---- authentication.k8s.io ---------------------------------------------------------
    async def self_subject_review(self, app, req, send, res, ns):
        obj = await _read(app, req, res)
        obj["status"] = {"userInfo": user_info_dict(req.user or UserInfo(""))}
        await _respond(send, 201, obj)

    async def token_review(self, app, req, send, res, ns):
        obj = await _read(app, req, res)
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        token = spec.get("token") or ""
        if not token:
            raise errors.invalid(res.kind, "", [errors.required("spec.token")], res.group)
        auds = list(spec.get("audiences") or [])
        u = await self.authn.user_for_token(token, auds or None)
        if u is None:
            obj["status"] = {"user": {}, "error": "[invalid bearer token, token lookup failed]"}
        else:
            obj["status"] = {"authenticated": True, "user": user_info_dict(u),
                             "audiences": auds or list(self.authn.audiences)}
        await _respond(send, 201, obj)

    # ---- serviceaccounts/token ---------------------------------------------------------
    async def token_request(self, app, req, send, res, ns, name, extra):
        if req.method != "POST":
            raise app.method_not_allowed()
        from shim.api import codec
        body = await req.body()
        tr = codec.decode_body(req.header("content-type"), body, "TokenRequest")
        if not isinstance(tr, dict) or (tr.get("kind") and tr["kind"] != "TokenRequest"):
            raise errors.bad_request("the object provided is unrecognized (must be of type "
                                     "TokenRequest)")
        sa = (await app.rest.get(res, ns, name)).obj
        tr = await self.issue_token_request(app.rest, sa, tr)
        await _respond(send, 201, tr)

    async def issue_token_request(self, rest, sa: dict, tr: dict) -> dict:
        """Fill a TokenRequest's status for ServiceAccount `sa` (validates and defaults)."""
        name = sa["metadata"]["name"]
        ns = sa["metadata"]["namespace"]
        spec = tr.get("spec") if isinstance(tr.get("spec"), dict) else {}
        exp = spec.get("expirationSeconds")
        exp = _tokens.DEFAULT_EXPIRATION if exp is None else exp
        errs = []
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise errors.bad_request("TokenRequest in version \"v1\" cannot be handled as a "
                                     "TokenRequest: expirationSeconds must be an integer")
        if exp < _tokens.MIN_EXPIRATION:
            errs.append(errors.invalid_value("spec.expirationSeconds", exp,
                                             "may not specify a duration less than 10 minutes"))
        if exp > 1 << 32:
            errs.append(errors.invalid_value("spec.expirationSeconds", exp,
                                             "may not specify a duration larger than 2^32 seconds"))
        if errs:
            raise errors.invalid("TokenRequest", name, errs, "authentication.k8s.io")
        auds = list(spec.get("audiences") or []) or list(self.authn.audiences)
        pod = secret = None
        ref = spec.get("boundObjectRef")
        if isinstance(ref, dict) and ref:
            pod, secret = await self._bound_object(rest, ns, ref)
        claims = _tokens.bound_claims(sa, audiences=auds, expiration=exp, now=self.clock(),
                                      pod=pod, secret=secret)
        token = self.key.sign(claims)
        meta = tr.get("metadata") if isinstance(tr.get("metadata"), dict) else {}
        meta = {k: v for k, v in meta.items() if v is not None}
        meta.update({"name": name, "namespace": ns, "creationTimestamp": None})
        spec = dict(spec, audiences=auds, expirationSeconds=exp)
        spec.setdefault("boundObjectRef", None)
        expires = _dt.datetime.fromtimestamp(claims["exp"], _dt.timezone.utc)
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": meta, "spec": spec,
                "status": {"token": token,
                           "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}

    async def _bound_object(self, rest, ns: str, ref: dict):
        kind = ref.get("kind", "")
        plural = {"Pod": "pods", "Secret": "secrets"}.get(kind)
        if plural is None:
            raise errors.bad_request(f'cannot bind token for object of type {kind}' if kind else
                                     "cannot bind token to object without kind")
        r = rest.registry.get("", "v1", plural)
        obj = (await rest.get(r, ns, ref.get("name", ""))).obj
        uid = ref.get("uid")
        if uid and uid != obj["metadata"].get("uid"):
            raise errors.conflict(plural, ref.get("name", ""),
                                  f"the UID in the bound object reference ({uid}) does not match "
                                  f"the UID in record. The object might have been deleted and then "
                                  f"recreated")
        return (obj, None) if kind == "Pod" else (None, obj)


def _resource_rule(r) -> dict:
    d = {"verbs": list(r.verbs), "apiGroups": list(r.api_groups), "resources": list(r.resources)}
    if r.resource_names:
        d["resourceNames"] = list(r.resource_names)
    return d
