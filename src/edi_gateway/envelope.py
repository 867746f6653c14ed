"""Envelope: bytes plus where they came from. The only thing transports and intake share."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edi_gateway.errors import ErrorCode


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
    oversize: int | None = None
    """Set instead of ``payload`` when the source held more bytes than intake accepts: their
    count. The bytes stay where they are (the transport's error place); ``meta["sha256"]``
    holds their digest."""
    refusal: tuple[ErrorCode, str] | None = None
    """Set when the transport itself refuses the payload (a mail from a sender not allowed, a
    broken zip): the stable code and what happened. Intake keeps the bytes and stores the
    message as ``failed`` with them; it is never processed."""


def file_envelope(
    path: Path | str,
    *,
    source: str,
    source_ref: str,
    filename: str,
    max_bytes: int | None = None,
    meta: dict[str, str] | None = None,
) -> Envelope:
    """An Envelope of a file's bytes; over ``max_bytes`` only its size and sha256 are read."""
    with open(path, "rb") as stream:  # one open: the size and the bytes of the same file
        size = os.fstat(stream.fileno()).st_size
        if max_bytes is None or size <= max_bytes:
            return Envelope(stream.read(), source, source_ref, filename, meta=dict(meta or {}))
        digest = hashlib.sha256()
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return oversize_envelope(
        source,
        source_ref,
        filename,
        size=size,
        sha256=digest.hexdigest(),
        limit=max_bytes,
        kept_at=str(path),
        meta=meta,
    )


def oversize_envelope(
    source: str,
    source_ref: str,
    filename: str,
    *,
    size: int,
    sha256: str,
    limit: int,
    kept_at: str,
    meta: dict[str, str] | None = None,
) -> Envelope:
    """The Envelope of a payload over the intake limit: no bytes, only what intake records
    (its size, sha256, the limit, and where the transport keeps it)."""
    extra = {"sha256": sha256, "limit": str(limit), "kept_at": kept_at}
    return Envelope(
        b"", source, source_ref, filename, meta={**(meta or {}), **extra}, oversize=size
    )
