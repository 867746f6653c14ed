"""AS2 receipts (MDN, RFC 4130 section 7 / RFC 3798): what was asked, build, read. No I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message

from cryptography import x509

from edi_gateway.transports.as2 import cms
from edi_gateway.transports.as2.mime import (
    AS2_VERSION,
    As2Refusal,
    Reader,
    decode_body,
    entity,
    new_message_id,
    signed_entity,
    split_entity,
    split_multipart,
)

PROCESSED = "processed"
_MIC_ALGS = {
    **{name: name for name in ("sha1", "sha256", "sha384", "sha512")},
    **{"sha-1": "sha1", "sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"},
}


@dataclass(frozen=True, slots=True)
class MdnRequest:
    """What the sender asked for in Disposition-Notification-* / Receipt-Delivery-Option."""

    wanted: bool
    signed: bool
    digest: str
    """The MIC algorithm to use (``sha256``)."""
    async_url: str | None


@dataclass(frozen=True, slots=True)
class Mdn:
    """A receipt read back: whose message, what happened, which MIC the receiver computed."""

    original_message_id: str
    disposition: str
    """The whole Disposition value: ``automatic-action/MDN-sent-automatically; processed``."""
    modifier: str | None
    """None for processed; else ``error: decryption-failed``, ``warning: duplicate-document``."""
    mic: str | None
    signed: bool

    @property
    def ok(self) -> bool:
        """Processed, without error (a warning such as duplicate-document is still a receipt)."""
        return self.disposition.split(";")[-1].strip().lower().startswith(PROCESSED) and not (
            self.modifier or ""
        ).lower().startswith(("error", "failure"))


def requested(headers: Mapping[str, str] | Message) -> MdnRequest:
    """The MDN the sender's headers ask for (header names are case-insensitive in ``headers``)."""
    options = (headers.get("Disposition-Notification-Options") or "").lower()
    signed = "pkcs7-signature" in options
    digest = "sha256"
    found = re.search(r"signed-receipt-micalg\s*=\s*[a-z]+\s*,([^;]*)", options)
    if found:
        for name in (n.strip() for n in found.group(1).split(",")):
            if name in _MIC_ALGS:
                digest = _MIC_ALGS[name]
                break
    wanted = bool(headers.get("Disposition-Notification-To"))
    return MdnRequest(wanted, signed, digest, headers.get("Receipt-Delivery-Option") or None)


def build_mdn(
    *,
    original_message_id: str,
    our_id: str,
    their_id: str,
    modifier: str | None,
    mic: str | None,
    text: str,
    keys: cms.Keys | None,
    digest: str = "sha256",
) -> tuple[dict[str, str], bytes]:
    """A receipt (multipart/report), signed with ``keys`` when given: HTTP headers and body.

    ``modifier`` None means processed; else e.g. ``error: decryption-failed``.
    """
    disposition = "automatic-action/MDN-sent-automatically; processed"
    if modifier:
        disposition += f"/{modifier}"
    fields = {
        "Reporting-UA": "edi-gateway",
        "Original-Recipient": f"rfc822; {our_id}",
        "Final-Recipient": f"rfc822; {our_id}",
        "Original-Message-ID": original_message_id,
    }
    if mic and not modifier:
        fields["Received-Content-MIC"] = mic
    fields["Disposition"] = disposition
    notification = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode()
    boundary = f"----=_mdn_{uuid.uuid4().hex}"
    delimiter = f"--{boundary}".encode()
    text_part = entity(
        {"Content-Type": "text/plain; charset=utf-8", "Content-Transfer-Encoding": "8bit"},
        text.replace("\r\n", "\n").replace("\n", "\r\n").encode() + b"\r\n",
    )
    report_part = entity(
        {"Content-Type": "message/disposition-notification", "Content-Transfer-Encoding": "7bit"},
        notification,
    )
    parts = (delimiter, b"\r\n", text_part, b"\r\n", delimiter, b"\r\n", report_part)
    body = b"".join((*parts, b"\r\n", delimiter, b"--\r\n"))
    report_type = f'multipart/report; report-type=disposition-notification; boundary="{boundary}"'
    report = entity({"Content-Type": report_type}, body)
    if keys is not None:
        report = signed_entity(report, keys, digest)
    head, raw = split_entity(report)
    headers = {k: str(v) for k, v in head.items()}
    headers.update(
        {
            "AS2-Version": AS2_VERSION,
            "AS2-From": as2_name(our_id),
            "AS2-To": as2_name(their_id),
            "Message-ID": new_message_id(our_id),
        }
    )
    return headers, raw


def read_mdn(
    content_type: str, body: bytes, *, trusted: x509.Certificate | None, keys: cms.Keys
) -> Mdn:
    """Read a receipt; its signature is checked against ``trusted`` (the partner's
    certificate) when signed. Raises :class:`As2Refusal` for a bad signature or no report."""
    reader = Reader(keys, trusted, 1 << 20) if trusted is not None else None
    report = entity({"Content-Type": content_type}, body)
    head, _ = split_entity(report)
    signed = head.get_content_type() == "multipart/signed"
    if signed:
        if reader is None:
            raise As2Refusal("authentication-failed", "a signed MDN but no partner certificate")
        report, _ = reader.unwrap(report)
    head, raw = split_entity(report)
    if head.get_content_type() != "multipart/report":
        raise As2Refusal("unexpected-processing-error", f"not an MDN: {head.get_content_type()}")
    fields: dict[str, str] = {}
    for part in split_multipart(raw, str(head.get_param("boundary", header="content-type"))):
        part_head, part_raw = split_entity(part)
        if part_head.get_content_type() == "message/disposition-notification":
            fields = _fields(decode_body(part_head, part_raw).decode("utf-8", "replace"))
    disposition = fields.get("disposition", "")
    if not disposition:
        raise As2Refusal("unexpected-processing-error", "the MDN has no Disposition field")
    status = disposition.split(";")[-1].strip()
    modifier = status.split("/", 1)[1].strip() if "/" in status else None
    return Mdn(
        original_message_id=fields.get("original-message-id", ""),
        disposition=disposition,
        modifier=modifier,
        mic=fields.get("received-content-mic"),
        signed=signed,
    )


def as2_name(as2_id: str) -> str:
    """An AS2 id as a header value: quoted when it holds spaces (RFC 4130 section 6.2)."""
    return f'"{as2_id}"' if re.search(r"[\s\"]", as2_id) else as2_id


def unquote_name(value: str) -> str:
    """An AS2-From / AS2-To header value without its quotes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _fields(text: str) -> dict[str, str]:
    """``Name: value`` lines (continuations folded), names lower-cased."""
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and last:
            fields[last] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            last = name.strip().lower()
            fields[last] = value.strip()
    return fields


def original_id_of(content_type: str, body: bytes) -> str:
    """The Original-Message-ID a receipt names, found without checking it (to file it)."""
    found = re.search(rb"Original-Message-ID:[ \t]*([^\r\n]+)", body, re.IGNORECASE)
    if found is None:
        raise As2Refusal("unexpected-processing-error", f"no Original-Message-ID in {content_type}")
    return found.group(1).decode("utf-8", "replace").strip()
