"""AS2 interoperability with pyas2lib, an AS2 implementation that shares no code with ours.

Inbound: pyas2lib (the partner) builds signed, encrypted, optionally compressed messages, POSTs
them to the gateway's real AS2 endpoint and reads the gateway's MDN with its own parser (which
verifies the MDN's signature and MIC). Outbound: the gateway's ``As2Outbound`` delivers to an
endpoint where pyas2lib decrypts, verifies and decompresses the message and builds the signed
MDN the gateway must accept. See tests/integration/connectors/pyas2lib_peer.py (and
oscrypto_fix.py for the OpenSSL 3 fix pyas2lib's dependency needs).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oscrypto
import pytest
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.daemon import make_receive
from edi_gateway.errors import ErrorCode
from edi_gateway.store.db import open_store
from edi_gateway.store.tables import Message
from edi_gateway.transports import TransportError, open_outbound, open_server
from tests import factory as f
from tests.integration.connectors.as2_peer import make_identity, new_peer
from tests.integration.connectors.pyas2lib_peer import (
    MdnInbox,
    Pyas2Endpoint,
    Pyas2Partner,
    read_mdn,
)

pytestmark = pytest.mark.integration


@dataclass
class Identities:
    """Certificates made at test time: the gateway's, the partner's and a stranger's."""

    gateway_cert: Path
    gateway_key: Path
    partner: Pyas2Partner
    stranger: tuple[Path, Path]


@pytest.fixture(scope="module")
def ids(tmp_path_factory: pytest.TempPathFactory) -> Identities:
    root = tmp_path_factory.mktemp("pyas2lib")
    peer, gateway_cert, gateway_key = new_peer(root)
    partner = Pyas2Partner(peer.cert, peer.key, gateway_cert)
    return Identities(gateway_cert, gateway_key, partner, make_identity(root / "x", "stranger"))


def own(ids: Identities) -> dict[str, Any]:
    return {
        "as2_id": "gateway",
        "certificate": str(ids.gateway_cert),
        "private_key": {"file": str(ids.gateway_key)},
    }


def make_gateway(workdir: Path, entry: dict[str, Any]) -> Gateway:
    settings = Settings.model_validate(
        {
            "path": workdir / "gateway.yaml",
            "partners": [f.buyer_partner(), f.seller_partner()],
            "connectors": [entry],
        },
        context={"base_dir": workdir},
    )
    return Gateway(settings, open_store(f"sqlite:///{workdir / 'gateway.db'}"))


class Endpoint:
    """The gateway with its inbound AS2 endpoint listening."""

    def __init__(self, workdir: Path, ids: Identities, mdn_folder: Path | None = None) -> None:
        entry = {
            "name": "as2-in",
            "type": "as2",
            "direction": "in",
            "port": 0,
            "url_path": "/as2",
            **own(ids),
            "partners": [
                {"as2_id": "partner", "partner": "buyer", "certificate": str(ids.partner.cert)}
            ],
        }
        self.gw = make_gateway(workdir, entry)
        receive = make_receive(self.gw, "as2-in", threading.Lock())
        self.server: Any = open_server(self.gw.settings.connector("as2-in"), receive)
        self.url = self.server.url("/as2")

    def stored(self) -> list[tuple[str, str, str]]:
        with self.gw.store.session() as session:
            rows = session.execute(select(Message.state, Message.source_ref, Message.filename))
            return [(row[0], row[1], row[2]) for row in rows]

    def close(self) -> None:
        self.server.close()
        self.gw.close()


@pytest.fixture
def endpoint(ids: Identities, tmp_path: Path) -> Iterator[Endpoint]:
    running = Endpoint(tmp_path, ids)
    yield running
    running.close()


def order(n: int) -> bytes:
    return f.order(f"PO-PYAS2-{n}", f.items(2))


def test_oscrypto_reads_the_real_libcrypto_version() -> None:
    """The fix (oscrypto_fix.py) makes oscrypto parse versions like 3.0.19 instead of failing."""
    import re

    from oscrypto import backend
    from oscrypto._openssl import _libcrypto

    assert backend() == "openssl"
    library = importlib.import_module(
        "oscrypto._openssl._libcrypto_" + ("cffi" if oscrypto.ffi() == "cffi" else "ctypes")
    )
    numbers = re.search(r"\b(\d+)\.(\d+)\.(\d+)", library.version_string)
    assert numbers is not None, library.version_string
    assert _libcrypto.libcrypto_version_info[:3] == tuple(int(n) for n in numbers.groups())


# -- pyas2lib sends, the gateway receives -----------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["signed+encrypted", "+compressed"])
def test_pyas2lib_message_is_taken_and_pyas2lib_verifies_the_signed_mdn(
    ids: Identities, endpoint: Endpoint, compress: bool
) -> None:
    sent = ids.partner.send(endpoint.url, order(1), "po-1.xml", compress=compress)
    assert sent.http_status == 200
    # pyas2lib verified the MDN's signature with the gateway's certificate and compared the
    # MIC it computed itself: anything else reads failed/Failure or processed/warning
    assert (sent.status, sent.detailed_status) == ("processed", None)
    assert sent.mdn.digest_alg == "sha256"  # set by pyas2lib's signature verification
    assert sent.message.compressed is compress and sent.message.encrypted and sent.message.signed
    assert sent.message.enc_alg == "tripledes_192_cbc"  # pyas2lib's default cipher: 3DES
    assert endpoint.stored() == [("processed", f"<{sent.message.message_id}>", "po-1.xml")]


@pytest.mark.parametrize(
    "options",
    [
        {"enc_alg": "aes_128_cbc"},
        {"enc_alg": "aes_192_cbc"},
        {"enc_alg": "aes_256_cbc", "key_enc_alg": "rsaes_oaep"},
        {"digest_alg": "sha1", "mdn_digest_alg": "sha1"},  # an old partner: SHA-1 throughout
        {"digest_alg": "sha512", "mdn_digest_alg": "sha384"},
    ],
    ids=["aes128", "aes192", "aes256-oaep", "sha1", "sha512+sha384-mdn"],
)
def test_pyas2lib_ciphers_and_digests_are_taken(
    ids: Identities, endpoint: Endpoint, options: dict[str, str]
) -> None:
    sent = ids.partner.send(endpoint.url, order(7), **options)
    assert (sent.status, sent.detailed_status) == ("processed", None)
    assert sent.message.enc_alg == options.get("enc_alg", "tripledes_192_cbc")
    assert sent.mdn.digest_alg == options.get("mdn_digest_alg", "sha256")  # our MDN signature
    assert len(endpoint.stored()) == 1


def test_pyas2lib_really_checks_the_mdn(ids: Identities, endpoint: Endpoint) -> None:
    """The same MDN, altered by one letter or read with a stranger's certificate, fails."""
    sent = ids.partner.send(endpoint.url, order(6))
    assert read_mdn(sent.message, sent.headers, sent.body)[0] == "processed"
    tampered = sent.body.replace(b"processed", b"processeD", 1)
    assert read_mdn(sent.message, sent.headers, tampered)[0] == "failed/Failure"
    sent.message.receiver.verify_cert = ids.stranger[0].read_bytes()
    assert read_mdn(sent.message, sent.headers, sent.body)[0] == "failed/Failure"


def test_unsigned_mdn_when_pyas2lib_asks_for_none(ids: Identities, endpoint: Endpoint) -> None:
    sent = ids.partner.send(endpoint.url, order(2), mdn_digest_alg=None)
    assert (sent.status, sent.detailed_status) == ("processed", None)
    assert sent.mdn.digest_alg is None  # nothing was verified: there was no signature


def test_a_resent_message_id_reads_duplicate_in_pyas2lib(
    ids: Identities, endpoint: Endpoint
) -> None:
    first = ids.partner.send(endpoint.url, order(3), message_id="resend-3")
    again = ids.partner.send(endpoint.url, order(3), message_id="resend-3")
    assert first.status == "processed"
    assert (again.status, again.detailed_status) == ("processed/warning", "duplicate-document")
    assert len(endpoint.stored()) == 1


@pytest.mark.parametrize(
    ("case", "modifier"),
    [
        ("unknown-signer", "authentication-failed"),
        ("wrong-recipient", "decryption-failed"),
        ("unsigned", "insufficient-message-security"),
    ],
)
def test_refusals_reach_pyas2lib_as_their_disposition(
    ids: Identities, endpoint: Endpoint, case: str, modifier: str
) -> None:
    build: dict[str, Any] = {}
    if case == "unknown-signer":  # signed with a certificate the gateway does not know
        build["signer"] = ids.stranger
    elif case == "wrong-recipient":  # encrypted for someone else
        build["encrypt_cert"] = ids.stranger[0].read_bytes()
    else:
        build["sign"] = False
    sent = ids.partner.send(endpoint.url, order(4), **build)
    assert sent.http_status == 200
    assert (sent.status, sent.detailed_status) == ("processed/error", modifier)
    assert endpoint.stored() == []


def test_async_mdn_reaches_pyas2lib(ids: Identities, endpoint: Endpoint) -> None:
    inbox = MdnInbox()
    try:
        sent = ids.partner.send(endpoint.url, order(5), mdn="ASYNC", mdn_url=inbox.url)
        assert sent.http_status == 200 and sent.body == b""
        assert inbox.arrived.wait(20), "no async MDN arrived"
        headers, body = inbox.received[0]
        status, detail, _ = read_mdn(sent.message, headers, body)
        assert (status, detail) == ("processed", None)
        assert len(endpoint.stored()) == 1
    finally:
        inbox.close()


# -- the gateway sends, pyas2lib receives -----------------------------------------------------


@pytest.fixture
def partner_endpoint(ids: Identities) -> Iterator[Pyas2Endpoint]:
    running = Pyas2Endpoint(ids.partner).start()
    yield running
    running.stop()


def outbound(ids: Identities, url: str, **more: Any) -> dict[str, Any]:
    return {
        "name": "as2-out",
        "type": "as2",
        "direction": "out",
        **own(ids),
        "url": url,
        "partner_as2_id": "partner",
        "partner_certificate": str(ids.partner.cert),
        "timeout_seconds": 20,
        **more,
    }


@pytest.mark.parametrize("compress", [False, True], ids=["signed+encrypted", "+compressed"])
def test_gateway_delivery_is_opened_by_pyas2lib_and_its_signed_mdn_accepted(
    ids: Identities, partner_endpoint: Pyas2Endpoint, tmp_path: Path, compress: bool
) -> None:
    gw = make_gateway(tmp_path, outbound(ids, partner_endpoint.url, compress=compress))
    try:
        out = open_outbound(gw.settings.connector("as2-out"))
        payload = b"<OrderResponse>\n  <ID>OR-1</ID>\n</OrderResponse>\n"
        out.deliver("../OR-1.xml", payload, {"message_id": f"out-{compress}"})
        out.deliver("../OR-1.xml", payload, {"message_id": f"out-{compress}"})  # a retry
        assert partner_endpoint.delivered == {"OR-1.xml": payload}
        (first, _), (second, detail) = partner_endpoint.results
        assert first == "processed"
        assert second == "processed/Warning" and detail is not None
        assert detail.endswith("duplicate-document")
    finally:
        gw.close()


@pytest.mark.parametrize(
    ("cipher", "digest", "oid"),
    [
        ("3des", "sha1", "tripledes_3key"),
        ("aes192", "sha512", "aes192_cbc"),
        ("aes128", "sha384", "aes128_cbc"),
        ("aes256", "sha256", "aes256_cbc"),
    ],
)
def test_gateway_cipher_and_digest_choices_are_read_by_pyas2lib(
    ids: Identities,
    partner_endpoint: Pyas2Endpoint,
    tmp_path: Path,
    cipher: str,
    digest: str,
    oid: str,
) -> None:
    from asn1crypto import cms

    entry = outbound(ids, partner_endpoint.url, cipher=cipher, digest=digest)
    gw = make_gateway(tmp_path, entry)
    try:
        out = open_outbound(gw.settings.connector("as2-out"))
        out.deliver("OR-3.xml", b"<OrderResponse/>", {"message_id": f"alg-{cipher}"})
        assert partner_endpoint.delivered == {"OR-3.xml": b"<OrderResponse/>"}
        assert partner_endpoint.results == [("processed", "automatic-action/MDN-sent-"
                                             "automatically; processed")]  # fmt: skip
        # pyas2lib verified a signature of this digest, and names the cipher when it is 3DES
        pyas2lib_cipher = "tripledes_192_cbc" if cipher == "3des" else None
        assert partner_endpoint.algorithms == [(pyas2lib_cipher, digest)]
        sent = cms.ContentInfo.load(partner_endpoint.bodies[0])["content"]
        used = sent["encrypted_content_info"]["content_encryption_algorithm"]["algorithm"]
        assert used.native == oid
    finally:
        gw.close()


@pytest.mark.parametrize(
    ("case", "modifier"),
    [("unknown-signer", "authentication-failed"), ("wrong-recipient", "decryption-failed")],
)
def test_pyas2lib_refusal_is_a_transport_error(
    ids: Identities, tmp_path: Path, case: str, modifier: str
) -> None:
    if case == "unknown-signer":  # pyas2lib checks the gateway's signature with a stranger's
        receiver = Pyas2Endpoint(ids.partner, gateway_cert=ids.stranger[0]).start()
    else:  # pyas2lib holds the wrong private key (its MDNs are still signed with its own)
        receiver = Pyas2Endpoint(ids.partner, decrypt_with=ids.stranger).start()
    gw = make_gateway(tmp_path, outbound(ids, receiver.url))
    try:
        with pytest.raises(TransportError) as refused:
            open_outbound(gw.settings.connector("as2-out")).deliver("x.xml", b"<x/>", {})
        assert refused.value.code == ErrorCode.DELIVERY_REFUSED
        assert not refused.value.recoverable and modifier in str(refused.value)
        assert receiver.delivered == {}
    finally:
        receiver.stop()
        gw.close()


def test_an_mdn_pyas2lib_did_not_sign_is_refused_when_a_signed_one_was_asked(
    ids: Identities, tmp_path: Path
) -> None:
    """pyas2lib signs an MDN only when its organization has a signing key."""
    receiver = Pyas2Endpoint(ids.partner, sign_mdn=False).start()
    gw = make_gateway(tmp_path, outbound(ids, receiver.url))
    try:
        with pytest.raises(TransportError) as refused:
            open_outbound(gw.settings.connector("as2-out")).deliver("x.xml", b"<x/>", {})
        assert refused.value.code == ErrorCode.RECEIPT_FAILED
        assert "not signed" in str(refused.value)
    finally:
        receiver.stop()
        gw.close()
