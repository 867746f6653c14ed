"""What the gateway sends must pass the official rules first (issue 9, ADR 0023).

Every UBL row of the outbox is run through the rule sets of its CustomizationID (the official
severities: a partner's ``severity:`` is for what it sends us) right before each delivery
attempt. A fatal finding
holds the row ``failed`` with ``RULES_FAILED``; its findings are kept (``outbox show``) and the
bytes never leave. Without an installed release the check is off (health and the start-up log
say so); a release that no longer verifies is a failed attempt, retried like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edi_gateway.config import Settings
    from edi_gateway.domain.findings import Finding
    from edi_gateway.outbound.outbox import Delivery

XML = "application/xml"
SIGNATURES = b"UBLDocumentSignatures"
"""In a payload that may carry a UBL signature extension (which the rules do not judge)."""


def passes_rules(conn: Connection, row: Delivery, settings: Settings) -> bool:
    """Check ``row`` (a UBL payload) against the rules; False when it is held ``failed``.

    Rows that are not UBL (PDF, Excel, CSV, a supplier's own XML layout) pass unchecked. The
    official severities apply: what the gateway sends must pass them, whatever a partner
    tolerates in what it sends us. For a partner whose documents we sign, and for a signed
    document relayed as it came, the rules judge the document the signature covers. Raises
    ``GatewayError`` when the check cannot run (the release does not verify): the caller
    counts a failed attempt.
    """
    if row.media_type != XML:
        return True
    # what checking takes, imported for a UBL row only (a bundle flush delivers none)
    from edi_gateway.domain.findings import fatal
    from edi_gateway.outbound.outbox import payload_of
    from edi_gateway.pipeline.history import record
    from edi_gateway.pipeline.work import replace_findings

    partner = settings.partner(row.partner)
    signs = bool(partner and partner.signature and partner.signature.sign)
    payload = payload_of(conn, row)
    signed = signs or SIGNATURES in payload  # e.g. a supplier's signed document relayed
    found = rules_findings(payload, settings, signed=signed)
    if found is None:
        return True
    replace_findings(conn, "outbox_id", {row.id: found}, [row.id])
    failing = fatal(found)
    if not failing:
        return True
    from edi_gateway.rules.evaluate import RulesFailed

    error = RulesFailed(failing)
    row.state, row.last_error = "failed", str(error)[:2000]
    record(
        conn,
        "outbox.rules_failed",
        f"{row.kind} {row.doc_number} for {row.partner} held, not sent: {error.message}"[:2000],
        order_id=row.order_id,
    )
    return False


def rules_findings(payload: bytes, settings: Settings, *, signed: bool) -> list[Finding] | None:
    """The official rules' findings on ``payload`` (the rule sets of its CustomizationID, at
    the official severities); None when nothing is to be checked: no installed release, or
    bytes that are not UBL (a supplier's own layout). ``signed``: judge the document a
    signature covers (the signature extensions dropped). Raises ``GatewayError`` when the
    check cannot run (the installed release does not verify)."""
    from lxml import etree

    from edi_gateway.domain.findings import Finding
    from edi_gateway.errors import DocumentError
    from edi_gateway.rules.evaluate import check_document
    from edi_gateway.rules.install import engine_for
    from edi_gateway.ubl.namespaces import maindoc_ns
    from edi_gateway.ubl.parse import parse

    engine = engine_for(settings.rules.dir, settings.rules.release)
    if engine is None:
        return None
    limit = settings.intake.max_size_mb << 20
    try:  # a signature covers comments and PIs: a signed document keeps them to drop it exactly
        root = parse(payload, max_size=max(limit, len(payload)), keep_markup=signed)
    except DocumentError:
        return None  # not XML the rules could read: a supplier's own layout
    name = etree.QName(root)
    if name.namespace != maindoc_ns(name.localname):
        return None  # XML, but not UBL
    if signed:
        from edi_gateway.ubl.signature import without_signatures

        payload = without_signatures(root)  # the tree now holds what these bytes say
    try:
        return check_document(engine, payload, max_size=len(payload), required=False, root=root)
    except DocumentError as exc:  # the official rules cannot evaluate it either
        return [Finding("PEPPOL", "EVALUATION", "fatal", None, exc.line, exc.message)]


__all__ = ["passes_rules", "rules_findings"]
