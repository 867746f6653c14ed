"""The RabbitMQ connector's harness: a private RabbitMQ node (``tests/rabbitmq.py``) on loopback.

The partner publishes into the gateway's inbound queue (``INBOX``, declared exactly as the
connector declares it) with pika, and reads what the gateway published from its own durable
queue (``PARTNER``), bound to the exchange the outbound connector publishes to.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from edi_gateway.transports import open_inbound
from edi_gateway.transports.amqp_link import declare_inbound
from edi_gateway.transports.amqp_spec import AmqpConnector
from tests.integration.connectors.harness import Stop
from tests.rabbitmq import RabbitNode, ensure_installed

if TYPE_CHECKING:
    from edi_gateway.app import Gateway, Outcome

USER = "guest"
PASSWORD = "guest"  # RabbitMQ's default user, on a private loopback node
INBOX = "gateway-inbox"
EXCHANGE = "partner-exchange"
ROUTING_KEY = "to-partner"
PARTNER = "partner-inbox"


@contextmanager
def rabbitmq() -> Iterator[RabbitNode]:
    """A private RabbitMQ node for one test module; installs rabbitmq-server when missing."""
    ensure_installed()
    base = Path(tempfile.mkdtemp(prefix="edi-gateway-rabbit-"))
    node = RabbitNode(base)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)


class AmqpHarness:
    """A partner who publishes to the gateway's queue and consumes what the gateway publishes."""

    kind = "amqp"

    def __init__(self, node: RabbitNode) -> None:
        self.node = node
        self._secrets = node.base / "secrets"
        self._secrets.mkdir(exist_ok=True)
        (self._secrets / "password").write_text(PASSWORD + "\n")
        (self._secrets / "wrong").write_text("not-the-password\n")
        self._connection: pika.BlockingConnection | None = None
        self._received: dict[str, bytes] = {}
        self.received_properties: list[pika.BasicProperties] = []
        self._declare()

    # -- connector entries ------------------------------------------------------------------

    def _common(self, name: str, direction: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "amqp",
            "direction": direction,
            "host": "127.0.0.1",
            "port": self.node.port,
            "username": USER,
            "password": {"file": str(self._secrets / "password")},
            "heartbeat": 30,
            "connect_timeout": 5,
        }

    def inbound(self, name: str, **extra: Any) -> dict[str, Any]:
        return {**self._common(name, "in"), "queue": INBOX, "wait_seconds": 0.3, **extra}

    def outbound(self, name: str, **extra: Any) -> dict[str, Any]:
        entry = {**self._common(name, "out"), "exchange": EXCHANGE, "routing_key": ROUTING_KEY}
        return {**entry, **extra}

    def with_bad_credentials(self, entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "password": {"file": str(self._secrets / "wrong")}}

    # -- the partner's side -----------------------------------------------------------------

    def take(self, gateway: Gateway, name: str, stop: Stop = lambda: False) -> Outcome:
        """One poll cycle, then the transport is closed (as a stopping daemon would be)."""
        transport = open_inbound(gateway.settings.connector(name), gateway.policy.max_size)
        try:
            return gateway.poll(transport, stop=stop)
        finally:
            transport.close()  # type: ignore[attr-defined]  # AmqpInbound has one

    def send(self, name: str, payload: bytes, **properties: Any) -> None:
        headers = {"filename": name, **properties.pop("headers", {})}
        props = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=properties.pop("message_id", uuid.uuid4().hex),
            headers=headers,
            **properties,
        )
        self.channel().basic_publish("", INBOX, payload, props)

    def waiting(self) -> int:
        """Messages in the inbound queue (ready; the harness's ``take`` leaves none unacked)."""
        return self.count(INBOX)

    def count(self, queue: str) -> int:
        """Messages ready in ``queue``."""
        declared = self.channel().queue_declare(queue, passive=True)
        return int(declared.method.message_count)

    def delivered(self) -> dict[str, bytes]:
        channel = self.channel()
        while True:
            method, properties, body = channel.basic_get(PARTNER, auto_ack=True)
            if method is None:
                return dict(self._received)
            name = (properties.headers or {}).get("filename") or properties.message_id
            self._received[str(name)] = body
            self.received_properties.append(properties)

    def take_dead_letters(self) -> list[tuple[pika.BasicProperties, bytes]]:
        """Everything in the inbound queue's dead-letter queue (taken off it)."""
        found = []
        channel = self.channel()
        while True:
            method, properties, body = channel.basic_get(f"{INBOX}.dead-letter", auto_ack=True)
            if method is None:
                return found
            found.append((properties, body))

    def reset(self) -> None:
        channel = self.channel()
        for queue in (INBOX, f"{INBOX}.dead-letter", PARTNER):
            channel.queue_purge(queue)
        self._received.clear()
        self.received_properties.clear()

    def restart(self) -> None:
        self._drop()
        self.node.restart()

    def outside_files(self) -> list[str]:
        return []  # a broker has no file system view

    def close(self) -> None:
        self._drop()

    # -- plumbing ---------------------------------------------------------------------------

    def channel(self) -> BlockingChannel:
        """The partner's channel, reconnecting after a restart."""
        connection = self._connection
        if connection is None or not connection.is_open:
            params = pika.ConnectionParameters(
                "127.0.0.1",
                self.node.port,
                credentials=pika.PlainCredentials(USER, PASSWORD),
                connection_attempts=5,
                retry_delay=0.5,
            )
            self._connection = connection = pika.BlockingConnection(params)
            self._channel = connection.channel()
        return self._channel

    def _declare(self) -> None:
        """The gateway's inbound queue (as the connector declares it) and the partner's queue."""
        channel = self.channel()
        config = AmqpConnector.model_validate(self.inbound("declare"))
        declare_inbound(channel, config)
        channel.exchange_declare(EXCHANGE, exchange_type="direct", durable=True)
        channel.queue_declare(PARTNER, durable=True)
        channel.queue_bind(PARTNER, EXCHANGE, routing_key=ROUTING_KEY)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            with suppress(pika.exceptions.AMQPError):
                connection.close()
