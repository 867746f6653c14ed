"""The daemon's Prometheus metrics, on a registry of its own (no process-wide state).

| metric | type | labels |
|---|---|---|
| ``edi_messages_in_total`` | counter | connector, partner: every message taken (any outcome) |
| ``edi_messages_failed_total`` | counter | connector, partner, code: messages that failed |
| ``edi_messages_out_total`` | counter | connector, partner: outbox rows delivered |
| ``edi_deliveries_failed_total`` | counter | connector, partner: delivery attempts that failed |
| ``edi_processing_seconds`` | histogram | connector: intake + processing + ack of one batch |
| ``edi_outbox_pending`` | gauge | outbox rows waiting for delivery |
| ``edi_outbox_failed`` | gauge | outbox rows given up on, per outbound connector |
| ``edi_outbox_retrying`` | gauge | outbox rows whose last attempt failed, per outbound connector |
| ``edi_orders_overdue`` | gauge | timer (response, despatch): orders overdue now |
| ``edi_certificate_expiry_timestamp_seconds`` | gauge | where, subject: when it expires |
| ``edi_receipts_awaiting`` | gauge | deliveries sent whose partner's receipt (AS2 MDN) is awaited |
| ``edi_connector_up`` | gauge | connector: 1 when its last poll worked, else 0 |
| ``edi_connector_backoff_seconds`` | gauge | connector: the current backoff (0 when none) |
| ``edi_connector_consecutive_failures`` | gauge | connector |
| ``edi_connector_last_success_timestamp_seconds`` | gauge | connector (Unix time) |

plus the ``process_*`` metrics of prometheus_client (CPU, memory, open files, start time).
A message whose sender is no known partner is counted under ``partner="unknown"``.

They are built only when something can read them: a daemon serving ``daemon.http``
(:func:`for_daemon`). Without one (``run --once``, a daemon with no endpoint) the daemon counts
into a :class:`Tally`, which keeps nothing, and prometheus_client is never imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edi_gateway.config import Settings
    from edi_gateway.outbound.outbox import ConnectorDeliveries

UNKNOWN = "unknown"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def for_daemon(settings: Settings, *, once: bool) -> Tally:
    """The daemon's metrics: Prometheus ones when its ``/metrics`` is served (not ``once``,
    ``daemon.http`` set), else a :class:`Tally` that keeps nothing."""
    return Metrics() if not once and settings.daemon.http is not None else Tally()


class Tally:
    """What the daemon counts, with nowhere to show it: every count is dropped. ``live``
    says whether counting is worth a query (:class:`Metrics`)."""

    live = False

    def taken(self, connector: str, partner: str | None, code: str | None) -> None:
        """One message taken from ``connector``; ``code`` when it failed."""

    def batch(self, connector: str, seconds: float) -> None:
        """One batch of ``connector`` committed, processed and acknowledged in ``seconds``."""

    def delivery(self, connector: str, partner: str, *, sent: bool) -> None:
        """One delivery attempt of an outbox row."""

    def outbox(self, pending: int, states: Mapping[str, ConnectorDeliveries]) -> None:
        """The outbox after a flush: rows pending, and failed / retrying per connector."""

    def receipts(self, awaiting: int) -> None:
        """Deliveries whose receipt is awaited."""

    def overdue(self, response: int, despatch: int) -> None:
        """Orders overdue now, per SLA timer."""

    def certificate(self, where: str, subject: str, not_after: datetime) -> None:
        """When a certificate gateway.yaml names expires."""

    def connector_state(
        self, name: str, *, failures: int, backoff: float, last_success: datetime | None
    ) -> None:
        """The gauges of one connector after a poll."""


class Metrics(Tally):
    """Counters, gauges and the latency histogram of one daemon, on a registry of its own."""

    live = True

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            PlatformCollector,
            ProcessCollector,
        )

        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.messages_in = Counter(
            "edi_messages_in",
            "Messages taken from an inbound connector (any outcome).",
            ["connector", "partner"],
            registry=registry,
        )
        self.messages_failed = Counter(
            "edi_messages_failed",
            "Messages that failed (validation, unknown partner, ...), by error code.",
            ["connector", "partner", "code"],
            registry=registry,
        )
        self.messages_out = Counter(
            "edi_messages_out",
            "Outbox rows delivered through an outbound connector.",
            ["connector", "partner"],
            registry=registry,
        )
        self.deliveries_failed = Counter(
            "edi_deliveries_failed",
            "Outbox delivery attempts that failed (retried with backoff, then marked failed).",
            ["connector", "partner"],
            registry=registry,
        )
        self.processing = Histogram(
            "edi_processing_seconds",
            "Seconds from a batch in hand to its messages committed, processed and acknowledged.",
            ["connector"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "edi_outbox_pending", "Outbox rows waiting for delivery.", registry=registry
        )
        self.outbox_failed = Gauge(
            "edi_outbox_failed",
            "Outbox rows given up on (failed after every attempt): an operator must act.",
            ["connector"],
            registry=registry,
        )
        self.outbox_retrying = Gauge(
            "edi_outbox_retrying",
            "Outbox rows whose last delivery attempt failed, waiting to be tried again.",
            ["connector"],
            registry=registry,
        )
        self.orders_overdue = Gauge(
            "edi_orders_overdue",
            "Orders whose response or despatch is overdue (SLA timers).",
            ["timer"],
            registry=registry,
        )
        self.certificate_expiry = Gauge(
            "edi_certificate_expiry_timestamp_seconds",
            "When each certificate gateway.yaml names expires (Unix time).",
            ["where", "subject"],
            registry=registry,
        )
        self.receipts_awaiting = Gauge(
            "edi_receipts_awaiting",
            "Deliveries sent whose partner's receipt (an AS2 async MDN) is awaited.",
            registry=registry,
        )
        self.up = Gauge(
            "edi_connector_up",
            "1 when the connector's last poll (or server start) worked, else 0.",
            ["connector"],
            registry=registry,
        )
        self.backoff = Gauge(
            "edi_connector_backoff_seconds",
            "The connector's current backoff after failures (0 when none).",
            ["connector"],
            registry=registry,
        )
        self.failures = Gauge(
            "edi_connector_consecutive_failures",
            "Failures of the connector in a row.",
            ["connector"],
            registry=registry,
        )
        self.last_success = Gauge(
            "edi_connector_last_success_timestamp_seconds",
            "When the connector last polled (or received) successfully, as Unix time.",
            ["connector"],
            registry=registry,
        )

    def taken(self, connector: str, partner: str | None, code: str | None) -> None:
        who = partner or UNKNOWN
        self.messages_in.labels(connector, who).inc()
        if code is not None:
            self.messages_failed.labels(connector, who, code).inc()

    def batch(self, connector: str, seconds: float) -> None:
        self.processing.labels(connector).observe(seconds)

    def delivery(self, connector: str, partner: str, *, sent: bool) -> None:
        (self.messages_out if sent else self.deliveries_failed).labels(connector, partner).inc()

    def outbox(self, pending: int, states: Mapping[str, ConnectorDeliveries]) -> None:
        self.outbox_pending.set(pending)
        for name, state in states.items():
            self.outbox_failed.labels(name).set(state.failed)
            self.outbox_retrying.labels(name).set(state.retrying)

    def receipts(self, awaiting: int) -> None:
        self.receipts_awaiting.set(awaiting)

    def overdue(self, response: int, despatch: int) -> None:
        self.orders_overdue.labels("response").set(response)
        self.orders_overdue.labels("despatch").set(despatch)

    def certificate(self, where: str, subject: str, not_after: datetime) -> None:
        self.certificate_expiry.labels(where, subject).set(not_after.timestamp())

    def connector_state(
        self, name: str, *, failures: int, backoff: float, last_success: datetime | None
    ) -> None:
        self.up.labels(name).set(0 if failures else 1)
        self.failures.labels(name).set(failures)
        self.backoff.labels(name).set(backoff)
        if last_success is not None:
            self.last_success.labels(name).set(last_success.timestamp())

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
