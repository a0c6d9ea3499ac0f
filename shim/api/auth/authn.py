"""Authentication: who is calling, decided the way the real apiserver's chain does.

Order: x509 client certificate (CN = user, O = groups; verified against the cluster
CA during the TLS handshake, see tls.py) → bearer token (static token file, then
ServiceAccount JWTs) → anonymous. Every authenticated user also gets the group
`system:authenticated`. A bearer token that is presented but not valid is a 401
even when anonymous access is on (the real chain fails on the error).

Anonymous (`system:anonymous`, group `system:unauthenticated`) is used only with
`--anonymous-auth`, or for the health endpoints (/healthz, /livez, /readyz and
below), like an AuthenticationConfiguration whose anonymous section is limited to
those paths: probes and readiness pollers work without credentials, everything else
answers 401 `Unauthorized`.

`Authenticator.authenticate_scope(scope)` works on a raw ASGI scope, so the
WebSocket path (exec/attach/port-forward) uses the same chain; WebSocket clients
may also send the token as the subprotocol `base64url.bearer.authorization.k8s.io.<b64>`.
"""
from __future__ import annotations

import base64
import csv
import logging
import time

from shim.api.errors import StatusError
from shim.api.requestinfo import UserInfo

from . import tokens as _tokens
from .tls import subject_fields

log = logging.getLogger("shim.auth")

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SA_GROUP = "system:serviceaccounts"
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
WS_TOKEN_PREFIX = "base64url.bearer.authorization.k8s.io."
TOKEN_CACHE_TTL = 10.0


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized")


def with_authenticated(groups: list[str]) -> list[str]:
    return groups if AUTHENTICATED in groups else groups + [AUTHENTICATED]


def anonymous_user() -> UserInfo:
    return UserInfo(ANONYMOUS, "", [UNAUTHENTICATED])


# ---- static token file ---------------------------------------------------------------------

def load_token_file(path: str) -> dict[str, UserInfo]:
    """`--token-auth-file`: CSV `token,user,uid[,"group1,group2"]` (extra columns ignored)."""
    out: dict[str, UserInfo] = {}
    with open(path, newline="") as f:
        for n, rec in enumerate(csv.reader(f), 1):
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if len(rec) < 3:
                raise ValueError(f"token file '{path}' must have at least 3 columns (token, user "
                                 f"name, user uid), found {len(rec)}")
            if rec[0] == "":
                log.warning("empty token has been found in token file '%s', record number '%d'",
                            path, n)
                continue
            if rec[0] in out:
                log.warning("duplicate token has been found in token file '%s', record number "
                            "'%d'", path, n)
            groups = rec[3].split(",") if len(rec) >= 4 and rec[3] else []
            out[rec[0]] = UserInfo(rec[1], rec[2], groups)
    return out


# ---- x509 ----------------------------------------------------------------------------------

def user_from_peercert(peer: dict | None) -> UserInfo | None:
    if not peer:
        return None
    cn, orgs = subject_fields(peer)
    if not cn:
        return None
    return UserInfo(cn, "", with_authenticated(list(orgs)))


def _scope_tls(scope) -> dict | None:
    ext = scope.get("extensions")
    return ext.get("tls") if ext else None


# ---- the chain -----------------------------------------------------------------------------

class Authenticator:
    """The App.authenticator hook: `await auth(req) -> UserInfo`, 401 on failure."""

    def __init__(self, store=None, *, signing_key: _tokens.SigningKey | None = None,
                 token_file: str | None = None, anonymous: bool = False,
                 audiences: list[str] | None = None, clock=time.time):
        self.store = store
        self.key = signing_key
        self.static_tokens = load_token_file(token_file) if token_file else {}
        self.anonymous = anonymous
        self.audiences = audiences or [_tokens.ISSUER]
        self.clock = clock
        self._cache: dict[str, tuple[UserInfo, float]] = {}

    async def __call__(self, req) -> UserInfo:
        tls = _scope_tls(req.scope)
        if tls:
            u = tls.get("kubeshim.user")
            if u is None and tls.get("kubeshim.peercert"):
                u = user_from_peercert(tls["kubeshim.peercert"])
                tls["kubeshim.user"] = u or False      # once per connection
            if u:
                return u
        token = _bearer(req.headers.get("authorization", ""))
        return await self._finish(token, req.path)

    async def authenticate_scope(self, scope) -> UserInfo:
        """The same chain on a raw ASGI scope (HTTP or WebSocket)."""
        tls = _scope_tls(scope)
        if tls and tls.get("kubeshim.peercert"):
            u = user_from_peercert(tls["kubeshim.peercert"])
            if u:
                return u
        auth = ""
        protocols = ""
        for k, v in scope.get("headers") or []:
            k = k.lower()
            if k == b"authorization":
                auth = v.decode("latin-1")
            elif k == b"sec-websocket-protocol":
                protocols += "," + v.decode("latin-1")
        token = _bearer(auth)
        if token is None and scope.get("type") == "websocket":
            token = _ws_token(protocols)
        return await self._finish(token, scope.get("path", ""))

    async def _finish(self, token: str | None, path: str) -> UserInfo:
        if token is not None:
            u = await self.user_for_token(token)
            if u is None:
                raise unauthorized()
            return u
        if self.anonymous or _is_health(path):
            return anonymous_user()
        raise unauthorized()

    async def user_for_token(self, token: str, audiences: list[str] | None = None
                             ) -> UserInfo | None:
        """The user a bearer token authenticates as, or None (TokenReview uses this too)."""
        u = self.static_tokens.get(token)
        if u is not None:
            return UserInfo(u.name, u.uid, with_authenticated(list(u.groups)), dict(u.extra))
        if self.key is None or token.count(".") != 2:
            return None
        now = self.clock()
        if audiences is None:
            hit = self._cache.get(token)
            if hit is not None and hit[1] > now:
                return hit[0]
        try:
            u, exp = await self._service_account_user(token, audiences or self.audiences, now)
        except _tokens.TokenError as e:
            log.debug("service account token refused: %s", e)
            return None
        if audiences is None:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[token] = (u, min(now + TOKEN_CACHE_TTL, exp))
        return u

    async def _service_account_user(self, token: str, audiences: list[str], now: float
                                    ) -> tuple[UserInfo, float]:
        claims = self.key.verify(token)
        if claims.get("iss") == _tokens.LEGACY_ISSUER:
            return await self._legacy_user(token, claims), now + TOKEN_CACHE_TTL
        if claims.get("iss") != _tokens.ISSUER:
            raise _tokens.TokenError("wrong issuer")
        aud = claims.get("aud")
        aud = [aud] if isinstance(aud, str) else (aud or [])
        if not set(aud) & set(audiences):
            raise _tokens.TokenError("token audiences %r is invalid for the target audiences %r"
                                     % (aud, audiences))
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp + 60 < now:
            raise _tokens.TokenError("service account token has expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, (int, float)) and nbf - 60 > now:
            raise _tokens.TokenError("service account token is not valid yet")
        k8s = claims.get("kubernetes.io") or {}
        ns = k8s.get("namespace", "")
        saref = k8s.get("serviceaccount") or {}
        sa = await self._get("serviceaccounts", ns, saref.get("name", ""))
        if sa is None or sa["metadata"].get("uid") != saref.get("uid"):
            raise _tokens.TokenError("service account missing or replaced")
        extra: dict[str, list[str]] = {}
        if claims.get("jti"):
            extra["authentication.kubernetes.io/credential-id"] = [f"JTI={claims['jti']}"]
        for kind, plural in (("pod", "pods"), ("secret", "secrets")):
            ref = k8s.get(kind)
            if ref:
                obj = await self._get(plural, ns, ref.get("name", ""))
                if obj is None or obj["metadata"].get("uid") != ref.get("uid"):
                    raise _tokens.TokenError("service account token has been invalidated")
                if kind == "pod":
                    extra["authentication.kubernetes.io/pod-name"] = [ref.get("name", "")]
                    extra["authentication.kubernetes.io/pod-uid"] = [ref.get("uid", "")]
        node = k8s.get("node")
        if node:
            extra["authentication.kubernetes.io/node-name"] = [node.get("name", "")]
            extra["authentication.kubernetes.io/node-uid"] = [node.get("uid", "")]
        name = saref.get("name", "")
        return UserInfo(_tokens.service_account_username(ns, name), saref.get("uid", ""),
                        [SA_GROUP, f"{SA_GROUP}:{ns}", AUTHENTICATED], extra), float(exp)

    async def _legacy_user(self, token: str, claims: dict) -> UserInfo:
        ns = claims.get("kubernetes.io/serviceaccount/namespace", "")
        name = claims.get("kubernetes.io/serviceaccount/service-account.name", "")
        uid = claims.get("kubernetes.io/serviceaccount/service-account.uid", "")
        secret_name = claims.get("kubernetes.io/serviceaccount/secret.name", "")
        sa = await self._get("serviceaccounts", ns, name)
        if sa is None or sa["metadata"].get("uid") != uid:
            raise _tokens.TokenError("service account missing or replaced")
        secret = await self._get("secrets", ns, secret_name)
        stored = ((secret or {}).get("data") or {}).get("token", "")
        try:
            stored = base64.b64decode(stored).decode()
        except (ValueError, UnicodeDecodeError):
            stored = ""
        if secret is None or stored != token:
            raise _tokens.TokenError("legacy token secret missing or changed")
        extra = {"authentication.kubernetes.io/credential-id": [
            f"LegacyToken={secret_name}"]} if secret_name else {}
        return UserInfo(_tokens.service_account_username(ns, name), uid,
                        [SA_GROUP, f"{SA_GROUP}:{ns}", AUTHENTICATED], extra)

    async def _get(self, plural: str, ns: str, name: str) -> dict | None:
        if self.store is None or not ns or not name:
            return None
        e = await self.store.get(f"/registry/{plural}/{ns}/{name}")
        if e is None or e.obj.get("metadata", {}).get("deletionTimestamp") and plural != "pods":
            return None
        return e.obj


def _bearer(header: str) -> str | None:
    if not header:
        return None
    parts = header.split(" ", 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    token = parts[1].strip()
    return token or None


def _ws_token(protocols: str) -> str | None:
    for p in protocols.split(","):
        p = p.strip()
        if p.startswith(WS_TOKEN_PREFIX):
            enc = p[len(WS_TOKEN_PREFIX):]
            try:
                return base64.urlsafe_b64decode(enc + "=" * (-len(enc) % 4)).decode() or None
            except (ValueError, UnicodeDecodeError):
                return None
    return None


def _is_health(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in HEALTH_PATHS)
