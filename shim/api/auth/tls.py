"""The TLS client certificate of a connection, carried into the ASGI scope.

uvicorn does not put the peer certificate into the scope. The uvicorn protocol
classes below (HTTP on httptools, WebSocket on websockets-sansio) read it once per
connection from `transport.get_extra_info("ssl_object")` and add the ASGI "tls"
extension to every scope of that connection:

    scope["extensions"]["tls"] = {
        "client_cert_chain": [PEM of the peer certificate] (empty without one),
        "client_cert_name": RFC 4514-ish subject, or None,
        "client_cert_error": None,
        "tls_version": ..., "cipher_suite": ...,
        "kubeshim.peercert": the verified certificate as ssl.getpeercert() returns it,
    }

The server's SSL context asks for client certificates with the cluster CA
(CERT_OPTIONAL), so a certificate present here has already been verified against
that CA, its validity period and the client-auth purpose by the handshake.
"""
from __future__ import annotations

import ssl

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

_NO_TLS: dict = {}


def tls_extension(transport) -> dict:
    """The ASGI tls extension dict for a transport ({} on plain TCP)."""
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    if sslobj is None:
        return _NO_TLS
    peer = None
    der = None
    try:
        peer = sslobj.getpeercert()
        der = sslobj.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        pass
    cipher = sslobj.cipher()
    ext = {"client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
           "client_cert_name": subject_string(peer) if peer else None,
           "client_cert_error": None,
           "tls_version": sslobj.version(),
           "cipher_suite": cipher[0] if cipher else None,
           "kubeshim.peercert": peer or None}
    return ext


def subject_string(peer: dict) -> str:
    parts = []
    for rdn in peer.get("subject", ()):
        for k, v in rdn:
            parts.append(f"{k}={v}")
    return ",".join(reversed(parts))


def subject_fields(peer: dict | None) -> tuple[str, list[str]]:
    """(common name, organizations) of a getpeercert() dict."""
    cn = ""
    orgs: list[str] = []
    for rdn in (peer or {}).get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
            elif k == "organizationName":
                orgs.append(v)
    return cn, orgs


class TLSHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol + the tls scope extension."""

    _tls_ext: dict = _NO_TLS

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls_ext = tls_extension(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls_ext:
            self.scope["extensions"] = {"tls": self._tls_ext}


class TLSWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol + the tls scope extension."""

    _tls_ext: dict = _NO_TLS

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls_ext = tls_extension(transport)

    def handle_connect(self, event) -> None:  # the scope is built here; the app runs later
        super().handle_connect(event)
        if self._tls_ext and getattr(self, "scope", None) is not None:
            self.scope.setdefault("extensions", {})["tls"] = self._tls_ext
