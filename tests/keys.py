"""Keys and self-signed certificates made at test time with ``cryptography`` (never committed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from edi_gateway.transports.as2 import cms


def identity(
    name: str, curve: ec.EllipticCurve | None = None, *, days: float = 1, start_days: float = 0
) -> cms.Keys:
    """A key (RSA 2048, or EC on ``curve``) and a self-signed certificate ``CN=name`` valid
    from ``start_days`` (minus a minute) to ``days`` from now."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if curve is None
        else ec.generate_private_key(curve)
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=start_days) - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cms.Keys(cert, key)


def write_identity(keys: cms.Keys, folder: Path, name: str) -> tuple[Path, Path]:
    """``keys`` as PEM files ``folder/name.key`` (unencrypted PKCS#8) and ``folder/name.pem``."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    key.write_bytes(
        keys.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(keys.certificate.public_bytes(serialization.Encoding.PEM))
    return key, cert
