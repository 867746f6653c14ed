"""CMS EnvelopedData (RFC 5652) for AS2: encrypt to a partner, decrypt what partners send.

Our own on ``asn1crypto`` + ``cryptography`` primitives, because ``cryptography``'s PKCS#7
builder and decrypter only do AES-128/256-CBC and AS2 partners commonly send 3DES (pyas2lib's
default) or AES-192 (docs/adr/0015-as2-smime-on-cryptography.md, "Ciphers"). Key transport is
RSA (PKCS#1 v1.5, or RSAES-OAEP when a sender uses it). Content ciphers: AES-128/192/256-CBC
and 3DES (des-ede3-cbc) both ways; AES-GCM (RFC 5083/5084 AuthEnvelopedData) inbound. Broken
ciphers (single DES, RC2, RC4) are refused with an error naming them. Pure functions: no I/O.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from asn1crypto import cms, core  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from edi_gateway.transports.as2.cms import DIGESTS, CmsError, Keys

__all__ = ["CIPHERS", "Opened", "decrypt", "encrypt"]

_Algorithm = type[algorithms.AES] | type[TripleDES]


@dataclass(frozen=True, slots=True)
class _Cbc:
    oid_name: str
    """asn1crypto's name of the content encryption OID."""
    label: str
    """What logs and MDNs call it."""
    algorithm: _Algorithm
    key_size: int


CIPHERS: dict[str, _Cbc] = {
    "aes256": _Cbc("aes256_cbc", "aes256-cbc", algorithms.AES, 32),
    "aes192": _Cbc("aes192_cbc", "aes192-cbc", algorithms.AES, 24),
    "aes128": _Cbc("aes128_cbc", "aes128-cbc", algorithms.AES, 16),
    "3des": _Cbc("tripledes_3key", "des-ede3-cbc", TripleDES, 24),
}
"""Configuration names (``cipher:`` of an outbound AS2 connector) -> CBC content ciphers."""
_BY_OID = {c.oid_name: c for c in CIPHERS.values()}
_GCM = {"aes128_gcm": 16, "aes192_gcm": 24, "aes256_gcm": 32}
_REFUSED = {
    "des": "single DES (des-cbc, 56-bit)",
    "rc2": "RC2 (rc2-cbc)",
    "rc4": "RC4",
    "rc5": "RC5",
}
"""Ciphers partners may still send that are broken: refused by name, never tried."""
_ASK = "ask the partner to encrypt with aes256-cbc, aes128-cbc, aes192-cbc or 3des"


class _GcmParameters(core.Sequence):  # type: ignore[misc]
    """RFC 5084 GCMParameters (asn1crypto has the OIDs but not this structure)."""

    _fields: ClassVar[list[Any]] = [
        ("aes_nonce", core.OctetString),
        ("aes_icvlen", core.Integer, {"default": 12}),
    ]


@dataclass(frozen=True, slots=True)
class Opened:
    """Decrypted content and the content cipher it came in (``aes256-cbc``, ``des-ede3-cbc``)."""

    content: bytes
    cipher: str


def encrypt(content: bytes, recipient: x509.Certificate, cipher: str = "aes256") -> bytes:
    """CMS EnvelopedData (DER) of ``content`` for ``recipient``: RSA PKCS#1 v1.5 key transport
    (what every AS2 product reads), the content in ``cipher`` (a key of :data:`CIPHERS`)."""
    spec = CIPHERS.get(cipher)
    if spec is None:
        raise CmsError(f"unsupported cipher {cipher}: expected one of {', '.join(CIPHERS)}")
    public = recipient.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise CmsError("the partner certificate's key is not RSA: AS2 encryption needs RSA")
    key = os.urandom(spec.key_size)
    if spec.algorithm is TripleDES:
        key = _odd_parity(key)
    block = spec.algorithm.block_size
    iv = os.urandom(block // 8)
    padder = sym_padding.PKCS7(block).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(spec.algorithm(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    cert = asn1_x509.Certificate.load(recipient.public_bytes(serialization.Encoding.DER))
    recipient_info = cms.KeyTransRecipientInfo(
        {
            "version": "v0",
            "rid": cms.RecipientIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": cert.issuer, "serial_number": cert.serial_number},
            ),
            "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
            "encrypted_key": public.encrypt(key, padding.PKCS1v15()),
        }
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [cms.RecipientInfo(name="ktri", value=recipient_info)],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": spec.oid_name, "parameters": iv},
                "encrypted_content": encrypted,
            },
        }
    )
    info = cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped})
    return bytes(info.dump())


def decrypt(data: bytes, keys: Keys) -> Opened:
    """The content of a CMS EnvelopedData (or AES-GCM AuthEnvelopedData), DER or BER,
    addressed to our certificate. Raises :class:`CmsError` naming what is wrong: not for us,
    a cipher refused or unknown, or content that does not decrypt with our key."""
    try:
        info = cms.ContentInfo.load(data)
        kind = info["content_type"].native
        if kind not in ("enveloped_data", "authenticated_enveloped_data"):
            raise CmsError(f"expected enveloped-data, found {kind}")
        envelope = info["content"]
        authenticated = kind == "authenticated_enveloped_data"
        content_info = envelope[
            "auth_encrypted_content_info" if authenticated else "encrypted_content_info"
        ]
        algorithm = content_info["content_encryption_algorithm"]
        name = algorithm["algorithm"].native
        ciphertext = content_info["encrypted_content"].native
        recipients = list(envelope["recipient_infos"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CmsError(f"not a readable CMS enveloped-data structure: {exc}") from exc
    key_size = _key_size(name)
    if authenticated != (name in _GCM):
        raise CmsError(f"{name} does not belong in {kind} (AES-GCM needs authenticated-enveloped)")
    if ciphertext is None:
        raise CmsError("the enveloped-data carries no encrypted content (detached)")
    recipient = _our_recipient(recipients, keys.certificate)
    key = _content_key(recipient, keys, key_size)
    if name in _GCM:
        return Opened(_open_gcm(envelope, algorithm, key, ciphertext), name.replace("_", "-"))
    spec = _BY_OID[name]
    return Opened(_open_cbc(spec, algorithm["parameters"].native, key, ciphertext), spec.label)


def _key_size(name: str) -> int:
    """The content key size of an accepted cipher; a CmsError naming a refused one."""
    if name in _BY_OID:
        return _BY_OID[name].key_size
    if name in _GCM:
        return _GCM[name]
    if name in _REFUSED:
        raise CmsError(f"the message is encrypted with {_REFUSED[name]}, which is broken and not "
                       f"accepted: {_ASK}")  # fmt: skip
    raise CmsError(f"unsupported content encryption algorithm {name}: {_ASK}")


def _our_recipient(recipients: list[Any], certificate: x509.Certificate) -> Any:
    """The key-transport recipient info naming our certificate (issuer + serial, or SKI)."""
    cert = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    kinds = set()
    for info in recipients:
        kinds.add(info.name)
        if info.name != "ktri":
            continue
        rid = info.chosen["rid"]
        if rid.name == "issuer_and_serial_number":
            if (
                rid.chosen["serial_number"].native == cert.serial_number
                and rid.chosen["issuer"] == cert.issuer
            ):
                return info.chosen
        elif rid.chosen.native == cert.key_identifier:
            return info.chosen
    if "ktri" not in kinds:
        found = ", ".join(sorted(kinds)) or "none"
        raise CmsError(f"no RSA key-transport recipient (found {found}): only RSA is supported")
    raise CmsError(
        "the message is not encrypted for our certificate (serial "
        f"{cert.serial_number:x}): the partner must encrypt with our current certificate"
    )


def _content_key(recipient: Any, keys: Keys, size: int) -> bytes:
    """The content key, unwrapped with our RSA key. A key that does not unwrap is replaced by a
    random one (RFC 3218 section 2.3), so that failure and a corrupt content look the same."""
    if not isinstance(keys.private_key, rsa.RSAPrivateKey):
        raise CmsError("our private key is not RSA: RSA key transport cannot be decrypted")
    algorithm = recipient["key_encryption_algorithm"]
    name = algorithm["algorithm"].native
    scheme: padding.AsymmetricPadding
    if name == "rsaes_pkcs1v15":
        scheme = padding.PKCS1v15()
    elif name == "rsaes_oaep":
        params = algorithm["parameters"]
        digest, mgf, label = "sha1", "sha1", None
        if params.native is not None:
            digest = params["hash_algorithm"]["algorithm"].native
            mgf = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
            label = params["p_source_algorithm"]["parameters"].native or None
        if digest not in DIGESTS or mgf not in DIGESTS:
            raise CmsError(f"unsupported RSAES-OAEP digest {digest}/{mgf}")
        scheme = padding.OAEP(padding.MGF1(DIGESTS[mgf]()), DIGESTS[digest](), label)
    else:
        raise CmsError(f"unsupported key transport algorithm {name}")
    try:
        key = keys.private_key.decrypt(recipient["encrypted_key"].native, scheme)
    except ValueError:
        key = b""
    return key if len(key) == size else os.urandom(size)


_NOT_OURS = (
    "the content does not decrypt with our private key (encrypted for another key, or altered "
    "in transit)"
)


def _open_cbc(spec: _Cbc, iv: Any, key: bytes, ciphertext: bytes) -> bytes:
    block = spec.algorithm.block_size // 8
    if not isinstance(iv, bytes) or len(iv) != block or len(ciphertext) % block:
        raise CmsError(f"malformed {spec.label} parameters or content length")
    decryptor = Cipher(spec.algorithm(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(spec.algorithm.block_size).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise CmsError(_NOT_OURS) from exc


def _open_gcm(envelope: Any, algorithm: Any, key: bytes, ciphertext: bytes) -> bytes:
    """RFC 5083/5084: AES-GCM, the tag in ``mac``, the DER of authAttrs (if any) as AAD."""
    try:
        params = _GcmParameters.load(algorithm["parameters"].dump())
        nonce, icv_len = params["aes_nonce"].native, params["aes_icvlen"].native
    except (ValueError, TypeError) as exc:
        raise CmsError(f"malformed AES-GCM parameters: {exc}") from exc
    tag = envelope["mac"].native
    if not 12 <= len(tag) == icv_len <= 16:
        raise CmsError(f"malformed AES-GCM tag ({len(tag)} bytes, {icv_len} announced)")
    attrs = envelope["auth_attrs"]
    aad = b"\x31" + attrs.dump()[1:] if len(attrs) else b""
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag, len(tag))).decryptor()
    decryptor.authenticate_additional_data(aad)
    try:
        return decryptor.update(ciphertext) + decryptor.finalize()
    except InvalidTag as exc:
        raise CmsError(_NOT_OURS) from exc


def _odd_parity(key: bytes) -> bytes:
    """DES keys carry a parity bit per byte (odd parity); set it, as OpenSSL does."""
    return bytes((b & 0xFE) | (bin(b & 0xFE).count("1") % 2 == 0) for b in key)
