"""AS2 and "AS2-like" plain HTTP against an independent partner (OpenSSL's command line).

The partner builds and reads every S/MIME structure with ``openssl`` (tests/integration/
connectors/as2_peer.py); the gateway's side is the real transport on a real socket.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.daemon import make_receive
from edi_gateway.errors import ErrorCode
from edi_gateway.store.db import open_store
from edi_gateway.store.tables import Message
from edi_gateway.transports import TransportError, open_outbound, open_server
from edi_gateway.transports.as2_spec import As2Connector
from edi_gateway.transports.http_spec import HttpConnector
from tests import factory as f
from tests.integration.connectors.as2_peer import OpensslError, make_identity
from tests.integration.connectors.harness_as2 import As2Harness, post_as2

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def partner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[As2Harness]:
    harness = As2Harness(tmp_path_factory.mktemp("as2"))
    yield harness
    harness.close()


def make_gateway(workdir: Path, *entries: dict[str, Any]) -> Gateway:
    settings = Settings.model_validate(
        {
            "path": workdir / "gateway.yaml",
            "partners": [f.buyer_partner(), f.seller_partner()],
            "connectors": list(entries),
        },
        context={"base_dir": workdir},
    )
    return Gateway(settings, open_store(f"sqlite:///{workdir / 'gateway.db'}"))


class Served:
    """A gateway with its AS2 (or HTTP) endpoint listening."""

    def __init__(self, workdir: Path, *entries: dict[str, Any]) -> None:
        self.gw = make_gateway(workdir, *entries)
        conn = self.gw.settings.connector(entries[0]["name"])
        receive = make_receive(self.gw, conn.name, threading.Lock())
        self.server: Any = open_server(conn, receive, self.gw.policy.max_size)
        self.url = self.server.url(conn.url_path)

    def stored(self) -> int:
        with self.gw.store.session() as session:
            return int(session.scalar(select(func.count()).select_from(Message)) or 0)

    def close(self) -> None:
        self.server.close()
        self.gw.close()


@pytest.fixture
def served(partner: As2Harness, tmp_path: Path) -> Iterator[Served]:
    partner.reset()
    entry = partner.inbound("as2-in")
    entry["max_size_mb"] = 0.05
    running = Served(tmp_path, entry)
    yield running
    running.close()


def order(n: int) -> bytes:
    return f.order(f"PO-AS2-{n}", f.items(2))


def message_id() -> str:
    return f"<{uuid.uuid4().hex}@partner>"


def push(partner: As2Harness, served: Served, payload: bytes, mid: str, **build: Any) -> dict:
    content_type, body = partner.peer.message(payload, "order.xml", **build)
    status, headers, answer = post_as2(served.url, content_type, body, mid, partner.peer)
    assert status == 200, answer
    return partner.peer.verify_mdn(headers["Content-Type"], answer)


def test_signed_encrypted_compressed_message_is_taken_and_the_signed_mdn_verifies(
    partner: As2Harness, served: Served
) -> None:
    mid = message_id()
    fields = push(partner, served, order(1), mid, compress=True)
    assert fields["disposition"].endswith("; processed")
    assert fields["original-message-id"] == mid
    digest = base64.b64encode(hashlib.sha256(partner.peer.last_signed).digest()).decode()
    assert fields["received-content-mic"] == f"{digest}, sha-256"
    with served.gw.store.session() as session:
        row = session.execute(select(Message.state, Message.source, Message.source_ref)).one()
    assert tuple(row) == ("processed", "as2:as2-in", mid)


def test_an_unsigned_mdn_when_no_signed_receipt_is_asked(
    partner: As2Harness, served: Served
) -> None:
    content_type, body = partner.peer.message(order(3), "o.xml")
    status, headers, answer = post_as2(
        served.url, content_type, body, message_id(), partner.peer, signed_mdn=False
    )
    assert status == 200 and headers["Content-Type"].startswith("multipart/report")
    fields = partner.peer.verify_mdn(headers["Content-Type"], answer, signed=False)
    assert fields["disposition"].endswith("; processed")


@pytest.mark.parametrize(
    ("case", "modifier"),
    [
        ("unknown", "unknown-trading-partner"),
        ("bad-signature", "authentication-failed"),
        ("undecryptable", "decryption-failed"),
        ("unsigned", "insufficient-message-security"),
        ("unencrypted", "insufficient-message-security"),
    ],
)
def test_refusals_answer_with_their_disposition_and_store_nothing(
    partner: As2Harness, served: Served, case: str, modifier: str, caplog: Any
) -> None:
    peer = partner.peer
    build: dict[str, Any] = {}
    if case == "bad-signature":
        build["signer"] = make_identity(peer.work / "mallory", "mallory")
    if case == "undecryptable":
        build["recipient"] = partner.stranger_cert
    if case in ("unsigned", "unencrypted"):
        build["sign" if case == "unsigned" else "encrypt"] = False
    content_type, body = peer.message(order(4), "o.xml", **build)
    extra = {"AS2-From": "nobody"} if case == "unknown" else {}
    with caplog.at_level(logging.WARNING):
        status, headers, answer = post_as2(
            served.url, content_type, body, message_id(), peer, extra=extra
        )
    assert status == 200
    fields = peer.verify_mdn(headers["Content-Type"], answer)  # signed even when refusing
    assert fields["disposition"].endswith(f"processed/error: {modifier}")
    assert served.stored() == 0
    assert any("refused" in r.getMessage() for r in caplog.records)


def test_duplicate_message_id_is_answered_duplicate_and_stored_once(
    partner: As2Harness, served: Served
) -> None:
    mid = message_id()
    assert push(partner, served, order(5), mid)["disposition"].endswith("; processed")
    again = push(partner, served, order(5), mid)
    assert again["disposition"].endswith("processed/warning: duplicate-document")
    assert served.stored() == 1


def test_over_the_size_limit_is_refused_unread(
    partner: As2Harness, served: Served, caplog: Any
) -> None:
    big = order(6).replace(b"</Order>", b"<!--" + b"x" * 80_000 + b"--></Order>")
    content_type, body = partner.peer.message(big, "big.xml")
    with caplog.at_level(logging.WARNING):
        status, _, _ = post_as2(served.url, content_type, body, message_id(), partner.peer)
    assert status == 413
    assert served.stored() == 0
    assert any("over the limit" in r.getMessage() for r in caplog.records)


# -- ciphers: what partners really send, and what the gateway sends on request -------------


@pytest.mark.parametrize(
    ("cipher", "label"),
    [
        (("-des3",), "des-ede3-cbc"),  # pyas2lib's default, common among AS2 partners
        (("-des3", "-stream"), "des-ede3-cbc"),  # BER: indefinite lengths, chunked content
        (("-aes128",), "aes128-cbc"),
        (("-aes192",), "aes192-cbc"),
        (("-aes256", "-keyopt", "rsa_padding_mode:oaep"), "aes256-cbc"),  # RSAES-OAEP key
        (("-aes-256-gcm",), "aes256-gcm"),  # RFC 5083/5084 AuthEnvelopedData
    ],
    ids=["3des", "3des-ber", "aes128", "aes192", "aes256-oaep", "aes256-gcm"],
)
def test_inbound_ciphers_partners_use_are_decrypted(
    partner: As2Harness, served: Served, cipher: tuple[str, ...], label: str, caplog: Any
) -> None:
    mid = message_id()
    with caplog.at_level(logging.INFO, logger="edi_gateway.transports.as2.server"):
        fields = push(partner, served, order(20), mid, cipher=cipher)
    assert fields["disposition"].endswith("; processed")
    assert served.stored() == 1
    took = [r.getMessage() for r in caplog.records if " took " in r.getMessage()]
    assert took and took[0].endswith(f"; {label})"), took


LEGACY = ("-provider", "legacy", "-provider", "default")
"""OpenSSL 3 keeps broken ciphers in its legacy provider (Debian's libssl3 ships it)."""


def broken_cipher_message(peer: Any, option: str, oid: str) -> tuple[str, bytes]:
    """A real message encrypted by openssl with a broken cipher; without OpenSSL's legacy
    provider, an AES-128 message whose content-encryption OID is rewritten to ``oid`` (the
    gateway refuses by algorithm before decrypting anything, so the refusal is the same)."""
    try:
        return peer.message(order(21), "o.xml", cipher=(*LEGACY, option))  # type: ignore[no-any-return]
    except OpensslError:
        from asn1crypto import cms, core

        content_type, der = peer.message(order(21), "o.xml", cipher=("-aes128",))
        info = cms.ContentInfo.load(der)
        encrypted = info["content"]["encrypted_content_info"]
        parameters = {  # what each algorithm's AlgorithmIdentifier carries (RFC 3370)
            "1.2.840.113549.3.2": {"rc2_parameter_version": 160, "iv": b"\0" * 8},  # RC2-40
            "1.3.14.3.2.7": b"\0" * 8,  # DES: the IV
        }.get(oid, core.Null())
        algorithm = {"algorithm": oid, "parameters": parameters}
        encrypted["content_encryption_algorithm"] = algorithm
        return content_type, info.dump(force=True)


@pytest.mark.parametrize(
    ("option", "oid", "named"),
    [
        ("-rc2-40", "1.2.840.113549.3.2", "RC2"),
        ("-des-cbc", "1.3.14.3.2.7", "single DES"),
        ("-rc4", "1.2.840.113549.3.4", "RC4"),
    ],
    ids=["rc2-40", "des", "rc4"],
)
def test_broken_ciphers_are_refused_with_decryption_failed_naming_them(
    partner: As2Harness, served: Served, option: str, oid: str, named: str, caplog: Any
) -> None:
    content_type, body = broken_cipher_message(partner.peer, option, oid)
    with caplog.at_level(logging.WARNING):
        status, headers, answer = post_as2(
            served.url, content_type, body, message_id(), partner.peer
        )
    assert status == 200
    fields = partner.peer.verify_mdn(headers["Content-Type"], answer)
    assert fields["disposition"].endswith("processed/error: decryption-failed")
    assert f"encrypted with {named}".encode() in answer  # the MDN's text tells the partner
    assert any(named in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    assert served.stored() == 0


@pytest.mark.parametrize(
    ("cipher", "digest", "printed"),
    [
        ("3des", "sha1", "des-ede3-cbc"),
        ("aes192", "sha512", "aes-192-cbc"),
        ("aes128", "sha384", "aes-128-cbc"),
    ],
)
def test_outbound_cipher_and_digest_are_the_configured_ones_and_openssl_opens_them(
    partner: As2Harness, tmp_path: Path, cipher: str, digest: str, printed: str, caplog: Any
) -> None:
    from tests.integration.connectors.as2_peer import run

    partner.reset()
    entry = {**partner.outbound("as2-out"), "cipher": cipher, "digest": digest}
    gw = make_gateway(tmp_path, entry)
    try:
        with caplog.at_level(logging.WARNING):
            out = open_outbound(gw.settings.connector("as2-out"))
        out.deliver("OR-2.xml", b"<OrderResponse/>\n", {"message_id": f"c-{cipher}"})
        assert partner.delivered() == {"OR-2.xml": b"<OrderResponse/>\n"}  # openssl decrypted
        printed_cms = run("cms", "-cmsout", "-print", "-inform", "DER", "-in",
                          partner.peer._file(partner.partner.bodies[-1])).decode()  # fmt: skip
        assert f"contentEncryptionAlgorithm: \n        algorithm: {printed} " in printed_cms
        opened = run("cms", "-decrypt", "-binary", "-inform", "DER", "-recip", partner.peer.cert,
                     "-inkey", partner.peer.key, "-in",
                     partner.peer._file(partner.partner.bodies[-1]))  # fmt: skip
        micalg = {"sha1": "sha1"}.get(digest, f"sha-{digest[3:]}")
        assert f"micalg={micalg};".encode() in opened.split(b"\r\n\r\n", 1)[0]
        sent = partner.partner.requests[-1]["disposition-notification-options"]
        assert sent.endswith(f"signed-receipt-micalg=optional, {micalg}")
        weak = [r.getMessage() for r in caplog.records if "legacy" in r.getMessage()]
        assert bool(weak) is (cipher == "3des"), weak
    finally:
        gw.close()


def test_outbound_cipher_choices_are_validated(partner: As2Harness, tmp_path: Path) -> None:
    from pydantic import ValidationError

    expected = {
        "cipher": "'aes256', 'aes192', 'aes128' or '3des'",
        "digest": "'sha256', 'sha384', 'sha512' or 'sha1'",
    }
    for field, value in (("cipher", "rc2"), ("cipher", "des"), ("digest", "md5")):
        with pytest.raises(ValidationError) as bad:
            As2Connector.model_validate(
                {**partner.outbound("as2-out"), field: value}, context={"base_dir": tmp_path}
            )
        assert field in str(bad.value) and expected[field] in str(bad.value)


def test_outbound_compressed_delivery_is_opened_by_openssl(
    partner: As2Harness, tmp_path: Path
) -> None:
    partner.reset()
    entry = {**partner.outbound("as2-out"), "compress": True, "digest": "sha256"}
    gw = make_gateway(tmp_path, entry)
    try:
        out = open_outbound(gw.settings.connector("as2-out"))
        out.deliver(
            "../OR-1.xml", b"<OrderResponse>\n  <x/>\n</OrderResponse>\n", {"message_id": "r1"}
        )
        assert partner.delivered() == {"OR-1.xml": b"<OrderResponse>\n  <x/>\n</OrderResponse>\n"}
        sent = partner.partner.requests[-1]
        assert sent["as2-from"] == "gateway" and sent["as2-to"] == "partner"
        assert "pkcs7-signature" in sent["disposition-notification-options"]
    finally:
        gw.close()


def test_outbound_async_mdn_is_awaited_by_looking_not_by_waiting(
    partner: As2Harness, tmp_path: Path
) -> None:
    """With mdn: async, deliver returns at once (AwaitingReceipt); check_receipt only looks for
    the MDN the inbound endpoint keeps (tests/integration/test_as2_receipts.py: the outbox and
    the daemon around it)."""
    from edi_gateway.transports.base import AwaitingReceipt, ReceiptChecker

    partner.reset()
    inbound = {**partner.inbound("as2-in"), "mdn_folder": str(tmp_path / "mdn")}
    served = Served(tmp_path, inbound)
    partner.partner.hold_async = True
    try:
        outbound = {
            **partner.outbound("as2-out"),
            "mdn": "async",
            "mdn_url": served.url.rstrip("/") + "/mdn",
            "mdn_folder": str(tmp_path / "mdn"),
            "mdn_wait_seconds": 600,
        }
        settings_dir = tmp_path / "sender"
        settings_dir.mkdir()
        sender = make_gateway(settings_dir, outbound)
        try:
            out = open_outbound(sender.settings.connector("as2-out"))
            assert isinstance(out, ReceiptChecker)
            awaiting = out.deliver("async.xml", b"<Invoice/>", {"message_id": "async-1"})
            assert isinstance(awaiting, AwaitingReceipt) and awaiting.wait_seconds == 600
            assert partner.delivered() == {"async.xml": b"<Invoice/>"}
            assert awaiting.receipt["message_id"] == "<async-1@gateway>"
            assert out.check_receipt(awaiting.receipt) is False  # not come yet: no wait
            assert partner.partner.release_async() == 1 and partner.partner.async_status == [200]
            assert out.check_receipt(awaiting.receipt) is True
            out.drop_receipt(awaiting.receipt)
            assert out.check_receipt(awaiting.receipt) is False
            missing = out.missing_receipt(awaiting.receipt)
            assert missing.code == ErrorCode.RECEIPT_FAILED and not missing.recoverable
            assert "no MDN for <async-1@gateway> within 600 s" in missing.message
        finally:
            sender.close()
    finally:
        partner.partner.hold_async = False
        served.close()


def test_outbound_refused_mdn_is_a_transport_error(partner: As2Harness, tmp_path: Path) -> None:
    partner.reset()
    entry = partner.with_bad_credentials(partner.outbound("as2-out"))
    gw = make_gateway(tmp_path, entry)
    try:
        with pytest.raises(TransportError) as refused:
            open_outbound(gw.settings.connector("as2-out")).deliver("x.xml", b"<x/>", {})
        assert not refused.value.recoverable
        assert partner.delivered() == {}
    finally:
        gw.close()


# -- "AS2-like" plain HTTP over TLS ---------------------------------------------------------


@pytest.fixture
def https(partner: As2Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    cert, key = make_identity(tmp_path / "tls", "localhost")
    monkeypatch.setenv("EDI_TEST_TOKEN", "s3cret-token")
    monkeypatch.setenv("EDI_TEST_PASSWORD", "pw-of-seller")
    entry = {
        "name": "http-in",
        "type": "http",
        "direction": "in",
        "port": 0,
        "url_path": "/upload",
        "tls_certificate": str(cert),
        "tls_private_key": {"file": str(key)},
        "max_size_mb": 0.05,
        "partners": [
            {"partner": "buyer", "token": {"env": "EDI_TEST_TOKEN"}},
            {"partner": "seller", "username": "seller", "password": {"env": "EDI_TEST_PASSWORD"}},
        ],
    }
    running = Served(tmp_path, entry)
    running.tls_cert = cert  # type: ignore[attr-defined]
    yield running
    running.close()


def https_post(served: Served, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(served.tls_cert))  # type: ignore[attr-defined]
    context.check_hostname = False
    connection = http.client.HTTPSConnection("127.0.0.1", served.server.port, context=context)
    try:
        connection.request("POST", "/upload", body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_plain_http_bearer_and_basic_over_tls(https: Served) -> None:
    status, body = https_post(https, order(7), {"Authorization": "Bearer s3cret-token"})
    assert status == 200, body
    basic = base64.b64encode(b"seller:pw-of-seller").decode()
    answer = f.order_response("OR-8", "PO-AS2-7", "AP")  # the seller's own document
    status, body = https_post(
        https, answer, {"Authorization": f"Basic {basic}", "Message-ID": "m-8"}
    )
    assert status == 200, body
    status, body = https_post(
        https, answer, {"Authorization": f"Basic {basic}", "Message-ID": "m-8"}
    )
    assert status == 200 and b'"duplicate": true' in body
    assert https.stored() == 2


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Basic " + base64.b64encode(b"seller:no").decode()]
)
def test_plain_http_without_valid_credentials_is_refused(
    https: Served, authorization: str | None, caplog: Any
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with caplog.at_level(logging.WARNING):
        status, _ = https_post(https, order(9), headers)
    assert status == 401
    assert https.stored() == 0
    assert any("refused" in r.getMessage() for r in caplog.records)


def test_plain_http_over_the_size_limit_is_refused(https: Served) -> None:
    status, _ = https_post(
        https, b"<x>" + b"y" * 80_000 + b"</x>", {"Authorization": "Bearer s3cret-token"}
    )
    assert status == 413 and https.stored() == 0


def test_plain_http_outbound_posts_with_credentials(https: Served, tmp_path: Path) -> None:
    url = https.server.url("/upload")
    good = {
        "name": "http-out",
        "type": "http",
        "direction": "out",
        "url": url,
        "ca_file": str(https.tls_cert),
        "token": {"env": "EDI_TEST_TOKEN"},  # type: ignore[attr-defined]
    }
    (tmp_path / "sender").mkdir()
    sender = make_gateway(tmp_path / "sender", good)
    try:
        out = open_outbound(sender.settings.connector("http-out"))
        where = out.deliver("OR-9.xml", order(10), {"message_id": "out-1"})
        assert where.startswith(url)
        assert https.stored() == 1
        bad = {**good, "name": "bad-out", "token": {"env": "EDI_TEST_WRONG"}}
        import os

        os.environ["EDI_TEST_WRONG"] = "not-the-token"
        try:
            wrong = HttpConnector.model_validate(bad, context={"base_dir": tmp_path})
            with pytest.raises(TransportError) as refused:
                open_outbound(wrong).deliver("x.xml", b"<x/>", {})
        finally:
            del os.environ["EDI_TEST_WRONG"]
        assert refused.value.code == ErrorCode.AUTH_FAILED and not refused.value.recoverable
        assert https.stored() == 1
    finally:
        sender.close()


def test_openssl_is_really_checking(partner: As2Harness) -> None:
    """The partner's check is not a formality: a tampered MDN fails openssl's verification."""
    from edi_gateway.transports.as2 import cms
    from edi_gateway.transports.as2.mdn import build_mdn

    keys = cms.load_keys(partner.gateway_cert.read_bytes(), partner.gateway_key.read_bytes())
    headers, body = build_mdn(
        original_message_id="<m@p>",
        our_id="gateway",
        their_id="partner",
        modifier=None,
        mic="x, sha-256",
        text="ok",
        keys=keys,
    )
    assert partner.peer.verify_mdn(headers["Content-Type"], body)["disposition"].endswith(
        "processed"
    )
    with pytest.raises(OpensslError):
        partner.peer.verify_mdn(headers["Content-Type"], body.replace(b"processed", b"processeD"))


def test_the_daemon_serves_an_as2_connector(partner: As2Harness, tmp_path: Path) -> None:
    """`run` starts the endpoint of a `type: as2` inbound connector and stops it at the end."""
    from edi_gateway.daemon import Daemon
    from tests.servers import free_port

    partner.reset()
    port = free_port()
    gw = make_gateway(tmp_path, {**partner.inbound("as2-in"), "port": port})
    stop = threading.Event()
    daemon = Daemon(gw, lambda name, outcome: None, stop)
    runner = threading.Thread(target=daemon.run, kwargs={"once": False})
    runner.start()
    try:
        for _ in range(100):
            if "as2-in" in daemon.servers:
                break
            stop.wait(0.05)
        partner.send("po.xml", order(11))
        disposition = partner.push(f"http://127.0.0.1:{port}/as2", *partner.queue[0])
        assert disposition.endswith("; processed")
    finally:
        stop.set()
        runner.join(timeout=20)
        gw.close()
    assert not runner.is_alive()
    with pytest.raises(OSError):  # the port was released
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("POST", "/as2")
