"""Certificates made at run time for the TLS tests (trustme; no key is committed)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_FORMATS = {
    "pkcs8": serialization.PrivateFormat.PKCS8,
    "traditional": serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1 (RSA), SEC1 (EC)
}


@dataclass
class CertFiles:
    cert: Path
    key: Path
    ca: Path

    def args(self) -> list[str]:
        return ["--certfile", str(self.cert), "--keyfile", str(self.key)]


def write_leaf(
    ca: trustme.CA,
    where: Path,
    *names: str,
    key_type: trustme.KeyType = trustme.KeyType.ECDSA,
    key_format: str = "pkcs8",
    password: bytes | None = None,
    not_after: datetime.datetime | None = None,
    stem: str = "server",
) -> CertFiles:
    """Issues a certificate for `names` and writes its chain, its key (in `key_format`,
    encrypted with `password` if given) and the CA's certificate under `where`."""
    kw = {"not_after": not_after} if not_after else {}
    leaf = ca.issue_cert(*(names or ("127.0.0.1", "localhost")), key_type=key_type, **kw)
    where.mkdir(parents=True, exist_ok=True)
    cert = where / f"{stem}.crt"
    key = where / f"{stem}.key"
    cafile = where / "ca.crt"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    private = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    fmt = serialization.PrivateFormat.PKCS8 if password else KEY_FORMATS[key_format]
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, fmt, encryption))
    ca.cert_pem.write_to_path(str(cafile))
    return CertFiles(cert, key, cafile)


def is_rsa(path: Path) -> bool:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    return isinstance(key, rsa.RSAPrivateKey)
