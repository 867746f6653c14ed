"""Whether a pushed document comes from the partner whose credentials brought it (ADR 0020).

A push endpoint (AS2, plain HTTP) knows who authenticated: the partner of the HTTP credentials
or of the AS2 certificate. It writes that partner, and the partners it may send for
(``send_for``), into the envelope's meta (:func:`pushed_by`). Before intake stores anything,
``receive`` calls :func:`check_sender`: the document's sender party, found the way processing
finds it (the buyer of an order, the seller of a reply, the sender of an ApplicationResponse;
``ubl/read_parties.py``) and mapped to a partner by its identifiers, must be one of those, else
:class:`SenderMismatch` (the endpoint answers 403, nothing is stored).

A payload that is no readable UBL document, or whose sender party is missing, passes: intake
stores it as failed with its own code (``NOT_WELL_FORMED``, ``XSD_INVALID``...), in no other
partner's name. The bytes are read with the hardened parser (no DTDs, no entities).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edi_gateway.domain.documents import BUYER_SENT, DocumentKind
from edi_gateway.envelope import Envelope
from edi_gateway.errors import DocumentError, ErrorCode, GatewayError
from edi_gateway.ubl.namespaces import root_tag
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.read_parties import read_buyer_seller
from edi_gateway.ubl.read_values import group_children

PARTNER, SEND_FOR = "partner", "send_for"
"""The meta keys of an envelope's authenticated partner and whom it may send for."""
_KINDS = {root_tag(kind.value): kind for kind in DocumentKind}


class SenderMismatch(GatewayError):
    """The document's sender is not the partner whose credentials pushed it."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.SENDER_MISMATCH, message)


def pushed_by(partner: str, send_for: Sequence[str]) -> dict[str, str]:
    """The envelope meta naming the authenticated ``partner`` and whom it may send for."""
    return {PARTNER: partner, SEND_FOR: " ".join(send_for)}


def sender_keys(payload: bytes, max_bytes: int) -> list[str] | None:
    """The identifiers of the document's sender party (``Party.keys()``, most specific first;
    empty for a party without any), or None when the payload is no UBL document we read or
    names no sender party."""
    try:
        root = parse(payload, max_size=max_bytes)
    except DocumentError:
        return None
    kind = _KINDS.get(root.tag) if isinstance(root.tag, str) else None
    if kind is None:
        return None
    buyer, seller = read_buyer_seller(group_children(root), kind)
    party = buyer if kind in BUYER_SENT else seller
    return None if party is None else party.keys()


def check_sender(
    envelope: Envelope, partner_of: Callable[[Sequence[str]], str | None], max_bytes: int
) -> None:
    """Raise :class:`SenderMismatch` when a pushed envelope's document comes from another
    partner than the authenticated one (or those it may send for); envelopes without an
    authenticated partner pass."""
    partner = envelope.meta.get(PARTNER)
    if not partner:
        return
    keys = sender_keys(envelope.payload, max_bytes)
    if keys is None:
        return
    allowed = [partner, *envelope.meta.get(SEND_FOR, "").split()]
    sender = partner_of(keys)
    if sender in allowed:
        return
    who = f"partner {sender!r}" if sender else ", ".join(keys) or "a party without identifiers"
    may = " or ".join(repr(p) for p in allowed)
    raise SenderMismatch(
        f"the document comes from {who}, but it was pushed with the credentials of partner "
        f"{partner!r}, which may send only as {may}"
    )
