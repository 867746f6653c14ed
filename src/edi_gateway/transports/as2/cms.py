"""CMS (S/MIME) primitives for AS2: keys, sign, verify, compress, decompress.

Built on ``cryptography`` (signing, RSA/EC verification) and ``asn1crypto`` (reading
SignedData, which ``cryptography`` cannot verify, and building RFC 3274 CompressedData); see
docs/adr/0015-as2-smime-on-cryptography.md. Encryption and decryption are in
:mod:`.enveloped`. Pure functions over bytes: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import cms  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

__all__ = [
    "CmsError",
    "Keys",
    "compress",
    "decompress",
    "load_certificate",
    "load_keys",
    "sign",
    "verify",
]

DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
"""asn1crypto / hashlib digest names -> cryptography hash classes."""


class CmsError(Exception):
    """A CMS structure could not be built or read (bad signature, wrong key, garbage)."""


@dataclass(frozen=True, slots=True)
class Keys:
    """Our own certificate and its private key."""

    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def load_certificate(pem_or_der: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes."""
    try:
        if pem_or_der.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(pem_or_der)
        return x509.load_der_x509_certificate(pem_or_der)
    except ValueError as exc:
        raise CmsError(f"not an X.509 certificate (PEM or DER expected): {exc}") from exc


def load_keys(certificate: bytes, private_key_pem: bytes) -> Keys:
    """Our certificate and its unencrypted PEM private key (RSA or EC), checked to match."""
    cert = load_certificate(certificate)
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CmsError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CmsError("the private key must be RSA or EC")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise CmsError("the private key does not belong to the certificate")
    return Keys(cert, key)


def sign(content: bytes, keys: Keys, digest: str = "sha256") -> bytes:
    """A detached CMS SignedData (DER) over ``content`` exactly as given (no canonicalisation).

    Built with ``asn1crypto`` because ``cryptography``'s builder refuses SHA-1, which old AS2
    partners still ask for (``signed-receipt-micalg=optional, sha1``). Signed attributes:
    content type, signing time, message digest; the signer's certificate is included.
    """
    name = digest.replace("-", "").lower()
    algorithm = _hash(name)()
    cert = asn1_x509.Certificate.load(keys.certificate.public_bytes(serialization.Encoding.DER))
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": _now()})]}),
        cms.CMSAttribute(
            {"type": "message_digest", "values": [hashlib.new(name, content).digest()]}
        ),
    ]
    signed_attrs = cms.CMSAttributes(sorted(attributes, key=lambda a: a.dump()))  # DER SET OF
    to_sign = signed_attrs.dump()
    if isinstance(keys.private_key, rsa.RSAPrivateKey):
        signature = keys.private_key.sign(to_sign, padding.PKCS1v15(), algorithm)
        signature_algorithm = "rsassa_pkcs1v15"
    else:
        signature = keys.private_key.sign(to_sign, ec.ECDSA(algorithm))
        signature_algorithm = f"{name}_ecdsa"
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": cert.issuer, "serial_number": cert.serial_number},
            ),
            "digest_algorithm": {"algorithm": name},
            "signed_attrs": signed_attrs,
            "signature_algorithm": {"algorithm": signature_algorithm},
            "signature": signature,
        }
    )
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": name}],
            "encap_content_info": {"content_type": "data"},
            "certificates": [cert],
            "signer_infos": [signer],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


def verify(signature: bytes, content: bytes, trusted: x509.Certificate) -> str:
    """Check a detached SignedData over ``content`` against the partner's certificate.

    Returns the digest algorithm the signer used (``sha256``); raises :class:`CmsError` when
    the structure is not SignedData, the content digest differs or the signature is not the
    certificate holder's.
    """
    try:
        info = cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            raise CmsError(f"expected signed-data, found {info['content_type'].native}")
        signers = list(info["content"]["signer_infos"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CmsError(f"the signature is not a readable CMS structure: {exc}") from exc
    failures = []
    for signer in signers:
        try:
            return _verify_signer(signer, content, trusted)
        except CmsError as exc:
            failures.append(str(exc))
    raise CmsError("; ".join(failures) or "the signature has no signer")


def _verify_signer(signer: Any, content: bytes, trusted: x509.Certificate) -> str:
    digest = signer["digest_algorithm"]["algorithm"].native
    if digest not in DIGESTS:
        raise CmsError(f"unsupported digest algorithm {digest}")
    signed_bytes = content
    attrs = signer["signed_attrs"]
    if len(attrs):
        wanted = next(
            (a["values"][0].native for a in attrs if a["type"].native == "message_digest"), None
        )
        if wanted is None or not hmac.compare_digest(wanted, hashlib.new(digest, content).digest()):
            raise CmsError("the content does not match the signed digest (altered in transit)")
        signed_bytes = b"\x31" + attrs.dump()[1:]  # [0] IMPLICIT -> SET OF, as signed
    value = signer["signature"].native
    hash_algorithm = _hash(digest)()
    key = trusted.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if signer["signature_algorithm"].signature_algo == "rsassa_pss":
                pss = padding.PSS(padding.MGF1(hash_algorithm), padding.PSS.AUTO)
                key.verify(value, signed_bytes, pss, hash_algorithm)
            else:
                key.verify(value, signed_bytes, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(value, signed_bytes, ec.ECDSA(hash_algorithm))
        else:
            raise CmsError("the partner certificate's key is neither RSA nor EC")
    except InvalidSignature as exc:
        raise CmsError("the signature was not made with the partner's certificate") from exc
    return str(digest)


def compress(content: bytes) -> bytes:
    """RFC 3274 CompressedData (zlib) of ``content``, DER."""
    info = cms.ContentInfo(
        {
            "content_type": "compressed_data",
            "content": cms.CompressedData(
                {
                    "version": "v0",
                    "compression_algorithm": {"algorithm": "zlib"},
                    "encap_content_info": {
                        "content_type": "data",
                        "content": zlib.compress(content),
                    },
                }
            ),
        }
    )
    return bytes(info.dump())


def decompress(compressed: bytes, max_bytes: int) -> bytes:
    """The content of an RFC 3274 CompressedData; more than ``max_bytes`` inflated is refused."""
    try:
        info = cms.ContentInfo.load(compressed)
        if info["content_type"].native != "compressed_data":
            raise CmsError(f"expected compressed-data, found {info['content_type'].native}")
        data = info["content"]["encap_content_info"]["content"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise CmsError(f"not a CMS compressed-data structure: {exc}") from exc
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data or b"", max_bytes + 1)
    except zlib.error as exc:
        raise CmsError(f"the compressed content is corrupt: {exc}") from exc
    if len(out) > max_bytes:
        raise CmsError(f"the compressed content inflates beyond {max_bytes} bytes")
    return out


def _hash(name: str) -> type[hashes.HashAlgorithm]:
    found = DIGESTS.get(name.replace("-", "").lower())
    if found is None:
        raise CmsError(f"unsupported digest {name}: expected one of {', '.join(DIGESTS)}")
    return found


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
