"""Taking a mail apart (no server): senders, zip limits, stable refs; the connector models."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from edi_gateway.config import Connector
from edi_gateway.errors import ErrorCode
from edi_gateway.transports.email_parts import MAX_ZIP_ENTRIES, read_mail, sender_allowed
from edi_gateway.transports.email_spec import ImapConnector, SmtpConnector

ALLOWED = ["orders@buyer.example", "@trusted.example"]


def mail(sender: str = "orders@buyer.example", message_id: str | None = "<m1@buyer.example>"):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "gateway@example.test"
    msg["Subject"] = "Order"
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content("see attached")
    return msg


def zipped(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def with_zip(data: bytes) -> bytes:
    msg = mail()
    msg.add_attachment(data, maintype="application", subtype="zip", filename="docs.zip")
    return msg.as_bytes()


@pytest.mark.parametrize(
    ("sender", "allowed"),
    [
        ("orders@buyer.example", True),
        ("ORDERS@Buyer.Example", True),
        ("anyone@trusted.example", True),
        ("orders@sub.trusted.example", False),
        ("orders@buyer.example.evil", False),
        ("", False),
    ],
)
def test_sender_allowed(sender: str, allowed: bool) -> None:
    assert sender_allowed(sender, ALLOWED) is allowed


def test_refs_are_stable_and_fall_back_to_a_digest_without_message_id() -> None:
    msg = mail(message_id=None)
    msg.add_attachment(b"<a/>", maintype="application", subtype="xml", filename="a.xml")
    raw = msg.as_bytes()
    first = read_mail(raw, allowed=ALLOWED, max_bytes=None)
    second = read_mail(raw, allowed=ALLOWED, max_bytes=None)
    assert first.key == second.key and first.key.startswith("sha256:")
    assert [p.ref for p in first.pieces] == [p.ref for p in second.pieces]


def test_one_message_id_on_two_different_mails_gives_two_keys() -> None:
    one, two = mail(), mail()
    one.add_attachment(b"<a/>", maintype="application", subtype="xml", filename="a.xml")
    two.add_attachment(b"<b/>", maintype="application", subtype="xml", filename="a.xml")
    key_one = read_mail(one.as_bytes(), allowed=ALLOWED, max_bytes=None).key
    key_two = read_mail(two.as_bytes(), allowed=ALLOWED, max_bytes=None).key
    assert key_one != key_two
    assert key_one.startswith("<m1@buyer.example>/")


def test_several_from_addresses_are_not_allowed() -> None:
    msg = mail(sender="orders@buyer.example, other@evil.example")
    msg.add_attachment(b"<a/>", maintype="application", subtype="xml", filename="a.xml")
    [piece] = read_mail(msg.as_bytes(), allowed=ALLOWED, max_bytes=None).pieces
    assert piece.refusal is not None and piece.refusal[0] == ErrorCode.SENDER_NOT_ALLOWED


def test_zip_with_too_many_entries_is_refused() -> None:
    data = zipped({f"{n}.xml": b"<a/>" for n in range(MAX_ZIP_ENTRIES + 1)})
    [piece] = read_mail(with_zip(data), allowed=ALLOWED, max_bytes=None).pieces
    assert piece.refusal is not None and piece.refusal[0] == ErrorCode.BAD_ARCHIVE
    assert piece.payload == data  # the zip is kept as it came


def test_zip_bomb_is_refused_by_what_it_unpacks_to() -> None:
    data = zipped({"a.xml": b"<a>" + b" " * 200_000 + b"</a>", "b.xml": b"<b/>"})
    assert len(data) < 5_000
    [piece] = read_mail(with_zip(data), allowed=ALLOWED, max_bytes=100_000).pieces
    assert piece.refusal is not None and "limit" in piece.refusal[1]


def test_zip_total_over_the_limit_is_refused() -> None:
    data = zipped({f"{n}.xml": b"<a>" + b" " * 30_000 + b"</a>" for n in range(5)})
    [piece] = read_mail(with_zip(data), allowed=ALLOWED, max_bytes=100_000).pieces
    assert piece.refusal is not None and piece.refusal[0] == ErrorCode.BAD_ARCHIVE


def test_zip_entries_become_base_names_only() -> None:
    data = zipped({"../../etc/passwd.xml": b"<a/>", "/abs/b.xml": b"<b/>", "c\\d.xml": b"<c/>"})
    pieces = read_mail(with_zip(data), allowed=ALLOWED, max_bytes=None).pieces
    assert [p.filename for p in pieces] == ["passwd.xml", "b.xml", "d.xml"]
    assert [p.ref for p in pieces] == ["2/0", "2/1", "2/2"]


def test_a_hostile_attachment_name_is_sanitised() -> None:
    msg = mail()
    msg.add_attachment(b"<a/>", maintype="application", subtype="xml", filename="../../x.xml")
    [piece] = read_mail(msg.as_bytes(), allowed=ALLOWED, max_bytes=None).pieces
    assert "/" not in piece.filename and piece.filename.endswith("x.xml")


IMAP: dict[str, Any] = {
    "name": "mail",
    "type": "imap",
    "direction": "in",
    "host": "imap.example",
    "username": "gw",
    "password": {"env": "IMAP_PASSWORD"},
    "allowed_senders": ["Orders@Buyer.example", "@trusted.example"],
}
SMTP: dict[str, Any] = {
    "name": "out",
    "type": "smtp",
    "direction": "out",
    "host": "smtp.example",
    "from_address": "gw@example.test",
    "to": ["orders@buyer.example"],
}


def test_connector_models_and_default_ports() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(Connector)
    imap = adapter.validate_python(IMAP)
    assert isinstance(imap, ImapConnector) and imap.server_port == 993
    assert imap.allowed_senders == ["orders@buyer.example", "@trusted.example"]
    smtp = adapter.validate_python({**SMTP, "security": "ssl"})
    assert isinstance(smtp, SmtpConnector) and smtp.server_port == 465


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({**IMAP, "allowed_senders": []}, "at least 1"),
        ({k: v for k, v in IMAP.items() if k != "allowed_senders"}, "allowed_senders"),
        ({**IMAP, "allowed_senders": ["*"]}, "expected an address"),
        ({**IMAP, "direction": "out"}, "expected direction: in"),
        ({**IMAP, "password": "inline"}, "password"),
        ({**IMAP, "processed": "Bearbeitet/Übersicht"}, "printable ASCII"),
        ({**SMTP, "subject": "{order}"}, "expected only"),
        ({**SMTP, "username": "gw"}, "both username and password"),
        ({**SMTP, "to": ["not an address"]}, "expected an address"),
    ],
)
def test_connector_models_refuse_with_what_is_expected(
    entry: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        TypeAdapter(Connector).validate_python(entry)
