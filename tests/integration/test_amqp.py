"""The RabbitMQ connector against a real RabbitMQ node: what the contract suite does not cover.

Dead letters, message properties and headers, publisher confirms, redelivery after a dropped
connection and after a broker restart (stored once), prefetch, refusals with stable codes.
One node for the module (``tests/rabbitmq.py``); the restart test restarts it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from sqlalchemy import func, select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.errors import ErrorCode
from edi_gateway.store.db import open_store
from edi_gateway.store.tables import Message
from edi_gateway.transports import TransportError, open_inbound, open_outbound
from edi_gateway.transports.amqp import AmqpInbound
from edi_gateway.transports.amqp_spec import AmqpConnector
from tests import factory as f
from tests.integration.connectors.harness_amqp import INBOX, AmqpHarness, rabbitmq

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node_harness() -> Iterator[AmqpHarness]:
    with rabbitmq() as node:
        harness = AmqpHarness(node)
        try:
            yield harness
        finally:
            harness.close()


@pytest.fixture
def partner(node_harness: AmqpHarness) -> AmqpHarness:
    node_harness.reset()
    return node_harness


def gateway(workdir: Path, *entries: dict[str, Any], batch: int = 50) -> Gateway:
    settings = Settings.model_validate(
        {
            "path": workdir / "gateway.yaml",
            "intake": {"batch_size": batch, "unknown_partner": "accept"},
            "connectors": list(entries),
        },
        context={"base_dir": workdir},
    )
    return Gateway(settings, open_store(f"sqlite:///{workdir / 'gateway.db'}"))


def stored(gw: Gateway) -> Counter[str]:
    with gw.store.session() as session:
        rows = session.execute(select(Message.state, func.count()).group_by(Message.state))
        return Counter({state: n for state, n in rows})


def order(n: int) -> bytes:
    return f.order(f"PO-{n:05}", f.items(1))


def inbound(partner: AmqpHarness, **extra: Any) -> AmqpInbound:
    transport = open_inbound(AmqpConnector.model_validate(partner.inbound("in", **extra)))
    assert isinstance(transport, AmqpInbound)
    return transport


def close_connections(partner: AmqpHarness, name: str) -> None:
    """Drop, from the broker's side, every connection whose client calls itself ``name``."""
    for line in partner.node.ctl("list_connections", "pid", "client_properties").splitlines():
        if f"edi-gateway {name}" in line:
            partner.node.ctl("close_connection", line.split("\t")[0], "test: dropped")


def test_a_failed_message_is_dead_lettered_and_kept(partner: AmqpHarness, tmp_path: Path) -> None:
    gw = gateway(tmp_path, partner.inbound("in"))
    transport = inbound(partner)
    try:
        partner.send("broken.xml", b"<Order><not-closed>", message_id="m-broken")
        partner.send("good.xml", order(1), message_id="m-good")
        outcome = gw.poll(transport)
        assert sorted(outcome.states.values()) == ["failed", "processed"]
    finally:
        transport.close()
        gw.close()
    assert partner.waiting() == 0
    dead = partner.take_dead_letters()
    assert [body for _, body in dead] == [b"<Order><not-closed>"]
    properties = dead[0][0]
    assert properties.message_id == "m-broken"
    assert properties.headers["x-death"][0]["reason"] == "rejected"
    assert properties.headers["filename"] == "broken.xml"


def test_too_large_is_failed_and_its_bytes_stay_in_the_dead_letter_queue(
    partner: AmqpHarness, tmp_path: Path
) -> None:
    gw = gateway(tmp_path, partner.inbound("in"))
    transport = AmqpInbound(AmqpConnector.model_validate(partner.inbound("in")), max_bytes=100)
    big = order(7)
    try:
        partner.send("big.xml", big, message_id="m-big")
        assert list(gw.poll(transport).states.values()) == ["failed"]
    finally:
        transport.close()
    with gw.store.session() as session:
        assert session.scalars(select(Message.error_code)).one() == ErrorCode.TOO_LARGE
    gw.close()
    assert [body for _, body in partner.take_dead_letters()] == [big]


def test_published_messages_are_persistent_with_document_headers(partner: AmqpHarness) -> None:
    out = open_outbound(AmqpConnector.model_validate(partner.outbound("out")))
    headers = {
        "document_type": "Invoice",
        "document_id": "INV-9",
        "partner": "buyer",
        "message_id": "edi-gateway-outbox-9",
        "media_type": "application/xml",
    }
    where = out.deliver("../Invoice-INV-9.xml", b"<Invoice/>", headers)  # made safe
    assert "message-id edi-gateway-outbox-9" in where
    assert partner.delivered() == {"_Invoice-INV-9.xml": b"<Invoice/>"}
    properties = partner.received_properties[-1]
    assert properties.delivery_mode == 2
    assert properties.message_id == "edi-gateway-outbox-9"
    assert properties.content_type == "application/xml"
    assert properties.headers == {
        "filename": "_Invoice-INV-9.xml",
        "document_type": "Invoice",
        "document_id": "INV-9",
        "partner": "buyer",
    }


def test_an_unroutable_message_is_not_confirmed(partner: AmqpHarness) -> None:
    entry = partner.outbound("out", routing_key="nobody-listens")
    out = open_outbound(AmqpConnector.model_validate(entry))
    with pytest.raises(TransportError) as refused:
        out.deliver("x.xml", b"<x/>", {"message_id": "m-x"})
    assert refused.value.code == ErrorCode.DELIVERY_REFUSED and refused.value.recoverable
    assert "nobody-listens" in refused.value.message
    assert partner.delivered() == {}


def test_a_missing_exchange_is_a_configuration_error(partner: AmqpHarness) -> None:
    out = open_outbound(AmqpConnector.model_validate(partner.outbound("out", exchange="nope")))
    with pytest.raises(TransportError) as refused:
        out.deliver("x.xml", b"<x/>", {})
    assert refused.value.code == ErrorCode.CONFIG_INVALID and not refused.value.recoverable
    assert "nope" in refused.value.message


@pytest.mark.parametrize("message_id", ["m-lost-ack", None])
def test_a_message_whose_ack_was_lost_is_stored_once(
    partner: AmqpHarness, tmp_path: Path, message_id: str | None
) -> None:
    gw = gateway(tmp_path, partner.inbound("in"))
    first, second = inbound(partner), inbound(partner)

    class LostAck:
        """The connection drops after intake committed and before the ack reached the broker."""

        name = first.name

        def recover(self) -> Iterator[Any]:
            return first.recover()

        def poll(self) -> Iterator[Any]:
            return first.poll()

        def ack(self, envelope: Any, *, ok: bool) -> None:
            close_connections(partner, "in")
            try:
                first.ack(envelope, ok=ok)
            except TransportError as exc:
                assert exc.recoverable

    try:
        if message_id:
            partner.send("po.xml", order(2), message_id=message_id)
        else:  # no message ID, no name: the source_ref is a digest
            partner.channel().basic_publish("", INBOX, order(2))
        assert gw.poll(LostAck()).states  # type: ignore[arg-type]
        assert partner.waiting() >= 1  # back in the queue, delivered again below
        again = gw.poll(second)
        assert set(again.states.values()) <= {"processed", "duplicate"}
    finally:
        first.close()
        second.close()
    assert partner.waiting() == 0
    assert stored(gw) == {"processed": 1}  # the redelivery did not make another message
    gw.close()


def test_after_a_broker_restart_the_next_poll_reconnects_and_stores_once(
    partner: AmqpHarness, tmp_path: Path
) -> None:
    gw = gateway(tmp_path, partner.inbound("in"), batch=3)
    transport = inbound(partner)
    try:
        for n in range(6):
            partner.send(f"po-{n}.xml", order(10 + n))
        taken = transport.poll()
        envelopes = [next(taken) for _ in range(3)]
        from edi_gateway.pipeline.intake import intake

        intake(gw.store, envelopes)  # committed, never acknowledged
        partner.restart()
        for envelope in envelopes:
            transport.ack(envelope, ok=True)  # a dead link: nothing to do, nothing raised
        with pytest.raises(TransportError) as dropped:
            list(taken)
        assert dropped.value.recoverable
        outcome = gw.poll(transport)  # the same transport object reconnects
        assert len(outcome.states) == 6
    finally:
        transport.close()
    assert partner.waiting() == 0
    assert stored(gw) == {"processed": 6}
    gw.close()


def test_prefetch_bounds_the_unacknowledged_messages(partner: AmqpHarness) -> None:
    transport = inbound(partner, prefetch=3)
    try:
        for n in range(10):
            partner.send(f"po-{n}.xml", order(n))
        first = list(transport.poll())
        assert len(first) == 3  # the broker held back the rest until these are acknowledged
        assert partner.waiting() == 7
        for envelope in first:
            transport.ack(envelope, ok=True)
        second = list(transport.poll())
        assert len(second) == 3
        assert {e.source_ref for e in first}.isdisjoint(e.source_ref for e in second)
    finally:
        transport.close()
    assert partner.waiting() == 7  # the second three went back to the queue unacknowledged


def test_max_per_poll_ends_a_cycle(partner: AmqpHarness) -> None:
    transport = inbound(partner, max_per_poll=4)
    try:
        for n in range(6):
            partner.send(f"po-{n}.xml", order(n))
        taken = list(transport.poll())
        assert len(taken) == 4
        for envelope in taken:
            transport.ack(envelope, ok=True)
    finally:
        transport.close()
    assert partner.waiting() == 2


def test_source_ref_and_filename(partner: AmqpHarness) -> None:
    transport = inbound(partner)
    try:
        partner.send("../../etc/passwd", b"<a/>", message_id="m-1")
        partner.channel().basic_publish(
            "", INBOX, b"<b/>", pika.BasicProperties(message_id="only-id")
        )
        partner.channel().basic_publish("", INBOX, b"<c/>")
        envelopes = {e.payload: e for e in transport.poll()}
        assert envelopes[b"<a/>"].filename == "_.._etc_passwd"  # one component
        assert envelopes[b"<a/>"].source == "amqp:in"
        assert envelopes[b"<a/>"].source_ref.startswith("m-1#")
        assert envelopes[b"<b/>"].filename == "only-id.xml"
        assert envelopes[b"<c/>"].source_ref.startswith("sha256:")
        assert envelopes[b"<c/>"].filename.startswith("amqp-")
    finally:
        transport.close()


def test_bad_credentials_and_unknown_virtual_host_are_auth_failures(
    partner: AmqpHarness,
) -> None:
    bad = partner.with_bad_credentials(partner.inbound("in"))
    with pytest.raises(TransportError) as refused:
        list(open_inbound(AmqpConnector.model_validate(bad)).poll())
    assert refused.value.code == ErrorCode.AUTH_FAILED and not refused.value.recoverable
    assert "'guest'" in refused.value.message and "password" in refused.value.message
    vhost = partner.outbound("out", virtual_host="nowhere")
    with pytest.raises(TransportError) as denied:
        open_outbound(AmqpConnector.model_validate(vhost)).deliver("x.xml", b"<x/>", {})
    assert denied.value.code == ErrorCode.AUTH_FAILED and "nowhere" in denied.value.message


def test_tls_against_a_plain_port_is_a_tls_failure(partner: AmqpHarness) -> None:
    entry = partner.outbound("out", tls=True)
    with pytest.raises(TransportError) as refused:
        open_outbound(AmqpConnector.model_validate(entry)).deliver("x.xml", b"<x/>", {})
    assert refused.value.code == ErrorCode.TLS_FAILED and not refused.value.recoverable


def test_no_server_is_a_recoverable_connection_failure(partner: AmqpHarness) -> None:
    from tests.servers import free_port

    entry = partner.inbound("in", port=free_port())
    with pytest.raises(TransportError) as refused:
        list(open_inbound(AmqpConnector.model_validate(entry)).poll())
    assert refused.value.code == ErrorCode.CONNECTION_FAILED and refused.value.recoverable


def test_a_queue_declared_otherwise_is_a_configuration_error(partner: AmqpHarness) -> None:
    partner.channel().queue_declare("plain-queue", durable=True)
    entry = partner.inbound("in", queue="plain-queue")
    with pytest.raises(TransportError) as refused:
        list(open_inbound(AmqpConnector.model_validate(entry)).poll())
    assert refused.value.code == ErrorCode.CONFIG_INVALID and not refused.value.recoverable
    assert "x-dead-letter-exchange" in refused.value.message
    checked = partner.inbound("in", queue="plain-queue", declare=False)  # only checks it exists
    transport = inbound(partner, queue="plain-queue", declare=False)
    try:
        assert list(transport.poll()) == []
    finally:
        transport.close()
    missing = {**checked, "queue": "no-such-queue"}
    with pytest.raises(TransportError) as absent:
        list(open_inbound(AmqpConnector.model_validate(missing)).poll())
    assert absent.value.code == ErrorCode.CONFIG_INVALID and "no-such-queue" in absent.value.message


def test_one_poll_takes_every_message_in_batches_of_the_prefetch(
    partner: AmqpHarness, tmp_path: Path
) -> None:
    entry = partner.inbound("from-partner")
    entry["prefetch"] = 3
    gw = gateway(tmp_path, entry)
    batches: list[int] = []
    try:
        for n in range(10):
            partner.send(f"po-{n}.xml", order(n))
        transport = open_inbound(gw.settings.connector("from-partner"), gw.policy.max_size)
        try:
            outcome = gw.poll(transport, observe=lambda states, _: batches.append(len(states)))
        finally:
            transport.close()
        assert Counter(outcome.states.values()) == {"processed": 10}
        assert max(batches) <= 3 and sum(batches) == 10  # never more in flight than prefetch
        assert partner.waiting() == 0
    finally:
        gw.close()
