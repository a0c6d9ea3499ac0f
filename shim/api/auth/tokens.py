"""ServiceAccount tokens: the signing key, issuing (TokenRequest) and verifying JWTs.

Tokens are RS256 JWTs signed with <data-dir>/pki/sa.key (RSA 2048, created on first
start, like kubeadm's sa.key), `kid` = base64url(SHA-256(DER public key)) as the real
apiserver computes it, issuer `https://kubernetes.default.svc.cluster.local`, and the
claims the real TokenRequest puts in:

    {"aud": [...], "exp": ..., "iat": ..., "nbf": ..., "iss": ..., "jti": uuid,
     "sub": "system:serviceaccount:<ns>:<name>",
     "kubernetes.io": {"namespace": ns, "serviceaccount": {"name", "uid"},
                       "pod": {"name", "uid"}?, "node": {"name", "uid"}?, "warnafter": ...?}}

Legacy secret-based tokens (`kubernetes.io/service-account-token` secrets) carry the
old claim set with issuer `kubernetes/serviceaccount`; they are verified too.

`issue_bound_token(...)` is what the node agent calls to mount a pod's token.
"""
from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
DEFAULT_EXPIRATION = 3600            # TokenRequest default expirationSeconds
MIN_EXPIRATION = 600                 # "may not specify a duration less than 10 minutes"
POD_TOKEN_EXPIRATION = 3607          # what the ServiceAccount admission plugin asks for pods
WARN_AFTER = 3607                    # the kubelet-mounted token's warnafter (seconds)
EXTENDED_EXPIRATION = 365 * 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class TokenError(Exception):
    """A bearer token that looks like ours but does not verify (the message is logged)."""


class SigningKey:
    """The RSA key under <data-dir>/pki/sa.key (+ sa.pub)."""

    def __init__(self, pki_dir: str):
        self.key_path = os.path.join(pki_dir, "sa.key")
        self.pub_path = os.path.join(pki_dir, "sa.pub")
        os.makedirs(pki_dir, exist_ok=True)
        if os.path.exists(self.key_path):
            with open(self.key_path, "rb") as f:
                self.private = serialization.load_pem_private_key(f.read(), None)
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _write(self.key_path, self.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()), 0o600)
        self.public = self.private.public_key()
        pub_der = self.public.public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
        if not os.path.exists(self.pub_path):
            _write(self.pub_path, self.public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
        self.kid = _b64(hashlib.sha256(pub_der).digest())

    def sign(self, claims: dict) -> str:
        header = _b64(orjson.dumps({"alg": "RS256", "kid": self.kid}))
        payload = _b64(orjson.dumps(claims))
        signing_input = f"{header}.{payload}".encode()
        sig = self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{_b64(sig)}"

    def verify(self, token: str) -> dict:
        """The claims of a token signed by this key; TokenError otherwise (no claim checks)."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a JWT")
        try:
            header = orjson.loads(_unb64(parts[0]))
            claims = orjson.loads(_unb64(parts[1]))
            sig = _unb64(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            raise TokenError("malformed JWT") from None
        if not isinstance(header, dict) or header.get("alg") != "RS256" or \
                not isinstance(claims, dict):
            raise TokenError("unsupported JWT")
        try:
            self.public.verify(sig, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(),
                               hashes.SHA256())
        except InvalidSignature:
            raise TokenError("invalid signature") from None
        return claims

    def jwks(self) -> dict:
        nums = self.public.public_numbers()

        def b64int(n: int) -> str:
            return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))
        return {"keys": [{"use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
                          "n": b64int(nums.n), "e": b64int(nums.e)}]}


def _write(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def service_account_username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def bound_claims(sa: dict, *, audiences: list[str], expiration: int, now: float | None = None,
                 pod: dict | None = None, secret: dict | None = None, node: dict | None = None,
                 warn_after: int = 0, issuer: str = ISSUER) -> dict:
    """The JWT claims of a TokenRequest token for ServiceAccount `sa` (dicts as stored)."""
    now = int(time.time() if now is None else now)
    meta = sa.get("metadata", {})
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    k8s: dict = {"namespace": ns, "serviceaccount": {"name": name, "uid": meta.get("uid", "")}}
    if pod is not None:
        pm = pod.get("metadata", {})
        k8s["pod"] = {"name": pm.get("name", ""), "uid": pm.get("uid", "")}
    elif secret is not None:
        sm = secret.get("metadata", {})
        k8s["secret"] = {"name": sm.get("name", ""), "uid": sm.get("uid", "")}
    if node is not None:
        nm = node.get("metadata", {})
        k8s["node"] = {"name": nm.get("name", ""), "uid": nm.get("uid", "")}
    if warn_after:
        k8s["warnafter"] = now + warn_after
    return {"aud": list(audiences), "exp": now + expiration, "iat": now, "iss": issuer,
            "jti": str(uuid.uuid4()), "kubernetes.io": k8s, "nbf": now,
            "sub": service_account_username(ns, name)}


def legacy_claims(sa: dict, secret: dict) -> dict:
    """The claims of a legacy (secret-based, non-expiring) ServiceAccount token."""
    sm, am = secret.get("metadata", {}), sa.get("metadata", {})
    ns = sm.get("namespace", "")
    return {"iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": sm.get("name", ""),
            "kubernetes.io/serviceaccount/service-account.name": am.get("name", ""),
            "kubernetes.io/serviceaccount/service-account.uid": am.get("uid", ""),
            "sub": service_account_username(ns, am.get("name", ""))}


def issue_bound_token(key: SigningKey, sa: dict, pod: dict | None = None, *,
                      audiences: list[str] | None = None,
                      expiration: int = POD_TOKEN_EXPIRATION, node: dict | None = None,
                      now: float | None = None) -> tuple[str, int]:
    """A pod-bound token for the node agent to mount at
    /var/run/secrets/kubernetes.io/serviceaccount/token.

    `sa` and `pod` are the stored objects (the pod's uid binds the token: it stops
    authenticating once the pod is gone). Returns (token, expiration unix time). The
    kubelet asks for 3607 s and refreshes at 80 % of the lifetime; the real server
    extends such tokens to a year with a `warnafter` claim — this one does the same.
    """
    auds = list(audiences) if audiences else [ISSUER]
    warn = 0
    if pod is not None and expiration == POD_TOKEN_EXPIRATION:
        warn, expiration = WARN_AFTER, EXTENDED_EXPIRATION
    claims = bound_claims(sa, audiences=auds, expiration=expiration, now=now, pod=pod, node=node,
                          warn_after=warn)
    return key.sign(claims), claims["exp"]
