"""The parties and the number of a billing document the gateway issues on an order.

Part of :mod:`edi_gateway.outbound.invoice`: the seller comes from the supplier's ``legal``
profile (which wins over what the Order said), the buyer from the Order and, when the buyer has
one, its ``legal`` profile. Numbers are ``<prefix>-<order>-<n>``, unique per issuer: the
supplier, or the buyer for a self-billed supplier (:func:`self_billing`, ADR 0027).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Select, Table, bindparam, select, union_all

from edi_gateway.domain.billing import (
    SELF_BILLED_CREDIT_NOTE,
    SELF_BILLED_DEBIT_NOTE,
    SELF_BILLED_INVOICE,
)
from edi_gateway.domain.documents import SELF_BILLING, DocumentKind, Order, Party, PartyId
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.store.schema import documents, purged_documents

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import LegalProfile, Partner, Settings
    from edi_gateway.store.tables import Order as OrderRow
    from edi_gateway.ubl.read import OrderParties

BILLING_KINDS = (DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE, DocumentKind.DEBIT_NOTE)
SELF_BILLED = {
    "380": SELF_BILLED_INVOICE,
    "381": SELF_BILLED_CREDIT_NOTE,
    "383": SELF_BILLED_DEBIT_NOTE,
}
"""The self-billed type code of each Billing 3.0 one the gateway issues."""


def self_billing(
    supplier: Partner, prefix: str, code: str | None
) -> tuple[str, str | None, str | None]:
    """The number prefix, type code and CustomizationID of a billing document on ``supplier``:
    as given (Billing 3.0), or for a supplier with ``self_billing: true`` the Self-Billing 3.0
    ones (``SB-<prefix>``, 389 / 261 / 527, the SB CustomizationID)."""
    if not supplier.self_billing or code is None:
        return prefix, code, None
    return f"SB-{prefix}", SELF_BILLED[code], SELF_BILLING


def supplier(settings: Settings, order: OrderRow) -> tuple[Partner, LegalProfile]:
    """The order's supplier and its legal profile, or NotAllowed saying what to configure."""
    partner = settings.partner(order.seller_partner) if order.seller_partner else None
    if partner is None and order.seller_key:
        partner = settings.partner_by_key([order.seller_key])
    if partner is None:
        raise NotAllowed(
            f"the supplier of order {order.order_number} ({order.seller_key}) is not a partner "
            f"in {settings.path}; add it with its legal profile (partners[].legal) first"
        )
    if partner.legal is None:
        raise NotAllowed(
            f"partner {partner.id!r} has no legal profile: set partners[].legal (name, "
            f"country, VAT number, IBAN, payment terms) in {settings.path} to invoice"
        )
    if not partner.legal.payment_terms:
        raise NotAllowed(f"set partners[].legal.payment_terms of {partner.id!r} (BR-CO-25)")
    return partner, partner.legal


def number(session: Session, order: OrderRow, issuer: Party, prefix: str) -> str:
    """``<prefix>-<order>-<n>``: the first n not yet used by the billing documents ``issuer``
    sent (the supplier; the buyer for a self-billed one)."""
    stem = f"{prefix}-{order.order_number}-"
    values = {"sender_key": issuer.key(), "stem": f"{stem}%"}
    taken = set(session.scalars(_TAKEN, values))
    n = 1
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"


def seller(original: Order | OrderParties, partner: Partner, legal: LegalProfile) -> Party:
    """The seller: the Order's seller endpoint and identifiers, the legal profile's data."""
    party = original.seller or Party()
    endpoint = party.endpoint or PartyId(partner.endpoint.value, partner.endpoint.scheme)
    return with_legal(Party(endpoint=endpoint, ids=party.ids or [endpoint]), legal)


def buyer(
    session: Session,
    original: Order | OrderParties,
    partner: Partner | None,
    order: OrderRow,
    settings: Settings,
) -> Party:
    """The Buyer (EN 16931 BG-7, ``cac:AccountingCustomerParty``) of a billing document on
    ``order``: the invoicee the Order names (its own ``cac:AccountingCustomerParty``, the party
    the buyer asks to be invoiced; or the one the latest Order Change in effect names instead,
    ``order_change.invoicee``; when neither names one, the buyer partner's ``invoicee:``) when
    that is not its buyer and has the electronic address an invoice's Buyer needs
    (PEPPOL-EN16931-R010), else its buyer as on the Order; with the legal profile of that
    party's partner (``partner``: the buyer's) when it has one, a country needed."""
    from edi_gateway.pipeline.order_change import invoicee as in_effect

    party, who = original.buyer or Party(), "buyer"
    invoicee = in_effect(session, order.id, original.billed)
    if invoicee is None:
        invoicee = settings.invoicee(partner)
    if invoicee is not None and invoicee.endpoint and invoicee.key() not in party.keys():  # noqa: SIM118
        party, who = invoicee, "invoicee"
        partner = settings.partner_by_key(invoicee.keys())
    if partner is not None and partner.legal is not None:
        return with_legal(party, partner.legal)
    if not party.country:
        raise NotAllowed(
            f"the {who}'s country of order {order.order_number} is unknown: set "
            f"partners[].legal of the {who} (name, address, country, VAT number)"
        )
    return party


def with_legal(party: Party, legal: LegalProfile) -> Party:
    """``party`` with the legal profile's name, address and numbers (the profile wins)."""
    company = legal.company_id
    return Party(
        endpoint=party.endpoint,
        ids=party.ids,
        name=legal.registration_name or party.name,
        vat_id=legal.vat_id or party.vat_id,
        country=legal.country,
        street=legal.street or party.street,
        city=legal.city or party.city,
        postal_zone=legal.postal_zone or party.postal_zone,
        company_id=PartyId(company.value, company.scheme) if company else party.company_id,
    )


def _numbers(table: Table) -> Select[str]:
    """The billing document numbers ``sender_key`` sent that start with ``stem``; built once,
    values as parameters (a statement built per call cost ~0.3 ms to build)."""
    c = table.c
    return select(c.doc_number).where(
        c.kind.in_([k.value for k in BILLING_KINDS]),
        c.sender_key == bindparam("sender_key"),
        c.doc_number.like(bindparam("stem")),
    )


_TAKEN = union_all(_numbers(documents), _numbers(purged_documents))
"""The numbers used: those in the store and those purged, which stay used (docs/adr/0037);
in one statement."""
