"""Envelope: bytes plus where they came from. The only thing transports and intake share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Envelope:
    """One received payload, exactly as it arrived.

    ``source`` names the connector (``folder:inbox``, ``cli``); ``source_ref`` identifies the
    payload within it (a claimed file name, a mail Message-ID). ``(source, source_ref)`` is the
    idempotency key that lets a transport re-offer a payload after a crash without a second copy.
    """

    payload: bytes
    source: str
    source_ref: str
    filename: str
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    meta: dict[str, str] = field(default_factory=dict)
