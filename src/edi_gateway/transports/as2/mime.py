"""AS2 messages (RFC 4130) as MIME: build one, and read one layer by layer. No I/O.

A message is the payload's MIME entity, optionally compressed (RFC 5402, before signing),
signed (multipart/signed, detached CMS) and encrypted (application/pkcs7-mime enveloped-data),
in that order. Reading undoes any nesting of these layers. Signatures cover the signed part's
bytes exactly as they travelled, so parts are cut from the raw bytes, never re-serialised.
Storage look-ups (which partner, which certificate) are passed in by the caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import quopri
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import PurePosixPath

from cryptography import x509

from edi_gateway.transports.as2 import cms, enveloped

AS2_VERSION = "1.2"
MIC_NAMES = {"sha1": "sha1", "sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}
_EOL = b"\r\n"
_ENCRYPTED = ("enveloped-data", "authenveloped-data")
"""smime-type values of encrypted content (RFC 8551: AES-GCM is authEnveloped-data)."""


class As2Refusal(Exception):
    """A message the receiver refuses; ``modifier`` is the MDN disposition's error modifier
    (``decryption-failed``, ``authentication-failed``, ``unknown-trading-partner`` ...)."""

    def __init__(self, modifier: str, message: str) -> None:
        super().__init__(message)
        self.modifier = modifier
        self.message = message


@dataclass(frozen=True, slots=True)
class Partner:
    """What the protocol needs to know of a trading partner."""

    as2_id: str
    certificate: x509.Certificate
    require_signed: bool = True
    require_encrypted: bool = True


@dataclass(frozen=True, slots=True)
class Received:
    """A message read, decrypted, verified and decompressed."""

    payload: bytes
    filename: str
    content_type: str
    signed: bool
    encrypted: bool
    compressed: bool
    mic: str
    """``base64-digest, sha-256``: what the MDN's Received-Content-MIC returns."""
    cipher: str | None = None
    """The content cipher it was encrypted with (``aes256-cbc``, ``des-ede3-cbc``)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready to POST: HTTP headers, body and the MIC the MDN must return."""

    headers: dict[str, str]
    body: bytes
    mic: str


def entity(headers: Mapping[str, str], body: bytes) -> bytes:
    """A MIME entity: CRLF header lines, an empty line, the body."""
    lines = b"".join(f"{k}: {v}".encode() + _EOL for k, v in headers.items())
    return lines + _EOL + body


def split_entity(raw: bytes) -> tuple[Message, bytes]:
    """An entity's parsed headers and its raw body (CRLF or LF line ends)."""
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, body = raw[: crlf + 2], raw[crlf + 4 :]
    elif lf >= 0:
        head, body = raw[: lf + 1], raw[lf + 2 :]
    else:
        head, body = raw, b""
    return BytesHeaderParser().parsebytes(head), body


def mic_of(content: bytes, digest: str) -> str:
    """The Received-Content-MIC value of ``content``: ``base64, sha-256``."""
    value = base64.b64encode(hashlib.new(digest, content).digest()).decode()
    return f"{value}, {MIC_NAMES.get(digest, digest)}"


def safe_filename(name: str | None, fallback: str) -> str:
    """A file name that cannot leave a folder: last path part, no NUL or control characters,
    at most 200 bytes; ``fallback`` when nothing is left."""
    cleaned = re.sub(r"[\x00-\x1f\x7f]", "", (name or "").replace("\\", "/"))
    base = PurePosixPath(cleaned).name.strip()
    if base in ("", ".", ".."):
        base = fallback
    while len(base.encode()) > 200:
        base = base[:-1]
    return base


def new_message_id(as2_id: str) -> str:
    """A fresh ``<...@as2-id>`` Message-ID."""
    domain = re.sub(r"[^A-Za-z0-9.-]", "-", as2_id) or "edi-gateway"
    return f"<{uuid.uuid4().hex}@{domain}>"


def build_message(
    payload: bytes,
    *,
    filename: str,
    content_type: str,
    keys: cms.Keys | None,
    recipient: x509.Certificate | None,
    compress: bool = False,
    digest: str = "sha256",
    cipher: str = "aes256",
) -> Outgoing:
    """Payload -> [compressed] -> [signed with ``keys``] -> [encrypted for ``recipient``].

    Returns the body with its Content-Type (in ``headers``); the AS2 routing headers are the
    caller's. ``keys`` None: unsigned; ``recipient`` None: not encrypted.
    """
    part = entity(
        {
            "Content-Type": content_type,
            "Content-Transfer-Encoding": "binary",
            "Content-Disposition": f'attachment; filename="{safe_filename(filename, "payload")}"',
        },
        payload,
    )
    mic = mic_of(part, digest)
    if compress:
        part = entity(_smime_headers("compressed-data", "smime.p7z"), cms.compress(part))
    if keys is not None:
        mic = mic_of(part, digest)
        part = signed_entity(part, keys, digest)
    if recipient is not None:
        part = entity(
            _smime_headers("enveloped-data", "smime.p7m"),
            enveloped.encrypt(part, recipient, cipher),
        )
    headers, body = split_entity(part)
    return Outgoing({k: str(v) for k, v in headers.items()}, body, mic)


def signed_entity(part: bytes, keys: cms.Keys, digest: str) -> bytes:
    """``part`` in a multipart/signed entity with a detached CMS signature over its bytes."""
    boundary = f"----=_sig_{uuid.uuid4().hex}"
    signature = base64.encodebytes(cms.sign(part, keys, digest)).replace(b"\n", _EOL)
    sig_part = entity(
        {
            "Content-Type": 'application/pkcs7-signature; name="smime.p7s"',
            "Content-Transfer-Encoding": "base64",
            "Content-Disposition": 'attachment; filename="smime.p7s"',
        },
        signature,
    )
    delimiter = f"--{boundary}".encode()
    body = (
        delimiter + _EOL + part + _EOL + delimiter + _EOL + sig_part + _EOL + delimiter + b"--\r\n"
    )
    micalg = MIC_NAMES.get(digest, digest)
    content_type = (
        f'multipart/signed; protocol="application/pkcs7-signature"; micalg={micalg}; '
        f'boundary="{boundary}"'
    )
    return entity({"MIME-Version": "1.0", "Content-Type": content_type}, body)


def read_message(
    content_type: str,
    body: bytes,
    *,
    keys: cms.Keys,
    partner: Partner,
    digest: str = "sha256",
    max_bytes: int,
) -> Received:
    """Undo encryption, signature and compression; check what ``partner`` requires.

    ``digest`` is the MIC algorithm the sender asked for (the signer's own when signed).
    Raises :class:`As2Refusal` with the MDN modifier that tells the sender what went wrong.
    """
    reader = Reader(keys, partner.certificate, max_bytes)
    part, mic_content = reader.unwrap(entity({"Content-Type": content_type}, body))
    if partner.require_encrypted and not reader.encrypted:
        raise As2Refusal("insufficient-message-security", "the partner must encrypt messages")
    if partner.require_signed and reader.signer_digest is None:
        raise As2Refusal("insufficient-message-security", "the partner must sign messages")
    headers, raw = split_entity(part)
    payload = decode_body(headers, raw)
    name = safe_filename(headers.get_filename(), "payload.xml")
    return Received(
        payload=payload,
        filename=name,
        content_type=headers.get_content_type(),
        signed=reader.signer_digest is not None,
        encrypted=reader.encrypted,
        compressed=reader.compressed,
        mic=mic_of(mic_content, reader.signer_digest or digest),
        cipher=reader.cipher,
    )


class Reader:
    """Peels S/MIME layers off an entity, remembering what it found."""

    def __init__(self, keys: cms.Keys, trusted: x509.Certificate, max_bytes: int) -> None:
        self.keys, self.trusted, self.max_bytes = keys, trusted, max_bytes
        self.encrypted = self.compressed = False
        self.signer_digest: str | None = None
        self.cipher: str | None = None

    def unwrap(self, part: bytes, mic_content: bytes | None = None) -> tuple[bytes, bytes]:
        """(innermost entity, the bytes the MIC covers), after at most a few layers."""
        for _ in range(6):
            headers, raw = split_entity(part)
            kind = headers.get_content_type()
            smime = str(headers.get_param("smime-type", "", header="content-type")).lower()
            if kind in ("application/pkcs7-mime", "application/x-pkcs7-mime") and (
                smime in _ENCRYPTED or (smime == "" and not self.encrypted)
            ):
                part = self._decrypt(decode_body(headers, raw))
            elif kind in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
                part = self._decompress(decode_body(headers, raw))
            elif kind == "multipart/signed":
                part = self._verify(headers, raw)
                mic_content = part
            else:
                return part, part if mic_content is None else mic_content
        raise As2Refusal("unexpected-processing-error", "too many nested S/MIME layers")

    def _decrypt(self, der: bytes) -> bytes:
        try:
            self.encrypted = True
            opened = enveloped.decrypt(der, self.keys)
        except cms.CmsError as exc:
            raise As2Refusal("decryption-failed", str(exc)) from exc
        self.cipher = opened.cipher
        return opened.content

    def _decompress(self, der: bytes) -> bytes:
        try:
            self.compressed = True
            return cms.decompress(der, self.max_bytes)
        except cms.CmsError as exc:
            raise As2Refusal("decompression-failed", str(exc)) from exc

    def _verify(self, headers: Message, raw: bytes) -> bytes:
        boundary = headers.get_param("boundary", header="content-type")
        if not isinstance(boundary, str) or not boundary:
            raise As2Refusal("authentication-failed", "multipart/signed without a boundary")
        parts = split_multipart(raw, boundary)
        if len(parts) != 2:
            raise As2Refusal("authentication-failed", f"multipart/signed with {len(parts)} parts")
        sig_headers, sig_raw = split_entity(parts[1])
        try:
            self.signer_digest = cms.verify(
                decode_body(sig_headers, sig_raw), parts[0], self.trusted
            )
        except cms.CmsError as exc:
            raise As2Refusal("authentication-failed", str(exc)) from exc
        return parts[0]


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The raw bytes of each part of a multipart body (the CRLF before a delimiter is the
    delimiter's, RFC 2046), preamble and epilogue dropped."""
    delimiter = b"--" + boundary.encode()
    lines = re.split(rb"(?:^|\r?\n)" + re.escape(delimiter), body)
    parts: list[bytes] = []
    for chunk in lines[1:]:
        if chunk.startswith(b"--"):
            break
        newline = chunk.find(b"\n")
        if newline < 0:
            break
        parts.append(chunk[newline + 1 :])
    return parts


def decode_body(headers: Message, raw: bytes) -> bytes:
    """A body with its Content-Transfer-Encoding undone."""
    encoding = str(headers.get("Content-Transfer-Encoding", "binary")).strip().lower()
    if encoding == "base64":
        try:
            return base64.b64decode(b"".join(raw.split()), validate=True)
        except binascii.Error as exc:
            raise As2Refusal("unexpected-processing-error", f"bad base64 body: {exc}") from exc
    if encoding == "quoted-printable":
        return quopri.decodestring(raw)
    return raw


def _smime_headers(smime_type: str, name: str) -> dict[str, str]:
    return {
        "Content-Type": f'application/pkcs7-mime; smime-type={smime_type}; name="{name}"',
        "Content-Transfer-Encoding": "binary",
        "Content-Disposition": f'attachment; filename="{name}"',
    }


FindPartner = Callable[[str], Partner | None]
"""AS2-From -> the partner, or None when unknown."""
