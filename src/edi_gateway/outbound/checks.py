"""What the gateway sends must pass the official rules first (issue 9, ADR 0023).

Every UBL row of the outbox is run through the rule sets of its CustomizationID (with the
receiving partner's ``severity:`` overrides) right before each delivery attempt. A fatal finding
holds the row ``failed`` with ``RULES_FAILED``; its findings are kept (``outbox show``) and the
bytes never leave. Without an installed release the check is off (health and the start-up log
say so); a release that no longer verifies is a failed attempt, retried like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete

from edi_gateway.domain.findings import apply_severity, fatal
from edi_gateway.pipeline.history import record
from edi_gateway.pipeline.work import finding_row
from edi_gateway.store.bulk import insert_many
from edi_gateway.store.schema import findings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.store.tables import OutboxRow

XML = "application/xml"


def passes_rules(session: Session, row: OutboxRow, settings: Settings) -> bool:
    """Check ``row`` (a UBL payload) against the rules; False when it is held ``failed``.

    Raises ``GatewayError`` when the check cannot run (the release does not verify, the bytes
    do not parse): the caller counts a failed attempt.
    """
    if row.media_type != XML:
        return True
    from edi_gateway.rules.evaluate import RulesFailed, check_document
    from edi_gateway.rules.install import engine_for

    engine = engine_for(settings.rules.dir, settings.rules.release)
    if engine is None:
        return True
    partner = settings.partner(row.partner)
    found = check_document(
        engine, row.payload, max_size=settings.intake.max_size_mb << 20, required=False
    )
    found = apply_severity(found, partner.severity if partner else {})
    conn = session.connection()
    conn.execute(delete(findings).where(findings.c.outbox_id == row.id))
    rows = [finding_row(f, seq) for seq, f in enumerate(found)]
    insert_many(conn, findings, rows, {"outbox_id": row.id, "message_id": None})
    failing = fatal(found)
    if not failing:
        return True
    error = RulesFailed(failing)
    row.state, row.last_error = "failed", str(error)[:2000]
    record(
        session,
        "outbox.rules_failed",
        f"{row.kind} {row.doc_number} for {row.partner} held, not sent: {error.message}"[:2000],
        order_id=row.order_id,
    )
    return False


__all__ = ["passes_rules"]
