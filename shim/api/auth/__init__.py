"""Authentication and authorization for kubeshim (the real apiserver's authn/authz chain).

Modules:
  tls.py        uvicorn protocols that put the TLS client certificate into the ASGI scope
  authn.py      the authentication chain (x509, static token file, ServiceAccount JWTs, anonymous)
  tokens.py     the ServiceAccount signing key, TokenRequest claims, `issue_bound_token`
  authz.py      `--authorization-mode` chain: AlwaysAllow, AlwaysDeny, ABAC, RBAC; refusal wording
  rbac.py       rule matching, the RBAC index kept current by watches, covers / escalation text
  escalation.py admission plugin: escalation prevention on role and binding writes
  legacy.py     admission plugin: fills legacy service-account-token secrets (token controller)
  policy.py     the default ClusterRoles and ClusterRoleBindings created at bootstrap
  reviews.py    access/rules/self-subject/token reviews and serviceaccounts/token

`install(app, rest, pki_dir, settings)` wires all of it into a server and returns the
background tasks (the RBAC watches) for the caller to cancel at shutdown.
"""
from __future__ import annotations

import asyncio

from .authn import Authenticator
from .authz import Authorizer, load_abac, parse_modes
from .escalation import EscalationCheck
from .legacy import LegacyTokenSecrets
from .rbac import RBACIndex
from .reviews import Reviews
from .tokens import ISSUER, SigningKey, issue_bound_token

__all__ = ["install", "Authenticator", "Authorizer", "RBACIndex", "SigningKey",
           "issue_bound_token", "ISSUER"]


class AuthState:
    """What install() built (kept on the server for the node agent and tests)."""

    def __init__(self, authenticator, authorizer, index, key, reviews, tasks):
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.rbac = index
        self.signing_key = key
        self.reviews = reviews
        self.tasks: list[asyncio.Task] = tasks


async def install(app, rest, pki_dir: str, settings) -> AuthState:
    """Authenticator + authorizer hooks, review handlers, escalation admission, default
    RBAC policy, and the RBAC index (loaded and watching)."""
    from .policy import ensure_default_policy
    key = SigningKey(pki_dir)
    authn = Authenticator(rest.store, signing_key=key,
                          token_file=getattr(settings, "token_auth_file", "") or None,
                          anonymous=bool(getattr(settings, "anonymous_auth", False)),
                          clock=rest.clock)
    modes = parse_modes(getattr(settings, "authorization_mode", "RBAC") or "RBAC")
    abac = None
    if "ABAC" in modes:
        path = getattr(settings, "authorization_policy_file", "")
        if not path:
            raise ValueError("authorization-mode ABAC's authorization policy file not passed")
        abac = load_abac(path)
    index = RBACIndex()
    authz = Authorizer(modes, rbac=index, abac=abac)
    reviews = Reviews(authn, authz, key, clock=rest.clock)
    reviews.install(app)
    rest.admission.append(EscalationCheck(index, authz))
    rest.admission.append(LegacyTokenSecrets(key))
    rest.extras["sa_signing_key"] = key
    rest.extras["authenticator"] = authn
    app.authenticator = authn
    app.authorizer = authz
    app.extra_routes.setdefault("/.well-known/openid-configuration", _oidc_discovery(key))
    app.extra_routes.setdefault("/openid/v1/jwks", _jwks(key))
    await ensure_default_policy(rest)
    tasks = await index.start(rest.store)
    return AuthState(authn, authz, index, key, reviews, tasks)


def _oidc_discovery(key: SigningKey):
    import orjson
    body = orjson.dumps({"issuer": ISSUER, "jwks_uri": f"{ISSUER}/openid/v1/jwks",
                         "response_types_supported": ["id_token"],
                         "subject_types_supported": ["public"],
                         "id_token_signing_alg_values_supported": ["RS256"]})

    async def handler(req, send):
        from shim.api.app import respond
        await respond(send, 200, body)
    return handler


def _jwks(key: SigningKey):
    import orjson
    body = orjson.dumps(key.jwks())

    async def handler(req, send):
        from shim.api.app import respond
        await respond(send, 200, body, content_type=b"application/jwk-set+json")
    return handler
