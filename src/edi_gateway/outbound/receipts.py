"""Receipts the partner sends after a delivery (AS2 async MDNs): state in the store, only looked at.

A transport whose ``deliver`` returned ``AwaitingReceipt`` left its row ``awaiting_receipt``
(``outbox._deliver``): ``receipt`` holds what to expect, ``sent_at`` when it went,
``next_attempt_at`` the deadline. :func:`check_receipts` asks the connector's transport (a
``ReceiptChecker``) whether each receipt has come; it never waits, so it can run as often as
the daemon likes (every second while receipts are awaited, and with every outbox flush).

- a receipt that confirms: ``sent``;
- one that refuses (``DELIVERY_REFUSED``) or fails a check (``RECEIPT_FAILED``), or none by
  the deadline (``RECEIPT_FAILED``): a failed attempt like any other, retried after the
  outbox's backoff with the same message id (the partner de-duplicates), ``failed`` after
  ``MAX_ATTEMPTS``;
- a receipt that comes after its attempt was failed (the row ``pending`` again or ``failed``,
  for up to ``LATE_RECEIPTS`` after its deadline): one that confirms makes the row ``sent``
  (the partner has exactly what we sent; a resend would only be a duplicate), one that refuses
  is logged and recorded (``outbox.late_receipt``) and the row stays as it was.

A receipt read is removed only after its outcome is committed (``drop_receipt``).
See docs/adr/0017-waits-on-partners-are-state.md.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select

from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.outbox import (
    AWAITING,
    FAILED,
    PENDING,
    Delivery,
    close_quietly,
    failed_attempt,
    locked_deliveries,
    mark_sent,
    save_delivery,
)
from edi_gateway.pipeline.history import now, record
from edi_gateway.store.schema import outbox
from edi_gateway.transports.base import ReceiptChecker, TransportError, coded_text

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store
    from edi_gateway.transports.base import OutboundTransport

log = logging.getLogger(__name__)
LATE_RECEIPTS = timedelta(days=7)
"""How long after its deadline a failed attempt's receipt is still looked for."""
Read = list[tuple[ReceiptChecker, dict[str, str]]]


def check_receipts(
    store: Store, settings: Settings, *, partner: str | None = None, at: datetime | None = None
) -> dict[int, str]:
    """Settle the rows (of ``partner``, if given) whose receipt has come or whose deadline has
    passed; return id -> new state of each delivery settled. Only looks, never waits."""
    moment = at or now()
    o = outbox.c
    late = and_(o.state.in_((PENDING, FAILED)), o.next_attempt_at >= moment - LATE_RECEIPTS)
    condition = and_(o.receipt.is_not(None), or_(o.state == AWAITING, late))
    if partner:
        condition = and_(condition, o.partner == partner)
    done: dict[int, str] = {}
    read: Read = []
    opened: dict[str, OutboundTransport | None] = {}  # each connector opened once per check
    try:
        with store.connect() as conn:
            # Rows another gateway is settling are locked and skipped (store/leases.py).
            for row in locked_deliveries(conn, condition):
                state = _settle(conn, row, _checker(settings, row.connector, opened), moment, read)
                save_delivery(conn, row)
                if state is not None:
                    done[row.id] = state
    finally:
        for transport in opened.values():
            close_quietly(transport)
    for checker, receipt in read:  # committed: the receipts read are done with
        try:
            checker.drop_receipt(receipt)
        except OSError:  # looked at again later; its row no longer waits for it
            log.warning("could not remove a receipt already taken", exc_info=True)
    return done


def awaiting_receipts(conn: Connection) -> tuple[int, datetime | None]:
    """How many delivered rows wait for their receipt, and when the oldest of them went."""
    count, oldest = conn.execute(
        select(func.count(), func.min(outbox.c.sent_at)).where(outbox.c.state == AWAITING)
    ).one()
    return int(count or 0), oldest


def _checker(
    settings: Settings, connector: str, opened: dict[str, OutboundTransport | None]
) -> ReceiptChecker | None:
    """The connector's transport if it checks receipts; None when it cannot be opened or
    checks none (a connector removed or changed since: its rows fail at their deadline)."""
    from edi_gateway.transports import open_outbound

    if connector not in opened:
        try:
            opened[connector] = open_outbound(settings.connector(connector))
        except GatewayError as exc:  # its awaiting rows say so when their deadline passes
            log.debug("cannot check the receipts of connector %s: %s", connector, exc)
            opened[connector] = None
    transport = opened[connector]
    return transport if isinstance(transport, ReceiptChecker) else None


def _settle(
    conn: Connection,
    row: Delivery,
    checker: ReceiptChecker | None,
    moment: datetime,
    read: Read,
) -> str | None:
    """Check ``row``'s receipt; its new state when a delivery attempt was settled."""
    awaiting = row.state == AWAITING
    receipt: dict[str, str] = json.loads(row.receipt or "{}")
    try:
        arrived = checker is not None and checker.check_receipt(receipt)
    except Exception as exc:  # the attempt failed: the receipt refuses it, or it cannot be read
        assert checker is not None
        if isinstance(exc, TransportError):  # it came, and refuses or fails a check: done with
            read.append((checker, receipt))
        elif not isinstance(exc, GatewayError | OSError):  # a transport bug: say so, go on
            log.exception("checking the receipt of outbox row %s via %s", row.id, row.connector)
        if not awaiting:
            _late_refusal(conn, row, coded_text(exc))
            return None
        failed_attempt(conn, row, exc, moment)
        return row.state
    if arrived:
        assert checker is not None
        read.append((checker, receipt))
        late = "" if awaiting else _late_note(row)
        mark_sent(conn, row, row.delivered_to or row.connector, moment, late)
        return row.state
    if not awaiting or moment < row.next_attempt_at:
        return None
    missing = (
        checker.missing_receipt(receipt)
        if checker is not None
        else TransportError(
            f"connector {row.connector} can no longer check the receipt (removed or changed?)",
            recoverable=False,
            code=ErrorCode.RECEIPT_FAILED,
        )
    )
    failed_attempt(conn, row, missing, moment)
    return row.state


def _late_note(row: Delivery) -> str:
    was = f"after {row.attempts} failed attempts" if row.state == FAILED else "late"
    return f" (its receipt came {was}; the attempt had failed: {(row.last_error or '')[:300]})"


def _late_refusal(conn: Connection, row: Delivery, error: str) -> None:
    """A refusing receipt for an attempt already failed: recorded; the row stays as it is."""
    row.last_error, row.receipt = f"{error} (a late receipt)"[:2000], None
    log.warning("outbox %d: a late receipt: %s", row.id, error)
    detail = f"{row.kind} {row.doc_number} to {row.partner}: {error}"
    record(conn, "outbox.late_receipt", detail[:2000], order_id=row.order_id)
