"""The transport interface: inbound transports offer Envelopes, outbound ones deliver bytes.

An inbound transport never decides that a payload is safe: the caller acknowledges it with
``ack`` only after intake committed the Envelope to the store. Until then the payload stays
claimed and ``recover`` offers it again after a crash; intake's idempotency key
``(source, source_ref)`` makes a second offer harmless.

An outbound transport whose partner answers later (an AS2 asynchronous receipt) never waits for
it in ``deliver``: it returns :class:`AwaitingReceipt`, the outbox keeps the row
``awaiting_receipt`` and asks the transport (a :class:`ReceiptChecker`) on its own schedule
whether the receipt has come (docs/adr/0017-waits-on-partners-are-state.md).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from edi_gateway.envelope import Envelope
from edi_gateway.errors import ErrorCode, GatewayError


class TransportError(GatewayError):
    """A transport could not do its work.

    ``recoverable`` says whether trying again later may succeed (a missing mount, a full disk,
    a dropped connection) or whether an operator must act first (bad credentials, a bad path).
    """

    def __init__(self, message: str, *, recoverable: bool, code: ErrorCode) -> None:
        super().__init__(code, message)
        self.recoverable = recoverable


# What the operating system says, as what an operator must do about it.
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_UNUSABLE = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENOENT,
    errno.ENAMETOOLONG,
}


def os_error_code(exc: OSError, *, writing: bool) -> ErrorCode:
    """The code of a failed file operation: DISK_FULL, TARGET_UNWRITABLE (writing) or
    SOURCE_UNREADABLE (reading) for a path an operator must fix, else IO_FAILED."""
    if exc.errno in _FULL:
        return ErrorCode.DISK_FULL
    if exc.errno in _UNUSABLE:
        return ErrorCode.TARGET_UNWRITABLE if writing else ErrorCode.SOURCE_UNREADABLE
    return ErrorCode.IO_FAILED


def os_failure(what: str, exc: OSError, *, writing: bool) -> TransportError:
    """A TransportError for ``exc`` while doing ``what``: coded, recoverable unless the
    operating system refused this user (an operator must act first)."""
    return TransportError(
        f"{what}: {exc}",
        recoverable=not isinstance(exc, PermissionError),
        code=os_error_code(exc, writing=writing),
    )


def coded_text(exc: BaseException) -> str:
    """``CODE: what happened`` for any failure of a delivery or a check: a GatewayError says
    its own code, an OSError gets ``os_error_code``, anything else is a bug (INTERNAL_ERROR)."""
    if isinstance(exc, GatewayError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{os_error_code(exc, writing=True)}: {exc or type(exc).__name__}"
    return f"{ErrorCode.INTERNAL_ERROR}: {type(exc).__name__}: {exc}"


class InboundTransport(Protocol):
    """Where payloads come from (a folder, an SFTP directory, a mailbox, a queue)."""

    name: str

    def recover(self) -> Iterator[Envelope]:
        """Payloads a previous run claimed but never acknowledged; call once at start-up."""
        ...

    def poll(self) -> Iterator[Envelope]:
        """Claim new payloads one at a time; each stays claimed until ``ack``."""
        ...

    def ack(self, envelope: Envelope, *, ok: bool) -> None:
        """After intake committed: archive the payload (ok) or set it aside as failed (not ok).

        Acknowledging a payload that was already acknowledged does nothing.
        """
        ...

    def close(self) -> None:
        """Release connections; the next ``poll`` opens new ones. Closing twice is harmless."""
        ...


class OutboundTransport(Protocol):
    """Where documents go."""

    name: str

    def deliver(
        self, filename: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> str | AwaitingReceipt:
        """Deliver ``payload`` as ``filename``; return where it went (or, from a
        :class:`ReceiptChecker`, :class:`AwaitingReceipt` when the partner's receipt comes later).

        ``headers`` describe the payload for transports that carry metadata (message headers,
        mail headers): ``document_type``, ``document_id``, ``partner``, ``message_id`` (unique
        per outbox row, stable across retries), ``media_type``. A file transport ignores them.

        Idempotent: delivering the same filename and payload again does not make a second copy.
        """
        ...

    def close(self) -> None:
        """Release connections (a flush delivers many rows through one transport)."""
        ...


@dataclass(frozen=True, slots=True)
class AwaitingReceipt:
    """``deliver``'s answer when the bytes went out and the partner confirms them later.

    The delivery is not done yet: the outbox keeps ``receipt`` with the row and asks the
    transport's :meth:`ReceiptChecker.check_receipt` until it has arrived or ``wait_seconds``
    have passed.
    """

    where: str
    """Where it went (what ``deliver`` returns otherwise)."""
    wait_seconds: float
    """How long the receipt may take; then the delivery attempt failed."""
    receipt: Mapping[str, str]
    """What ``check_receipt`` needs to find and check it (kept with the outbox row)."""


@runtime_checkable
class ReceiptChecker(Protocol):
    """An outbound transport whose ``deliver`` may return :class:`AwaitingReceipt`."""

    def check_receipt(self, receipt: Mapping[str, str]) -> bool:
        """Whether the receipt has arrived and confirms the delivery; False while none has.

        Only looks, never waits. Raises TransportError when it arrived and refuses the
        delivery or fails a check. The receipt read stays until ``drop_receipt``.
        """
        ...

    def drop_receipt(self, receipt: Mapping[str, str]) -> None:
        """Discard a receipt ``check_receipt`` read, once its outcome is committed."""
        ...

    def missing_receipt(self, receipt: Mapping[str, str]) -> TransportError:
        """The error of a delivery whose receipt did not arrive within ``wait_seconds``."""
        ...
