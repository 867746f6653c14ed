"""A payload is acknowledged by how its message ended, even when another gateway processed it.

Several gateways share one PostgreSQL store (ADR 0018): a gateway that re-offers a payload
(``recover`` after a restart) may find its message locked by another gateway in the middle of
processing it. It used to acknowledge at once by the state it saw (``received``, so "ok"): a
failed document went to ``archive/`` instead of ``error/`` (seen in the chaos proof under load).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, select, update

from edi_gateway.app import Gateway
from edi_gateway.envelope import Envelope
from edi_gateway.pipeline.intake import intake
from edi_gateway.store.db import open_store
from edi_gateway.store.schema import messages
from tests.unit.support import make_settings


class OneEnvelope:
    """An inbound transport that offers one envelope and records how it was acknowledged."""

    name = "t"

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope
        self.acks: list[bool] = []

    def recover(self) -> Iterator[Envelope]:
        yield self.envelope

    def poll(self) -> Iterator[Envelope]:
        return iter(())

    def ack(self, envelope: Envelope, *, ok: bool) -> None:
        self.acks.append(ok)

    def close(self) -> None:
        """Nothing to release."""


def test_a_message_another_gateway_fails_is_acknowledged_as_failed(
    postgres_url: str, tmp_path: Path
) -> None:
    store = open_store(postgres_url)
    envelope = Envelope(payload=b"<Order", source="t", source_ref="r1", filename="bad.xml")
    [message_id] = intake(store, [envelope])
    other = create_engine(postgres_url)  # the other gateway, in the middle of processing it
    held = other.connect()
    transaction = held.begin()
    held.execute(select(messages.c.id).where(messages.c.id == message_id).with_for_update())

    def finish() -> None:
        time.sleep(0.5)
        held.execute(
            update(messages)
            .where(messages.c.id == message_id)
            .values(state="failed", error_code="NOT_WELL_FORMED", error_detail="by the other")
        )
        transaction.commit()

    worker = threading.Thread(target=finish)
    worker.start()
    try:
        transport = OneEnvelope(envelope)
        outcome = Gateway(make_settings(tmp_path), store).poll(transport)
    finally:
        worker.join(10)
        held.close()
        other.dispose()
    assert transport.acks == [False]  # to error/, as the message ended
    assert outcome.states == {message_id: "failed"}
    with store.connect() as conn:  # processed once, by the other gateway
        assert conn.scalar(select(messages.c.error_detail).where(messages.c.id == message_id)) == (
            "by the other"
        )
    store.close()
