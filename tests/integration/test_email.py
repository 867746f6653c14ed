"""The email connectors against Dovecot and the SMTP front: what the contract suite does not say.

Several documents in one mail, a zip of XML, a sender not allowed (kept, refused with a code,
never deleted), a mail moved only after intake committed, notifications, every ``security``.
"""

from __future__ import annotations

import email
import email.policy
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.errors import ErrorCode
from edi_gateway.store.db import open_store
from edi_gateway.store.tables import Message
from edi_gateway.transports import TransportError, open_inbound, open_outbound
from edi_gateway.transports.email_in import ImapInbound
from edi_gateway.transports.email_out import SmtpOutbound
from tests import factory as f
from tests.integration.connectors.harness_email import EmailHarness, mail_partner

pytestmark = pytest.mark.integration
STRANGER = "someone@elsewhere.test"


@pytest.fixture(scope="module")
def servers() -> Iterator[EmailHarness]:
    with mail_partner() as partner:
        yield partner


@pytest.fixture
def partner(servers: EmailHarness) -> EmailHarness:
    servers.reset()
    return servers


def gateway(workdir: Path, *entries: dict[str, Any]) -> Gateway:
    settings = Settings.model_validate(
        {
            "path": workdir / "gateway.yaml",
            "intake": {"unknown_partner": "accept"},
            "connectors": list(entries),
        },
        context={"base_dir": workdir},
    )
    return Gateway(settings, open_store(f"sqlite:///{workdir / 'gateway.db'}"))


def order(n: int) -> bytes:
    return f.order(f"PO-{n:05}", f.items(1))


def messages(gw: Gateway) -> list[tuple[str, str, str | None, str]]:
    """(filename, state, error code, source_ref) of every stored message, in id order."""
    with gw.store.session() as session:
        rows = session.execute(
            select(
                Message.filename, Message.state, Message.error_code, Message.source_ref
            ).order_by(Message.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def attach(msg: Any, name: str, data: bytes, subtype: str = "xml") -> None:
    msg.add_attachment(data, maintype="application", subtype=subtype, filename=name)


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def poll(gw: Gateway, name: str) -> dict[int, str]:
    transport = open_inbound(gw.settings.connector(name), gw.policy.max_size)
    return gw.poll(transport).states


def test_each_attachment_of_a_mail_is_its_own_message(partner: EmailHarness, tmp_path: Path):
    gw = gateway(tmp_path, partner.inbound("mail"))
    msg = partner.mail(partner_address())
    for n in range(3):
        attach(msg, f"po-{n}.xml", order(n))
    attach(msg, "order.pdf", b"%PDF-1.4 not a document for us", subtype="pdf")
    partner.submit(msg)
    states = poll(gw, "mail")
    assert sorted(states.values()) == ["processed"] * 3
    stored = messages(gw)
    assert [m[0] for m in stored] == ["po-0.xml", "po-1.xml", "po-2.xml"]
    refs = [m[3] for m in stored]
    assert all(r.startswith(str(msg["Message-ID"]) + "/") for r in refs)
    assert len(set(refs)) == 3
    assert partner.waiting() == 0
    assert len(partner.mails("gateway", "Processed")) == 1
    assert poll(gw, "mail") == {}  # moved: nothing is offered again
    gw.close()


def test_zip_of_xml_and_a_zip_with_a_hostile_entry_name(partner: EmailHarness, tmp_path: Path):
    gw = gateway(tmp_path, partner.inbound("mail"))
    msg = partner.mail(partner_address())
    entries = {"a/po-1.xml": order(1), "../../etc/po-2.xml": order(2), "readme.txt": b"hi"}
    attach(msg, "orders.zip", zipped(entries), subtype="zip")
    partner.submit(msg)
    assert sorted(poll(gw, "mail").values()) == ["processed", "processed"]
    assert [m[0] for m in messages(gw)] == ["po-1.xml", "po-2.xml"]
    assert all(m[3].count("/") >= 3 for m in messages(gw))  # <id>/<digest>/<part>/<entry>
    gw.close()


def test_a_broken_zip_is_kept_and_failed_with_its_code(partner: EmailHarness, tmp_path: Path):
    gw = gateway(tmp_path, partner.inbound("mail"))
    msg = partner.mail(partner_address())
    attach(msg, "orders.zip", b"PK\x03\x04 this is no zip", subtype="zip")
    partner.submit(msg)
    assert list(poll(gw, "mail").values()) == ["failed"]
    [(name, _, code, _)] = messages(gw)
    assert (name, code) == ("orders.zip", ErrorCode.BAD_ARCHIVE)
    assert len(partner.mails("gateway", "Failed")) == 1
    gw.close()


def test_a_sender_not_allowed_is_kept_refused_and_never_deleted(
    partner: EmailHarness, tmp_path: Path
) -> None:
    gw = gateway(tmp_path, partner.inbound("mail"))
    msg = partner.mail(STRANGER, subject="Cheap orders")
    attach(msg, "po-9.xml", order(9))
    partner.submit(msg)
    assert list(poll(gw, "mail").values()) == ["failed"]
    [(name, state, code, ref)] = messages(gw)
    assert (name, state, code) == ("Cheap orders.eml", "failed", ErrorCode.SENDER_NOT_ALLOWED)
    assert ref.endswith("/mail")
    with gw.store.session() as session:
        kept = session.scalars(select(Message)).one()
        assert STRANGER in (kept.error_detail or "")
    failed = partner.mails("gateway", "Failed")
    assert len(failed) == 1 and b"po-9.xml" in failed[0]  # the mail itself, untouched
    assert partner.waiting() == 0
    gw.close()


def test_a_mail_without_documents_is_kept_as_no_document(partner: EmailHarness, tmp_path: Path):
    gw = gateway(tmp_path, partner.inbound("mail"))
    partner.submit(partner.mail(partner_address(), subject="Just saying hi"))
    assert list(poll(gw, "mail").values()) == ["failed"]
    assert messages(gw)[0][2] == ErrorCode.NO_DOCUMENT
    gw.close()


def test_a_mail_is_moved_only_after_all_its_documents_are_acknowledged(
    partner: EmailHarness, tmp_path: Path
) -> None:
    gw = gateway(tmp_path, partner.inbound("mail"))
    msg = partner.mail(partner_address())
    attach(msg, "po-1.xml", order(1))
    attach(msg, "po-2.xml", b"<not-ubl/>")
    partner.submit(msg)
    transport = open_inbound(gw.settings.connector("mail"))
    assert isinstance(transport, ImapInbound)
    first = list(transport.poll())
    assert [e.filename for e in first] == ["po-1.xml", "po-2.xml"]
    assert first[0].meta["sender"] == partner_address()
    assert first[0].meta["message_id"] == str(msg["Message-ID"])
    again = list(transport.poll())  # a crash before intake: offered again, same refs
    assert [e.source_ref for e in again] == [e.source_ref for e in first]
    assert partner.waiting() == 1
    transport.ack(again[0], ok=True)
    assert partner.waiting() == 1  # one document of the mail is still open
    transport.ack(again[0], ok=True)  # acknowledged twice: nothing happens
    transport.ack(again[1], ok=False)
    assert partner.waiting() == 0
    assert len(partner.mails("gateway", "Failed")) == 1  # one of its documents failed
    transport.ack(again[1], ok=False)  # once more, after the move: nothing happens
    transport.close()
    gw.close()


def test_flags_instead_of_folders(partner: EmailHarness, tmp_path: Path) -> None:
    gw = gateway(tmp_path, partner.inbound("mail", processed=None, failed=None))
    partner.send("po-1.xml", order(1))
    assert list(poll(gw, "mail").values()) == ["processed"]
    assert partner.waiting() == 1  # still in the inbox, marked $EdiProcessed
    assert poll(gw, "mail") == {}  # and not offered again
    gw.close()


def test_an_attachment_over_the_size_limit_is_failed_too_large(
    partner: EmailHarness, tmp_path: Path
) -> None:
    gw = gateway(tmp_path, partner.inbound("mail"))
    msg = partner.mail(partner_address())
    attach(msg, "big.xml", b"<x>" + b"a" * 5000 + b"</x>")
    partner.submit(msg)
    transport = open_inbound(gw.settings.connector("mail"), max_bytes=1000)
    states = gw.poll(transport).states
    assert list(states.values()) == ["failed"]
    assert messages(gw)[0][2] == ErrorCode.TOO_LARGE
    gw.close()


@pytest.mark.parametrize(("security", "port"), [("starttls", "imap"), ("plain", "imap")])
def test_imap_starttls_and_plain(
    partner: EmailHarness, tmp_path: Path, security: str, port: str
) -> None:
    entry = partner.inbound("mail", security=security, port=partner.servers.ports[port])
    gw = gateway(tmp_path, entry)
    partner.send("po-1.xml", order(1))
    assert list(poll(gw, "mail").values()) == ["processed"]
    gw.close()


def test_an_untrusted_certificate_is_refused(partner: EmailHarness, tmp_path: Path) -> None:
    inbound = partner.inbound("mail")
    del inbound["ca_file"]
    outbound = partner.outbound("out", security="ssl", port=partner.servers.ports["smtps"])
    del outbound["ca_file"]
    gw = gateway(tmp_path, inbound, outbound)
    with pytest.raises(TransportError) as refused:
        poll(gw, "mail")
    assert refused.value.code == ErrorCode.TLS_FAILED and not refused.value.recoverable
    with pytest.raises(TransportError) as refused_out:
        open_outbound(gw.settings.connector("out")).deliver("x.xml", b"<x/>", {})
    assert refused_out.value.code == ErrorCode.TLS_FAILED
    gw.close()


def test_bad_credentials_have_a_stable_code(partner: EmailHarness, tmp_path: Path) -> None:
    gw = gateway(tmp_path, partner.with_bad_credentials(partner.inbound("mail")))
    with pytest.raises(TransportError) as refused:
        poll(gw, "mail")
    assert refused.value.code == ErrorCode.AUTH_FAILED
    gw.close()


@pytest.mark.parametrize(("security", "port"), [("ssl", "smtps"), ("starttls", "smtp")])
def test_outbound_mail_subject_type_and_message_id(
    partner: EmailHarness, tmp_path: Path, security: str, port: str
) -> None:
    entry = partner.outbound(
        "out",
        security=security,
        port=partner.servers.ports[port],
        subject="{document_type} {document_id} for {partner}",
    )
    gw = gateway(tmp_path, entry)
    out = open_outbound(gw.settings.connector("out"))
    headers = {
        "document_type": "OrderResponse",
        "document_id": "OR-7",
        "partner": "buyer",
        "message_id": "edi-gateway-outbox-7",
        "media_type": "application/xml",
    }
    where = out.deliver("OrderResponse-OR-7.xml", b"<OrderResponse/>", headers)
    out.deliver("OrderResponse-OR-7.xml", b"<OrderResponse/>", headers)  # a retry
    assert "<edi-gateway-outbox-7@example.test>" in where
    mails = [
        email.message_from_bytes(raw, policy=email.policy.default)
        for raw in partner.mails("partner", "INBOX")
    ]
    assert len(mails) == 2
    assert {str(m["Message-ID"]) for m in mails} == {"<edi-gateway-outbox-7@example.test>"}
    first = mails[0]
    assert str(first["Subject"]) == "OrderResponse OR-7 for buyer"
    [part] = list(first.iter_attachments())  # type: ignore[attr-defined]
    assert part.get_content_type() == "application/xml"
    assert part.get_filename() == "OrderResponse-OR-7.xml"
    gw.close()


def test_operator_notification(partner: EmailHarness, tmp_path: Path) -> None:
    gw = gateway(tmp_path, partner.outbound("ops"))
    out = open_outbound(gw.settings.connector("ops"))
    assert isinstance(out, SmtpOutbound)
    out.notify("New order received: PO-1\nBcc: evil@x.test", "Order PO-1 from Buyer AB.")
    [raw] = partner.mails("partner", "INBOX")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(msg["Subject"]) == "New order received: PO-1 Bcc: evil@x.test"
    assert msg["Bcc"] is None
    assert "Order PO-1 from Buyer AB." in msg.get_content()  # type: ignore[attr-defined]
    gw.close()


def partner_address() -> str:
    return "partner@example.test"


def test_alerts_of_a_poll_go_as_one_digest(partner: EmailHarness, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from edi_gateway.alerts.digest import prepare, send_due
    from edi_gateway.alerts.events import record_outcome

    ops = partner.outbound("ops", notify=["order.received", "message.failed"])
    gw = gateway(tmp_path, partner.inbound("mail"), ops)
    prepare(gw.store, gw.settings)
    partner.send("po-1.xml", order(1))
    stranger = partner.mail(STRANGER)
    attach(stranger, "po-2.xml", order(2))
    partner.submit(stranger)
    states = poll(gw, "mail")
    assert sorted(states.values()) == ["failed", "processed"]
    moment = datetime.now(UTC)
    assert record_outcome(gw.store, gw.settings, states, moment) == 2
    assert send_due(gw.store, gw.settings, moment) == {"ops": "sent 2"}
    [raw] = partner.mails("partner", "INBOX")
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(mail["Subject"]) == (
        "edi-gateway: 2 alerts (1 new order received, 1 message failed)"
    )
    text = mail.get_content()  # type: ignore[attr-defined]
    assert "order PO-00001" in text and "SENDER_NOT_ALLOWED" in text
    assert "What to do: `edi-gateway messages show ID`" in text
    assert send_due(gw.store, gw.settings, moment) == {}  # told once
    gw.close()


def test_the_daemon_notifies_the_operators_after_each_poll(
    partner: EmailHarness, tmp_path: Path
) -> None:
    import threading

    from edi_gateway.daemon import Daemon

    partner.reset()
    ops = partner.outbound("ops", notify=["message.failed"])
    gw = gateway(tmp_path, partner.inbound("mail"), ops)
    stranger = partner.mail(STRANGER)
    attach(stranger, "po-9.xml", order(9))
    partner.submit(stranger)
    try:
        total = Daemon(gw, lambda source, outcome: None, threading.Event()).run(once=True)
    finally:
        gw.close()
    assert list(total.states.values()) == ["failed"]
    [raw] = partner.mails("partner", "INBOX")
    subject = str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
    assert subject.startswith("Message failed: message ") and "SENDER_NOT_ALLOWED" in subject


def test_a_mail_the_parser_chokes_on_is_kept_refused_and_does_not_block_the_rest(
    partner: EmailHarness, tmp_path: Path
) -> None:
    """A hostile header that makes Python's email parser raise (IndexError here) is one refused
    message: it must neither escape the transport nor stop the mails behind it every cycle."""
    import smtplib

    from tests.integration.connectors.email_server import USERS
    from tests.integration.connectors.harness_email import GATEWAY

    gw = gateway(tmp_path, partner.inbound("mail"))
    hostile = (
        f"From: {partner_address()}\r\nTo: {GATEWAY}\r\nMessage-ID: <hostile-1@example.test>\r\n"
        'Subject: bad\r\nContent-Type: multipart/mixed; boundary="xx"\r\n\r\n'
        "--xx\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        '--xx\r\nContent-Type: application/xml; name="o.xml"\r\n'
        "Content-Disposition: attachment; filename*\r\n=utf-8''o%C3%A9.xml\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nPGEvPg==\r\n--xx--\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", partner.servers.ports["smtp"], timeout=20) as smtp:
        smtp.starttls(context=partner.servers.client_tls())
        smtp.login("partner", USERS["partner"])
        smtp.sendmail(partner_address(), [GATEWAY], hostile)
    partner.send("po-1.xml", order(1))
    states = poll(gw, "mail")
    assert sorted(states.values()) == ["failed", "processed"]
    failed = [m for m in messages(gw) if m[1] == "failed"]
    assert [m[2] for m in failed] == [ErrorCode.NO_DOCUMENT]
    assert failed[0][3].endswith("/mail")
    assert len(partner.mails("gateway", "Failed")) == 1  # kept, untouched
    assert poll(gw, "mail") == {}
    gw.close()
