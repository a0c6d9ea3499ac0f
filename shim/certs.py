"""The cluster CA, the serving certificate and client certificates, kept in the data dir.

Generated on first start (ECDSA P-256: fast to make, small), reused afterwards.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _pem_key(k) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def _pem_cert(c) -> bytes:
    return c.public_bytes(serialization.Encoding.PEM)


class PKI:
    """Paths and helpers for the certificates under <data-dir>/pki."""

    def __init__(self, data_dir: str):
        self.dir = os.path.join(data_dir, "pki")
        self.ca_crt = os.path.join(self.dir, "ca.crt")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.serving_crt = os.path.join(self.dir, "serving.crt")
        self.serving_key = os.path.join(self.dir, "serving.key")
        self.admin_crt = os.path.join(self.dir, "admin.crt")
        self.admin_key = os.path.join(self.dir, "admin.key")

    def ensure(self, hosts: list[str]) -> None:
        os.makedirs(self.dir, exist_ok=True)
        if not (os.path.exists(self.ca_crt) and os.path.exists(self.ca_key)):
            self._make_ca()
        if not os.path.exists(self.serving_crt) or not self._covers(hosts):
            self.issue(self.serving_crt, self.serving_key, "kube-apiserver", [], server_hosts=hosts)
        if not os.path.exists(self.admin_crt):
            self.issue(self.admin_crt, self.admin_key, "kubeshim-admin", ["system:masters"])

    def _make_ca(self) -> None:
        k = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeshim-ca")])
        now = dt.datetime.now(dt.timezone.utc)
        c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
             .public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5))
             .not_valid_after(now + dt.timedelta(days=3650))
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False,
                                          encipher_only=False, decipher_only=False), critical=True)
             .sign(k, hashes.SHA256()))
        _write(self.ca_key, _pem_key(k))
        _write(self.ca_crt, _pem_cert(c), 0o644)

    def _load_ca(self):
        with open(self.ca_key, "rb") as f:
            k = serialization.load_pem_private_key(f.read(), None)
        with open(self.ca_crt, "rb") as f:
            c = x509.load_pem_x509_certificate(f.read())
        return k, c

    def _covers(self, hosts: list[str]) -> bool:
        with open(self.serving_crt, "rb") as f:
            c = x509.load_pem_x509_certificate(f.read())
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | \
            set(san.get_values_for_type(x509.DNSName))
        return all(h in have for h in hosts)

    def issue(self, crt_path: str, key_path: str, cn: str, orgs: list[str],
              server_hosts: list[str] | None = None, days: int = 365) -> None:
        ca_key, ca_crt = self._load_ca()
        k = _key()
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        now = dt.datetime.now(dt.timezone.utc)
        b = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca_crt.subject)
             .public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5))
             .not_valid_after(now + dt.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if server_hosts is not None:
            sans = []
            for h in server_hosts:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    sans.append(x509.DNSName(h))
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        c = b.sign(ca_key, hashes.SHA256())
        _write(key_path, _pem_key(k))
        _write(crt_path, _pem_cert(c), 0o644)

    def ca_pem(self) -> str:
        with open(self.ca_crt) as f:
            return f.read()


def write_kubeconfig(path: str, server: str, pki: PKI, user: str = "admin",
                     cluster: str = "kubeshim") -> None:
    import base64

    import yaml

    def b64(p):
        with open(p, "rb") as f:
            return base64.b64encode(f.read()).decode()
    cfg = {"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": cluster, "cluster": {"server": server,
                                                      "certificate-authority-data": b64(pki.ca_crt)}}],
           "users": [{"name": user, "user": {"client-certificate-data": b64(pki.admin_crt),
                                             "client-key-data": b64(pki.admin_key)}}],
           "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user,
                                                      "namespace": "default"}}],
           "current-context": cluster}
    _write(path, yaml.safe_dump(cfg, sort_keys=False).encode())
