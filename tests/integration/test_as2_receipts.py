"""AS2 async MDNs are state in the store, never a wait in the daemon's loop (docs/adr/0017).

The partner is the OpenSSL-built AS2 endpoint of ``connectors/as2_peer.py`` (it opens our
deliveries with ``openssl cms`` and posts its signed MDN to our inbound endpoint, now or when
the test releases it); the gateway's side is the real transport, endpoint and daemon.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.daemon import Daemon, make_receive
from edi_gateway.outbound.outbox import Outgoing, enqueue, flush
from edi_gateway.outbound.receipts import check_receipts
from edi_gateway.pipeline.history import now
from edi_gateway.store.db import open_store
from edi_gateway.store.tables import HistoryEvent, Message, OutboxRow
from edi_gateway.transports import open_server
from edi_gateway.transports.as2.server import mdn_file, store_mdn
from tests import factory as f
from tests.integration.conftest import cli_json, metric_samples
from tests.integration.connectors.harness_as2 import As2Harness
from tests.servers import free_port

pytestmark = pytest.mark.integration
WAIT = 60  # mdn_wait_seconds: far longer than anything these tests wait for


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[As2Harness]:
    made = As2Harness(tmp_path_factory.mktemp("as2-receipts"))
    yield made
    made.close()


@pytest.fixture
def partner(harness: As2Harness) -> Iterator[As2Harness]:
    harness.reset()
    harness.partner.requests.clear()
    harness.partner.hold_async = True  # the partner answers when the test says
    yield harness
    harness.partner.hold_async = False
    harness.partner.held.clear()


def entries(partner: As2Harness, folder: Path, as2_port: int, **out: Any) -> list[dict[str, Any]]:
    """The inbound endpoint (keeps async MDNs in ``folder``) and the async outbound connector."""
    inbound = {**partner.inbound("as2-in"), "port": as2_port, "mdn_folder": str(folder)}
    outbound = {
        **partner.outbound("as2-out"),
        "mdn": "async",
        "mdn_url": f"http://127.0.0.1:{as2_port}/as2/mdn",
        "mdn_folder": str(folder),
        "mdn_wait_seconds": WAIT,
        **out,
    }
    return [inbound, outbound]


def make_gateway(workdir: Path, connectors: list[dict[str, Any]], **more: Any) -> Gateway:
    data = {
        "partners": [f.buyer_partner(), f.seller_partner()],
        "connectors": connectors,
        **more,
    }
    (workdir / "gateway.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")  # for the CLI
    settings = Settings.model_validate(
        {"path": workdir / "gateway.yaml", **data}, context={"base_dir": workdir}
    )
    return Gateway(settings, open_store(f"sqlite:///{workdir / 'gateway.db'}"))


class Endpoint:
    """Only the inbound AS2 endpoint that keeps async MDNs (its own store): for the tests that
    flush the outbox themselves instead of running the daemon."""

    def __init__(self, workdir: Path, entry: dict[str, Any]) -> None:
        workdir.mkdir()
        self.gw = make_gateway(workdir, [entry])
        receive = make_receive(self.gw, "as2-in", threading.Lock())
        self.server: Any = open_server(self.gw.settings.connector("as2-in"), receive)

    def close(self) -> None:
        self.server.close()
        self.gw.close()


@pytest.fixture
def sender(partner: As2Harness, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway with the async outbound connector, and an endpoint keeping its MDNs."""
    port = free_port()
    inbound, outbound = entries(partner, tmp_path / "mdn", port)
    endpoint = Endpoint(tmp_path / "endpoint", inbound)
    gw = make_gateway(tmp_path, [outbound])
    yield gw
    gw.close()
    endpoint.close()


def queue(gw: Gateway, n: int = 1) -> int:
    with gw.store.session() as session:
        return enqueue(
            session,
            Outgoing(
                partner="buyer",
                connector="as2-out",
                kind="OrderResponse",
                doc_number=f"OR-{n}",
                payload=f"<OrderResponse>{n}</OrderResponse>".encode(),
            ),
            gw.settings,
        )


def outbox_row(gw: Gateway, row_id: int) -> OutboxRow:
    with gw.store.session() as session:
        row = session.get_one(OutboxRow, row_id)
        session.expunge(row)
        return row


def events(gw: Gateway) -> list[str]:
    with gw.store.session() as session:
        return list(session.scalars(select(HistoryEvent.event).order_by(HistoryEvent.id)))


def wait_for(condition: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    return condition()


def settled(gw: Gateway, at: datetime) -> dict[int, str]:
    """Look for receipts until one settles a row (the partner posts it from a thread)."""
    found: dict[int, str] = wait_for(lambda: check_receipts(gw.store, gw.settings, at=at), 15)
    return found


def test_an_outstanding_mdn_holds_up_nothing_and_settles_its_row_when_it_comes(
    partner: As2Harness, tmp_path: Path
) -> None:
    """(a) + (d): while the MDN is outstanding the daemon polls on (a file dropped into a
    folder inbox is taken within its poll interval, not after mdn_wait_seconds); health and
    metrics show the receipt waiting; when the MDN comes, the next look marks the row sent."""
    as2_port, http_port = free_port(), free_port()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    folder_in = {
        "name": "inbox",
        "type": "folder",
        "direction": "in",
        "path": str(inbox),
        "every_seconds": 0.2,
    }
    connectors = [*entries(partner, tmp_path / "mdn", as2_port), folder_in]
    daemon_settings = {"http": {"host": "127.0.0.1", "port": http_port}}
    gw = make_gateway(tmp_path, connectors, daemon=daemon_settings)
    row_id = queue(gw)
    stop = threading.Event()
    daemon = Daemon(gw, lambda name, outcome: None, stop)
    runner = threading.Thread(target=daemon.run, kwargs={"once": False})
    runner.start()
    base = f"http://127.0.0.1:{http_port}"
    try:
        assert wait_for(lambda: outbox_row(gw, row_id).state == "awaiting_receipt", 20)
        assert wait_for(lambda: partner.partner.held, 5), "the partner got no async request"
        health = wait_for(lambda: _health(base, count=1), 10)
        assert health["waiting"]["receipts"]["count"] == 1, health
        assert 0 <= health["waiting"]["receipts"]["oldest_seconds"] < WAIT
        assert metric_samples(_get(f"{base}/metrics"))["edi_receipts_awaiting"] == 1

        dropped = time.monotonic()
        (inbox / "po.xml").write_bytes(f.order("PO-RCPT-1", f.items(1)))
        assert wait_for(lambda: _messages(gw) == 1, 5), "the folder inbox was held up"
        taken_after = time.monotonic() - dropped
        assert outbox_row(gw, row_id).state == "awaiting_receipt"  # still outstanding

        assert partner.partner.release_async() == 1  # the partner answers now
        assert wait_for(lambda: outbox_row(gw, row_id).state == "sent", 10)
        health = wait_for(lambda: _health(base, count=0), 10)
        samples = metric_samples(_get(f"{base}/metrics"))
    finally:
        stop.set()
        runner.join(timeout=20)
    try:
        assert not runner.is_alive()
        assert taken_after < 5
        assert health["waiting"] == {"receipts": {"count": 0, "oldest_seconds": None}}
        assert samples["edi_receipts_awaiting"] == 0
        assert samples['edi_messages_out_total{connector="as2-out",partner="buyer"}'] == 1
        assert (
            samples.get('edi_deliveries_failed_total{connector="as2-out",partner="buyer"}', 0) == 0
        )
        row = outbox_row(gw, row_id)
        assert (row.attempts, row.last_error) == (1, None)
        assert row.delivered_to and row.delivered_to.endswith(
            f"<edi-gateway-outbox-{row_id}@gateway>"
        )
        assert partner.delivered() == {
            "OrderResponse-OR-1.xml": b"<OrderResponse>1</OrderResponse>"
        }
        assert [e for e in events(gw) if e.startswith("outbox.") and e != "outbox.queued"] == [
            "outbox.awaiting_receipt",
            "outbox.sent",
        ]
        assert list((tmp_path / "mdn").iterdir()) == []  # the MDN read is removed
    finally:
        gw.close()


def test_no_mdn_by_the_deadline_is_a_failed_attempt_then_a_late_one_still_counts(
    partner: As2Harness, sender: Gateway
) -> None:
    """(b): nothing by mdn_wait_seconds -> RECEIPT_FAILED (retried like any failed attempt); the
    MDN that comes after that confirms the delivery: the row is sent, not sent again."""
    row_id = queue(sender)
    t0 = now()
    assert flush(sender.store, sender.settings, at=t0) == {row_id: "awaiting_receipt"}
    row = outbox_row(sender, row_id)
    expected_id = f"<edi-gateway-outbox-{row_id}@gateway>"
    assert row.next_attempt_at == t0 + timedelta(seconds=WAIT) and row.attempts == 0
    receipt = json.loads(row.receipt or "")
    assert receipt["message_id"] == expected_id and receipt["mic"].endswith(", sha-256")

    assert check_receipts(sender.store, sender.settings, at=t0 + timedelta(seconds=30)) == {}
    overdue = t0 + timedelta(seconds=WAIT + 1)
    assert check_receipts(sender.store, sender.settings, at=overdue) == {row_id: "pending"}
    row = outbox_row(sender, row_id)
    assert row.last_error == (
        f"RECEIPT_FAILED: no MDN for {expected_id} within {WAIT} s (mdn_wait_seconds): "
        "this delivery attempt failed"
    )
    assert row.attempts == 1 and row.next_attempt_at == overdue + timedelta(seconds=30)

    assert partner.partner.release_async() == 1  # late
    later = overdue + timedelta(seconds=5)
    assert settled(sender, later) == {row_id: "sent"}
    row = outbox_row(sender, row_id)
    assert row.state == "sent" and row.attempts == 1 and row.sent_at == t0
    assert flush(sender.store, sender.settings, at=later + timedelta(hours=1)) == {}
    assert len(partner.partner.requests) == 1  # never sent twice
    assert events(sender)[-2:] == ["outbox.retry", "outbox.sent"]


def test_a_resend_after_a_lost_mdn_has_the_same_message_id(
    partner: As2Harness, sender: Gateway
) -> None:
    """The retry semantics are unchanged: the resend carries the same AS2 Message-ID, the
    partner keeps one copy and answers duplicate-document, which counts as delivered."""
    partner.partner.hold_async = False
    partner.partner.drop_async = True  # the first MDN is lost
    try:
        row_id = queue(sender, 2)
        t0 = now()
        flush(sender.store, sender.settings, at=t0)
        overdue = t0 + timedelta(seconds=WAIT + 1)
        assert check_receipts(sender.store, sender.settings, at=overdue) == {row_id: "pending"}
    finally:
        partner.partner.drop_async = False
    retry_at = overdue + timedelta(seconds=30)
    assert flush(sender.store, sender.settings, at=retry_at) == {row_id: "awaiting_receipt"}
    assert settled(sender, retry_at + timedelta(seconds=1)) == {row_id: "sent"}
    first, second = (r["message-id"] for r in partner.partner.requests)
    assert first == second == f"<edi-gateway-outbox-{row_id}@gateway>"
    assert partner.delivered() == {"OrderResponse-OR-2.xml": b"<OrderResponse>2</OrderResponse>"}
    assert outbox_row(sender, row_id).attempts == 2


def test_a_negative_async_mdn_is_delivery_refused(partner: As2Harness, tmp_path: Path) -> None:
    """(c): the partner cannot verify our signature (we sign with a key it does not know) and
    says so in its signed async MDN: DELIVERY_REFUSED, as a synchronous refusal would be."""
    from tests.integration.connectors.as2_peer import make_identity

    partner.partner.hold_async = False
    cert, key = make_identity(tmp_path / "mallory", "mallory")
    port = free_port()
    inbound, outbound = entries(
        partner, tmp_path / "mdn", port, certificate=str(cert), private_key={"file": str(key)}
    )
    endpoint = Endpoint(tmp_path / "endpoint", inbound)
    gw = make_gateway(tmp_path, [outbound])
    try:
        row_id = queue(gw, 3)
        t0 = now()
        assert flush(gw.store, gw.settings, at=t0) == {row_id: "awaiting_receipt"}
        assert settled(gw, t0 + timedelta(seconds=1)) == {row_id: "pending"}
        row = outbox_row(gw, row_id)
        assert row.last_error is not None
        assert row.last_error.startswith("DELIVERY_REFUSED: partner refused "), row.last_error
        assert "processed/error: authentication-failed" in row.last_error
        assert row.attempts == 1 and partner.delivered() == {}
        assert list((tmp_path / "mdn").iterdir()) == []
    finally:
        gw.close()
        endpoint.close()


def test_an_mdn_confirming_other_content_is_receipt_failed(
    partner: As2Harness, sender: Gateway, tmp_path: Path
) -> None:
    """A receipt signed by the partner (openssl) but with another MIC: RECEIPT_FAILED."""
    row_id = queue(sender, 4)
    t0 = now()
    flush(sender.store, sender.settings, at=t0)
    message_id = f"<edi-gateway-outbox-{row_id}@gateway>"
    forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=, sha-256"
    content_type, body = partner.peer.signed_mdn(message_id, "processed", forged)
    store_mdn(tmp_path / "mdn", content_type, body)
    at = t0 + timedelta(seconds=1)
    assert check_receipts(sender.store, sender.settings, at=at) == {row_id: "pending"}
    row = outbox_row(sender, row_id)
    assert (
        row.last_error == f"RECEIPT_FAILED: the MDN for {message_id} confirms other content (MIC)"
    )
    assert not mdn_file(tmp_path / "mdn", message_id).exists()


def test_run_once_leaves_receipts_awaiting_for_the_next_run(
    partner: As2Harness, sender: Gateway, tmp_path: Path
) -> None:
    """`run --once` does not wait for a receipt: the row stays awaiting_receipt (shown by
    `outbox list`), and the next run settles it with what came meanwhile."""
    row_id = queue(sender, 5)
    started = time.monotonic()
    first = Daemon(sender, lambda name, outcome: None, threading.Event()).run(once=True)
    assert time.monotonic() - started < 10  # not mdn_wait_seconds
    assert outbox_row(sender, row_id).state == "awaiting_receipt" and not first.delivered
    listed = cli_json("--config", tmp_path / "gateway.yaml", "outbox", "list")
    assert [(r["id"], r["state"]) for r in listed] == [(row_id, "awaiting_receipt")]
    config = ("--config", tmp_path / "gateway.yaml")
    waiting = cli_json(*config, "outbox", "list", "--state", "awaiting_receipt")
    assert [r["id"] for r in waiting] == [row_id]
    assert cli_json(*config, "outbox", "list", "--state", "pending") == []

    assert partner.partner.release_async() == 1
    second = Daemon(sender, lambda name, outcome: None, threading.Event()).run(once=True)
    assert outbox_row(sender, row_id).state == "sent"
    assert second.delivered == {"buyer": 1}


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def _health(base: str, *, count: int) -> dict[str, Any] | None:
    health: dict[str, Any] = json.loads(_get(f"{base}/healthz"))
    return health if health["waiting"]["receipts"]["count"] == count else None


def _messages(gw: Gateway) -> int:
    with gw.store.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Message)) or 0)
