"""Answer the sender: a Peppol Message Level Response (T71) for each message from a partner
with ``mlr: on_failure`` (a refusal, ``RE``, listing what failed) or ``mlr: always`` (also an
acceptance, ``AP``, for what was taken). Queued in the processing transaction, so an outcome and
its answer commit together, through the partner's outbound connector; like every UBL document
the gateway sends, the MLR passes the rules (T71) before it goes (``outbound/checks.py``).

A failure that is not the sender's (the store, a missing rule release, a bug) is never answered:
the message is redriven, and then answered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lxml import etree
from sqlalchemy import select

from edi_gateway.config.models import Partner
from edi_gateway.domain.documents import DocumentKind
from edi_gateway.domain.findings import XSD, Finding, fatal
from edi_gateway.errors import DocumentError, ErrorCode, GatewayError
from edi_gateway.outbound.outbox import Outgoing, enqueue
from edi_gateway.pipeline.history import now
from edi_gateway.pipeline.work import FAILED, ORPHAN, PROCESSED, Work
from edi_gateway.store.schema import message_payloads
from edi_gateway.ubl.namespaces import CBC
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.write_mlr import Mlr, MlrLine, write_mlr

if TYPE_CHECKING:
    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store

log = logging.getLogger(__name__)
MAX_LINES = 100
NOT_THE_SENDERS = frozenset({ErrorCode.UNKNOWN_PARTNER, ErrorCode.RULES_UNAVAILABLE})


def answer_senders(settings: Settings, store: Store, works: Sequence[Work]) -> None:
    """Queue the MLR each finished message's sender asked for (none for most partners)."""
    for work in works:
        partner = settings.partner(work.partner) if work.partner else None
        if partner is None or partner.mlr == "never" or partner.outbound is None:
            continue
        try:
            mlr = _mlr_for(store, settings, work, partner)
            if mlr is None:
                continue
            with store.session() as session:
                enqueue(
                    session,
                    Outgoing(
                        partner=partner.id,
                        connector=partner.outbound,
                        kind="ApplicationResponse",
                        doc_number=mlr.response_id,
                        payload=write_mlr(mlr),
                    ),
                    settings,
                )
        except Exception:  # an answer that cannot be made must not undo the outcome
            log.exception("message %s: no MLR could be made for %s", work.id, partner.id)


def _mlr_for(store: Store, settings: Settings, work: Work, partner: Partner) -> Mlr | None:
    if work.state == FAILED:
        error = work.error
        if not isinstance(error, DocumentError) or error.code in NOT_THE_SENDERS:
            return None
        code = "RE"
    elif work.state in (PROCESSED, ORPHAN) and partner.mlr == "always":
        code, error = "AP", None
    else:
        return None
    # A document that failed before it was read is read loosely from its stored bytes, once.
    root = _stored_root(store, work.id) if work.document is None else None
    if _is_a_response(work, root):
        return None  # an MLR (or another ApplicationResponse) is never answered: no ping-pong
    ours = _our_endpoint(settings, work, partner, root)
    if ours is None:
        log.warning("message %s: no MLR to %s, its receiving party is unknown", work.id, partner.id)
        return None
    doc = work.document
    reference = doc.document_id if doc and doc.document_id else work.filename or str(work.id)
    return Mlr(
        response_id=f"MLR-{work.id}-{work.attempts + 1}",
        issued=now(),
        sender=ours,
        receiver=(partner.endpoint.scheme, partner.endpoint.value),
        code=code,
        reference=reference,
        description=_description(error),
        lines=_lines(work.findings, error),
    )


def _description(error: GatewayError | None) -> str:
    if error is None:
        return "Accepted"
    return f"Rejected: {error.code.value}: {error.message}"[:1000]


def _lines(findings: Sequence[Finding], error: GatewayError | None) -> list[MlrLine]:
    if error is None:
        return []
    failing = fatal(findings)
    if not failing:  # refused for a reason of the gateway's own reading (a line ID twice...)
        return [MlrLine(f"line {error.line}" if error.line else "/", error.message[:1000], "BV")]
    lines = [
        MlrLine(
            f.location or (f"line {f.line}" if f.line else "/"),
            f"[{f.rule_id}] {f.text}"[:1000] if f.rule_id != XSD else f.text[:1000],
            "SV" if f.rule_set == XSD else "BV",
        )
        for f in failing[:MAX_LINES]
    ]
    if len(failing) > MAX_LINES:
        more = len(failing) - MAX_LINES
        lines.append(MlrLine("/", f"and {more} more findings of the same check", "BV"))
    return lines


def _is_a_response(work: Work, root: etree._Element | None) -> bool:
    if work.document is not None:
        return work.document.kind is DocumentKind.APPLICATION_RESPONSE
    return root is not None and etree.QName(root).localname == "ApplicationResponse"


def _our_endpoint(
    settings: Settings, work: Work, partner: Partner, root: etree._Element | None
) -> tuple[str, str] | None:
    """The party the message was for, which answers: the configured partner it was addressed
    to (its endpoint is checked by the configuration), else what the document says."""
    counterpart = settings.partner(work.counterpart) if work.counterpart else None
    if counterpart is not None:
        return counterpart.endpoint.scheme, counterpart.endpoint.value
    receiver = work.document.receiver() if work.document else None
    if receiver and receiver.endpoint and receiver.endpoint.scheme:
        return receiver.endpoint.scheme, receiver.endpoint.value
    return _loose_receiver(root, set(Partner.keys(partner))) if root is not None else None


def _stored_root(store: Store, message_id: int) -> etree._Element | None:
    """The stored bytes of a message that failed before it was read, parsed (hardened)."""
    with store.connect() as conn:
        payload = conn.scalar(
            select(message_payloads.c.payload).where(message_payloads.c.message_id == message_id)
        )
    if not payload:
        return None
    try:
        return parse(payload, max_size=len(payload))
    except GatewayError:
        return None


def _loose_receiver(root: etree._Element, theirs: set[str]) -> tuple[str, str] | None:
    """The first endpoint in the document that is not the sender's (a document that failed
    before it was read)."""
    for element in root.iter(etree.QName(CBC, "EndpointID").text):
        scheme, value = element.get("schemeID"), (element.text or "").strip()
        if scheme and value and f"{scheme}:{value}" not in theirs:
            return scheme, value
    return None
