"""RabbitMQ transport (AMQP 0-9-1 with pika): consume a queue, publish to an exchange.

Inbound: the queue is durable and dead-letters into ``dead_letter_exchange``; the consumer
takes at most ``prefetch`` unacknowledged messages (``basic_qos``) and acknowledges by hand,
only in ``ack`` (after intake committed). A poll cycle ends when no message came for
``wait_seconds`` or after ``max_per_poll`` messages. ``ack(ok=False)`` rejects without requeue,
so the broker moves the message to the dead-letter queue. A message whose ack never reached the
broker (crash, dropped connection, broker restart) is delivered again by the broker; its
``source_ref`` is the same, so intake stores it once. The same holds for a partner that
publishes the same message twice (same ``message_id`` and bytes).

Outbound: one connection per delivery (the outbox opens a transport per row; nothing idles
between deliveries), a channel in publisher-confirm mode, a persistent ``mandatory`` publish.
``deliver`` returns only when the broker confirmed that it holds the message; an unroutable or
nacked message is a TransportError, and so is a lost confirm, in which case the outbox's retry
may publish a second copy with the same ``message_id``: consumers deduplicate on it (this
transport's inbound side does).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Mapping

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.spec import Basic, BasicProperties

from edi_gateway.envelope import Envelope, oversize_envelope
from edi_gateway.errors import ConfigError, ErrorCode
from edi_gateway.transports.amqp_link import (
    LINK_ERRORS,
    broker_url,
    close_quietly,
    connect,
    declare_inbound,
    transport_error,
)
from edi_gateway.transports.amqp_spec import AmqpConnector
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.claims import Claimants
from edi_gateway.transports.folder import safe_name

log = logging.getLogger(__name__)

FILENAME_HEADER = "filename"
DESCRIBING_HEADERS = ("document_type", "document_id", "partner")


def source_ref(method: Basic.Deliver, properties: BasicProperties, body: bytes) -> str:
    """The idempotency key of a delivered message, the same on every redelivery.

    ``<message_id>#<sha256 of the body, 16 hex>`` when the publisher set a message ID, else
    ``sha256:<digest of exchange, routing key and body>``. Delivery tag and ``redelivered``
    change between deliveries and are left out. The body digest beside the message ID means a
    publisher that reuses IDs for different documents never has one silently dropped.
    """
    if properties.message_id:
        return f"{properties.message_id}#{hashlib.sha256(body).hexdigest()[:16]}"
    digest = hashlib.sha256()
    for part in (method.exchange or "", method.routing_key or ""):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\x00")
    digest.update(body)
    return f"sha256:{digest.hexdigest()}"


def message_filename(properties: BasicProperties, ref: str) -> str:
    """The ``filename`` header made safe, else ``<message_id>.xml`` (or the digest's start)."""
    headers = properties.headers or {}
    given = headers.get(FILENAME_HEADER)
    if isinstance(given, bytes):
        given = given.decode("utf-8", "replace")
    if isinstance(given, str) and given.strip():
        return safe_name(given)
    stem = properties.message_id or f"amqp-{ref.removeprefix('sha256:')[:16]}"
    return safe_name(f"{stem}.xml")


class AmqpInbound:
    """Consumes a RabbitMQ queue; see the module docstring."""

    def __init__(
        self,
        conn: AmqpConnector,
        max_bytes: int | None = None,
        claimants: Claimants | None = None,
    ) -> None:
        """``claimants`` is not needed: what a gateway took and never acknowledged, the server
        itself gives back once that gateway's connection is gone (transports/claims.py)."""
        del claimants
        if conn.direction != "in":
            raise ConfigError(f"connector {conn.name!r} is not inbound (direction: in)")
        assert conn.queue is not None
        self.name = conn.name
        self.source = f"amqp:{conn.name}"
        self._conn = conn
        self._queue = conn.queue
        self._max_bytes = max_bytes
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._unacked: dict[str, list[int]] = {}
        """source_ref -> delivery tags on the current channel, not yet acknowledged."""
        self.max_unacknowledged = conn.prefetch
        """The broker sends no more than this until some are acknowledged (``Gateway.poll``
        keeps its batches this small, so one poll can take every message waiting)."""

    def recover(self) -> Iterator[Envelope]:
        """Nothing to do: the broker itself offers unacknowledged messages again.

        A delivery is never acknowledged before intake committed it; when the gateway stops or
        the connection drops first, the broker puts the message back in the queue (marked
        redelivered) and the next ``poll`` gets it, under the same ``source_ref``.
        """
        return iter(())

    def poll(self) -> Iterator[Envelope]:
        """The messages waiting now, each unacknowledged until ``ack``.

        Reconnects (and declares the queues) when the connection is gone; a broker that cannot
        be reached is a recoverable TransportError.
        """
        channel = self._open()
        taken = 0
        try:
            for method, properties, body in channel.consume(
                self._queue, auto_ack=False, inactivity_timeout=self._conn.wait_seconds
            ):
                if method is None or properties is None or body is None:
                    break  # nothing came for wait_seconds
                envelope = self._envelope(method, properties, body)
                if channel is self._channel:  # else the link dropped: the broker redelivers it
                    self._unacked.setdefault(envelope.source_ref, []).append(method.delivery_tag)
                yield envelope
                if channel is not self._channel or not channel.is_open:
                    raise TransportError(
                        f"{broker_url(self._conn)} dropped the link of connector {self.name!r} "
                        "during a poll; messages not acknowledged come again on the next one",
                        recoverable=True,
                        code=ErrorCode.CONNECTION_FAILED,
                    )
                taken += 1
                if taken >= self._conn.max_per_poll:
                    break
        except LINK_ERRORS as exc:
            self._drop()
            raise transport_error(self._conn, exc, "consume from") from exc
        finally:
            self._stop_consuming(channel)

    def ack(self, envelope: Envelope, *, ok: bool) -> None:
        """Acknowledge (ok) or reject into the dead-letter exchange; no-op if already done.

        A message whose delivery belongs to a connection that is gone (or that drops now) is
        left alone: the broker redelivers it and intake recognises it by its ``source_ref``; the
        dropped link itself surfaces as a recoverable TransportError from the running ``poll``.
        """
        if envelope.source != self.source:
            raise TransportError(
                f"{self.source} cannot acknowledge {envelope.source}/{envelope.source_ref!r}",
                recoverable=False,
                code=ErrorCode.INTERNAL_ERROR,
            )
        tags = self._unacked.pop(envelope.source_ref, [])
        channel = self._channel
        if not tags or channel is None or not channel.is_open:
            return
        try:
            for tag in tags:
                if ok:
                    channel.basic_ack(tag)
                else:
                    channel.basic_reject(tag, requeue=False)
        except LINK_ERRORS as exc:
            log.warning(
                "%s: the link dropped before the broker got the acknowledgement of %s (%s); "
                "it will be delivered again and recognised",
                self.source,
                envelope.source_ref,
                exc,
            )
            self._drop()

    def close(self) -> None:
        """Close the connection; unacknowledged messages go back to the queue."""
        self._drop()

    def _open(self) -> BlockingChannel:
        """The open channel, reconnecting when the broker dropped the connection."""
        if self._alive():
            assert self._channel is not None
            return self._channel
        self._drop()
        connection = connect(self._conn)
        try:
            channel = connection.channel()
            declare_inbound(channel, self._conn)
            channel.basic_qos(prefetch_count=self._conn.prefetch)
        except LINK_ERRORS as exc:
            close_quietly(connection)
            raise transport_error(self._conn, exc, "declare the queues on") from exc
        self._connection, self._channel = connection, channel
        return channel

    def _alive(self) -> bool:
        connection, channel = self._connection, self._channel
        if connection is None or channel is None or not connection.is_open:
            return False
        try:
            connection.process_data_events(0)  # notices a close the broker sent meanwhile
        except LINK_ERRORS:
            return False
        return bool(connection.is_open and channel.is_open)

    def _drop(self) -> None:
        """Forget the connection; its unacknowledged deliveries return to the queue."""
        connection, self._connection, self._channel = self._connection, None, None
        self._unacked.clear()
        close_quietly(connection)

    def _stop_consuming(self, channel: BlockingChannel) -> None:
        """Cancel the consumer; messages buffered but not handed out go back to the queue."""
        if channel is not self._channel or not channel.is_open:
            return
        try:
            channel.cancel()  # type: ignore[no-untyped-call]  # (types-pika-ts lacks it)
        except LINK_ERRORS:
            self._drop()

    def _envelope(
        self, method: Basic.Deliver, properties: BasicProperties, body: bytes
    ) -> Envelope:
        ref = source_ref(method, properties, body)
        meta = {
            "exchange": method.exchange or "",
            "routing_key": method.routing_key or "",
            "redelivered": str(bool(method.redelivered)).lower(),
            "message_id": properties.message_id or "",
            "queue": self._queue,
        }
        filename = message_filename(properties, ref)
        if self._max_bytes is None or len(body) <= self._max_bytes:
            return Envelope(body, self.source, ref, filename, meta=meta)
        return oversize_envelope(
            self.source,
            ref,
            filename,
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            limit=self._max_bytes,
            kept_at=f"{broker_url(self._conn)} queue {self._conn.dead_letter_queue}",
            meta=meta,
        )


class AmqpOutbound:
    """Publishes documents to a RabbitMQ exchange; see the module docstring."""

    def __init__(self, conn: AmqpConnector) -> None:
        if conn.direction != "out":
            raise ConfigError(f"connector {conn.name!r} is not outbound (direction: out)")
        assert conn.routing_key is not None
        self.name = conn.name
        self._conn = conn
        self._exchange = conn.exchange
        self._routing_key = conn.routing_key

    def close(self) -> None:
        """Nothing to release: each delivery opens and closes its own connection."""

    def deliver(
        self, filename: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> str:
        """Publish ``payload`` persistently and wait for the broker's confirm; return where.

        The ``filename`` (made safe), ``document_type``, ``document_id`` and ``partner`` travel
        as message headers, ``message_id`` as the message's ``message_id`` property.
        """
        given = dict(headers or {})
        message_id = given.get("message_id") or f"edi-gateway-{hashlib.sha256(payload).hexdigest()}"
        carried: dict[str, str] = {FILENAME_HEADER: safe_name(filename)}
        carried.update({k: given[k] for k in DESCRIBING_HEADERS if given.get(k)})
        properties = BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            content_type=given.get("media_type") or "application/xml",
            timestamp=int(time.time()),
            app_id="edi-gateway",
            headers=carried,
        )
        self._publish(payload, properties)
        return (
            f"{broker_url(self._conn)} exchange {self._exchange!r} routing key "
            f"{self._routing_key!r} message-id {message_id}"
        )

    def _publish(self, payload: bytes, properties: BasicProperties) -> None:
        connection = connect(self._conn)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                self._exchange, self._routing_key, payload, properties, mandatory=True
            )
        except pika.exceptions.UnroutableError as exc:
            raise TransportError(
                f"{broker_url(self._conn)} could not route the message (exchange "
                f"{self._exchange!r}, routing key {self._routing_key!r}): no queue is bound "
                "to them; check the names with the partner (the outbox tries again)",
                recoverable=True,
                code=ErrorCode.DELIVERY_REFUSED,
            ) from exc
        except pika.exceptions.NackError as exc:
            raise TransportError(
                f"{broker_url(self._conn)} refused the message (publisher nack), for instance "
                "because a queue is full; the outbox tries again",
                recoverable=True,
                code=ErrorCode.DELIVERY_REFUSED,
            ) from exc
        except LINK_ERRORS as exc:
            raise transport_error(self._conn, exc, "publish to") from exc
        finally:
            close_quietly(connection)
