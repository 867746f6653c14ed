"""The ``type: amqp`` connector entry of gateway.yaml, and the AMQP transport's pure parts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pika.spec import Basic, BasicProperties

from edi_gateway.config import load_config
from edi_gateway.errors import ConfigError
from edi_gateway.transports.amqp import message_filename, source_ref
from edi_gateway.transports.amqp_link import broker_port, broker_url, queue_arguments
from edi_gateway.transports.amqp_spec import AmqpConnector

INBOUND = """\
connectors:
  - name: erp-in
    type: amqp
    direction: in
    host: rabbitmq.example
    username: edi
    password: {env: AMQP_PASSWORD}
    queue: edi.inbound
"""
OUTBOUND = """\
connectors:
  - name: to-supplier
    type: amqp
    direction: out
    host: rabbitmq.example
    username: edi
    password: {file: secrets/amqp}
    exchange: partners
    routing_key: supplier.orders
"""


def load(tmp_path: Path, text: str) -> AmqpConnector:
    path = tmp_path / "gateway.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    [conn] = load_config(path).connectors
    assert isinstance(conn, AmqpConnector)
    return conn


def problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.message


def test_inbound_defaults(tmp_path: Path) -> None:
    conn = load(tmp_path, INBOUND)
    assert (conn.port, conn.virtual_host, conn.prefetch, conn.declare) == (None, "/", 100, True)
    assert conn.dead_letter_exchange == "edi-gateway.dead-letter"
    assert conn.dead_letter_queue == "edi.inbound.dead-letter"
    assert broker_port(conn) == 5672
    assert broker_url(conn) == "amqp://rabbitmq.example:5672/%2F"
    assert queue_arguments(conn) == {
        "x-dead-letter-exchange": "edi-gateway.dead-letter",
        "x-dead-letter-routing-key": "edi.inbound",
    }


def test_outbound_with_tls_and_a_file_secret(tmp_path: Path) -> None:
    conn = load(tmp_path, OUTBOUND + "    tls: true\n")
    assert broker_port(conn) == 5671 and broker_url(conn).startswith("amqps://")
    assert conn.password.file == tmp_path / "secrets" / "amqp"
    assert conn.dead_letter_queue is None


def test_a_password_written_inline_is_refused(tmp_path: Path) -> None:
    text = INBOUND.replace("{env: AMQP_PASSWORD}", "hunter2")
    assert "password" in problem(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (INBOUND.replace("    queue: edi.inbound\n", ""), "expected queue: NAME"),
        (INBOUND + "    routing_key: x\n", "only on direction: out"),
        (OUTBOUND.replace("    routing_key: supplier.orders\n", ""), "expected routing_key"),
        (OUTBOUND + "    queue: x\n", "only on direction: in"),
        (INBOUND + "    prefetch: 0\n", "prefetch"),
        (INBOUND.replace("edi.inbound", '"bad\\tname"'), "expected an AMQP name"),
        (INBOUND + "    port: 70000\n", "port"),
    ],
)
def test_entries_that_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problem(tmp_path, text)


def _deliver(
    exchange: str = "", routing_key: str = "q", redelivered: bool = False
) -> Basic.Deliver:
    return Basic.Deliver(
        consumer_tag="c", delivery_tag=7, redelivered=redelivered, exchange=exchange,
        routing_key=routing_key,
    )  # fmt: skip


def test_source_ref_is_stable_across_redelivery_and_never_merges_different_bodies() -> None:
    props = BasicProperties(message_id="m-1")
    first = source_ref(_deliver(), props, b"<a/>")
    again = Basic.Deliver(consumer_tag="d", delivery_tag=99, redelivered=True, routing_key="q")
    assert source_ref(again, props, b"<a/>") == first
    assert first.startswith("m-1#")
    assert source_ref(_deliver(), props, b"<b/>") != first  # an ID reused for other bytes
    anonymous = source_ref(_deliver(), BasicProperties(), b"<a/>")
    assert anonymous.startswith("sha256:")
    assert source_ref(_deliver(redelivered=True), BasicProperties(), b"<a/>") == anonymous
    assert source_ref(_deliver(routing_key="other"), BasicProperties(), b"<a/>") != anonymous


def test_message_filename_is_one_safe_component() -> None:
    named = BasicProperties(message_id="m-1", headers={"filename": b"../../x\x00y.xml"})
    assert message_filename(named, "m-1#0") == "_.._x_y.xml"
    assert message_filename(BasicProperties(message_id="a/b"), "a/b#0") == "a_b.xml"
    assert message_filename(BasicProperties(), "sha256:0123456789abcdef99") == (
        "amqp-0123456789abcdef.xml"
    )
