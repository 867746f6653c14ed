"""Connector model of RabbitMQ (``type: amqp``): a queue in, an exchange out; the transport is
:mod:`.amqp`. A light module: loading a config imports it, not pika."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edi_gateway.config.base import ConfigPath, ConnectorBase, Secret

__all__ = ["AmqpConnector"]


class AmqpConnector(ConnectorBase):
    """A RabbitMQ broker (AMQP 0-9-1): inbound consumes ``queue``, outbound publishes to
    ``exchange`` with ``routing_key``.

    Inbound acknowledges a message only after intake committed it; a message that fails is
    rejected into ``dead_letter_exchange`` (routed with the queue's name to
    ``dead_letter_queue``). Outbound publishes persistent messages and waits for the broker's
    publisher confirm. See README "RabbitMQ connector" and docs/adr (AMQP).
    """

    type: Literal["amqp"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    """Default 5672, or 5671 with ``tls: true``."""
    virtual_host: str = Field(default="/", min_length=1)
    username: str = Field(min_length=1)
    password: Secret
    tls: bool = False
    """Connect with TLS; the broker's certificate must be valid for ``host``."""
    ca_file: ConfigPath | None = None
    """With ``tls``: the CA certificates (PEM) the broker's certificate is checked against
    (default: the system's)."""
    heartbeat: int = Field(default=60, ge=0, le=3600)
    """Seconds of the AMQP heartbeat the client proposes (0: none)."""
    connect_timeout: float = Field(default=15, gt=0, le=600)
    """Seconds for the TCP connect and the AMQP handshake."""
    blocked_timeout: float = Field(default=60, gt=0, le=3600)
    """Seconds a connection the broker blocks (low memory or disk) may stay blocked before it
    counts as dropped."""
    declare: bool = True
    """Declare the queues and the dead-letter exchange (durable); false: only check that they
    exist, for brokers whose topology an administrator manages."""
    queue: str | None = None
    """Inbound: the queue consumed."""
    prefetch: int = Field(default=100, ge=1, le=65535)
    """Inbound: messages the broker hands out before the gateway acknowledged them."""
    max_per_poll: int = Field(default=1000, ge=1, le=1_000_000)
    """Inbound: at most this many messages are taken in one poll cycle."""
    wait_seconds: float = Field(default=1.0, gt=0, le=60)
    """Inbound: a poll cycle ends when no message came for this long."""
    dead_letter_exchange: str = "edi-gateway.dead-letter"
    """Inbound: the (direct) exchange failed messages are rejected into."""
    dead_letter_queue: str | None = Field(default=None, validate_default=True)
    """Inbound: the durable queue that keeps failed messages (default ``<queue>.dead-letter``)."""
    exchange: str = ""
    """Outbound: the exchange published to ("": the default exchange, which routes to the queue
    named by ``routing_key``)."""
    routing_key: str | None = None
    """Outbound: the routing key of published messages."""

    @property
    def exchange_seconds(self) -> float:
        """Connect, then a blocked connection's limit (``ConnectorBase.exchange_seconds``)."""
        return self.connect_timeout + self.blocked_timeout

    @field_validator("queue", "dead_letter_exchange", "dead_letter_queue", "exchange")
    @classmethod
    def _amqp_name(cls, value: str | None) -> str | None:
        if value is not None and (
            len(value.encode()) > 255 or not value.isprintable() or value != value.strip()
        ):
            raise ValueError(
                f"found {value!r}, expected an AMQP name: at most 255 bytes, printable, "
                "without leading or trailing blanks"
            )
        return value

    @field_validator("dead_letter_queue")
    @classmethod
    def _default_dead_letter_queue(cls, value: str | None, info: ValidationInfo) -> str | None:
        queue = info.data.get("queue")
        if value is None and info.data.get("direction") == "in" and queue:
            return f"{queue}.dead-letter"
        return value

    @model_validator(mode="after")
    def _by_direction(self) -> AmqpConnector:
        if self.direction == "in":
            if not self.queue:
                raise ValueError("expected queue: NAME on direction: in (the queue consumed)")
            if self.exchange or self.routing_key is not None:
                raise ValueError(
                    "found exchange/routing_key, expected them only on direction: out "
                    "(inbound consumes queue:)"
                )
            if not self.dead_letter_exchange:
                raise ValueError("expected dead_letter_exchange: NAME (not empty)")
            return self
        if self.routing_key is None:
            raise ValueError(
                "expected routing_key: KEY on direction: out (with exchange: '' the name of "
                "the partner's queue)"
            )
        if self.queue is not None or "dead_letter_queue" in self.model_fields_set:
            raise ValueError(
                "found queue/dead_letter_queue, expected them only on direction: in "
                "(outbound publishes to exchange: with routing_key:)"
            )
        return self
