"""Legacy ServiceAccount token secrets: what the real token controller writes into a Secret of
type `kubernetes.io/service-account-token`, done here as a mutating admission step on create.

For a new secret whose annotation `kubernetes.io/service-account.name` names an existing
ServiceAccount, the secret gets the annotation `kubernetes.io/service-account.uid` and the
data keys `token` (a non-expiring legacy JWT, see tokens.legacy_claims), `ca.crt` and
`namespace`. Such tokens authenticate while the secret and the ServiceAccount exist.
"""
from __future__ import annotations

import base64

from .tokens import SigningKey, legacy_claims

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class LegacyTokenSecrets:
    def __init__(self, key: SigningKey):
        self.key = key

    async def admit(self, attrs) -> None:
        if attrs.operation != "CREATE" or attrs.resource.plural != "secrets" or \
                attrs.resource.group != "":
            return
        secret = attrs.obj or {}
        if secret.get("type") != SA_TOKEN_TYPE or (secret.get("data") or {}).get("token"):
            return
        meta = secret.setdefault("metadata", {})
        ann = meta.get("annotations") or {}
        sa_name = ann.get(NAME_ANNOTATION, "")
        entry = await attrs.ctx.store.get(f"/registry/serviceaccounts/{attrs.namespace}/{sa_name}")
        if entry is None:
            return
        sa = entry.obj
        uid = sa["metadata"].get("uid", "")
        if ann.get(UID_ANNOTATION) and ann[UID_ANNOTATION] != uid:
            return
        meta.setdefault("annotations", {})[UID_ANNOTATION] = uid
        token = self.key.sign(legacy_claims(sa, secret))
        data = secret.setdefault("data", {})
        data["token"] = _b64(token)
        data["namespace"] = _b64(attrs.namespace or "")
        ca = attrs.ctx.rest.extras.get("ca_pem")
        if ca:
            data["ca.crt"] = _b64(ca)
