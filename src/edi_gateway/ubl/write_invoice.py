"""Write a domain :class:`Invoice` as Peppol BIS Billing 3.0 (Invoice, CreditNote) or UBL DebitNote.

Element order follows ``UBL-Invoice-2.1.xsd``, ``UBL-CreditNote-2.1.xsd`` and
``UBL-DebitNote-2.1.xsd``; what is written follows EN 16931 (CEN-EN16931-UBL) and the Peppol
rules (PEPPOL-EN16931-UBL). Every amount comes from :mod:`edi_gateway.domain.billing`, never
from the domain object's own totals, so the document always adds up. Public entry points:
:func:`edi_gateway.ubl.write.write_invoice` and :func:`edi_gateway.ubl.write.write_debit_note`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from edi_gateway.domain.billing import (
    SELF_BILLED_CREDIT_NOTE,
    SELF_BILLED_DEBIT_NOTE,
    SELF_BILLED_INVOICE,
    SELF_BILLING_PROFILE,
    ZERO,
    InvoiceLine,
    Totals,
    compute,
)
from edi_gateway.domain.documents import SELF_BILLING, DocumentKind, Invoice, Line, self_billed
from edi_gateway.ubl.namespaces import cac, cbc
from edi_gateway.ubl.read_values import clean
from edi_gateway.ubl.write_common import (
    Element,
    Problems,
    add,
    add_header,
    add_item,
    add_quantity,
    check_unique_line_ids,
    date_text,
    decimal_text,
    new_root,
    serialize,
)
from edi_gateway.ubl.write_invoice_parts import (
    CREDIT_TRANSFER,
    add_allowance_charge,
    add_monetary_total,
    add_party,
    add_payment,
    add_tax_category,
    add_tax_total,
    amount_text,
    check_seller_vat,
    out_of_scope,
)

__all__ = [
    "CREDIT_NOTE_TYPE_CODES",
    "CREDIT_TRANSFER",
    "CUSTOMIZATION_ID",
    "INVOICE_TYPE_CODES",
    "PROFILE_ID",
    "SELF_BILLED_TYPE_CODES",
    "write_debit_note",
    "write_invoice",
]

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
_INVOICE_CODES = "71 80 82 84 102 218 219 326 331 380 382 383 384 386 388 393 395 553 575 623"
INVOICE_TYPE_CODES = frozenset(f"{_INVOICE_CODES} 780 817 870 875 876 877".split())
"""Type codes PEPPOL-EN16931-P0100 allows in an ``<Invoice>`` (383 = debit note)."""
CREDIT_NOTE_TYPE_CODES = frozenset({"381", "396", "81", "83", "532"})
"""Type codes PEPPOL-EN16931-P0101 allows in a ``<CreditNote>``."""
SELF_BILLED_TYPE_CODES = {
    "Invoice": frozenset({SELF_BILLED_INVOICE, SELF_BILLED_DEBIT_NOTE}),
    "CreditNote": frozenset({SELF_BILLED_CREDIT_NOTE}),
}
"""Type codes PEPPOL-EN16931-UBL-SB allows (P0100 / P0101 of the self-billing rules)."""
_SELF_BILLED_DEFAULT = {"Invoice": SELF_BILLED_INVOICE, "CreditNote": SELF_BILLED_CREDIT_NOTE}


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the three billing document types differ (Peppol ones have a type code)."""

    root: str
    quantity_tag: str
    default_type: str | None = None
    type_codes: frozenset[str] = frozenset()

    @property
    def peppol(self) -> bool:
        return self.default_type is not None


_LAYOUTS = {
    DocumentKind.INVOICE: _Layout("Invoice", "InvoicedQuantity", "380", INVOICE_TYPE_CODES),
    DocumentKind.CREDIT_NOTE: _Layout(
        "CreditNote", "CreditedQuantity", "381", CREDIT_NOTE_TYPE_CODES
    ),
    DocumentKind.DEBIT_NOTE: _Layout("DebitNote", "DebitedQuantity"),
}


def write_invoice(invoice: Invoice) -> bytes:
    """Serialize ``invoice`` as Peppol BIS Billing 3.0: an ``<Invoice>`` or a ``<CreditNote>``.

    ``invoice.kind`` picks the root: INVOICE (type code 380 by default; 383 for a Peppol debit
    note) or CREDIT_NOTE (381 by default). Header: the Billing 3.0 CustomizationID / ProfileID,
    ID, IssueDate, DueDate (Invoice only), the type code, one Note (the reason, else the notes
    joined), DocumentCurrencyCode, ``OrderReference/ID`` (the order, ``order_refs[0]``), one
    ``BillingReference/InvoiceDocumentReference`` per ``billing_refs`` (the invoice a credit or
    debit note corrects), AccountingSupplierParty and AccountingCustomerParty (endpoint, one
    identification, postal address with country, VAT number as PartyTaxScheme (none on a
    document with VAT category O, BR-O-02..04), legal entity
    with name and registration), PaymentMeans (credit transfer, code 30, when the IBAN is
    known), PaymentTerms, document-level AllowanceCharge, TaxTotal with one TaxSubtotal per VAT
    category + rate, LegalMonetaryTotal. Lines: ID, quantity, LineExtensionAmount,
    ``OrderLineReference/LineID`` (traceability to the order line), line allowances/charges,
    Item (name, identifiers, ClassifiedTaxCategory) and Price (with BaseQuantity when not 1).

    Lines that are :class:`~edi_gateway.domain.billing.InvoiceLine` carry their VAT and
    allowances; plain lines are taken as standard-rated without a known rate (a problem).

    Raises:
        WriteError: listing everything that keeps the document from being valid Billing 3.0.
    """
    if invoice.kind not in (DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE):
        raise ValueError(f"write_invoice writes Invoice and CreditNote, not {invoice.kind}")
    return _write(invoice, _LAYOUTS[invoice.kind])


def write_debit_note(invoice: Invoice) -> bytes:
    """Serialize ``invoice`` as a UBL 2.1 ``<DebitNote>`` (not a Peppol Billing document).

    For partners whose profile asks for it (``debit_note_as: debitnote``); Peppol partners get
    an Invoice with type code 383 from :func:`write_invoice`. The content mirrors the Invoice
    (parties, VAT breakdown, totals as ``RequestedMonetaryTotal``); a DebitNoteLine has no
    OrderLineReference, so each line refers to the corrected invoice's line through
    ``BillingReference/InvoiceDocumentReference`` + ``BillingReferenceLine/ID`` (no line for
    an amount-only line, a fee or a price correction, which corrects no invoice line). No
    CustomizationID / ProfileID is written unless the document has its own: no Peppol
    specification covers a DebitNote. XSD-valid; no Schematron applies.
    """
    return _write(invoice, _LAYOUTS[DocumentKind.DEBIT_NOTE])


def _write(invoice: Invoice, layout: _Layout) -> bytes:
    problems = Problems(layout.root)
    root = new_root(layout.root)
    lines = [_billing_line(line) for line in invoice.lines]
    totals = _totals(lines, invoice, problems)
    _add_head(root, invoice, layout, problems)
    currency = clean(invoice.currency)
    if currency is None:
        problems.add("the document currency is missing")
    add(root, cbc("DocumentCurrencyCode"), currency or "")
    _add_references(root, invoice, layout, problems)
    vat_ids = not out_of_scope(invoice, lines)
    for role, party in (
        ("AccountingSupplierParty", invoice.seller),
        ("AccountingCustomerParty", invoice.buyer),
    ):
        add_party(root, role, party, problems, vat_id=vat_ids)
    check_seller_vat(invoice, lines, problems)
    if layout.peppol:  # a DebitNote has its allowances and charges before its payment terms
        add_payment(root, invoice, layout.root, totals, problems)
    for position, item in enumerate(invoice.allowances_charges, start=1):
        where = f"allowance/charge {position}"
        el = add_allowance_charge(root, item, currency or "", where, problems)
        add_tax_category(el, "TaxCategory", item.vat_category, item.vat_rate)
    if not layout.peppol:
        add_payment(root, invoice, layout.root, totals, problems)
    if totals is not None:
        add_tax_total(root, totals, currency or "")
        total_tag = "LegalMonetaryTotal" if layout.peppol else "RequestedMonetaryTotal"
        add_monetary_total(root, total_tag, totals, currency or "")
    if not lines:
        problems.add("a billing document needs at least one line (BR-16)")
    check_unique_line_ids(lines, problems)
    nets = totals.line_nets if totals is not None else (Decimal(0),) * len(lines)
    for line, net in zip(lines, nets, strict=True):
        _add_line(
            root, line, net, invoice, layout=layout, currency=currency or "", problems=problems
        )
    problems.raise_any()
    return serialize(root)


def _billing_line(line: Line) -> InvoiceLine:
    if isinstance(line, InvoiceLine):
        return line
    return InvoiceLine(*(getattr(line, f.name) for f in fields(Line)))


def _totals(lines: list[InvoiceLine], invoice: Invoice, problems: Problems) -> Totals | None:
    try:
        return compute(lines, invoice.allowances_charges, prepaid=invoice.prepaid_amount or ZERO)
    except ValueError as exc:
        problems.add(str(exc))
        return None


def _add_head(root: Element, invoice: Invoice, layout: _Layout, problems: Problems) -> None:
    doc_ids = clean(invoice.customization_id), clean(invoice.profile_id)
    sb = self_billed(invoice.customization_id)
    if sb and not layout.peppol:
        problems.add("a self-billed debit note is an Invoice 527, not a UBL DebitNote")
    if layout.peppol:
        customization, profile = (
            (SELF_BILLING, SELF_BILLING_PROFILE) if sb else (CUSTOMIZATION_ID, PROFILE_ID)
        )
        add_header(root, invoice, customization=customization, profile=profile, problems=problems)
    else:  # no Peppol specification covers a DebitNote: its own IDs only
        for tag, value in (("CustomizationID", doc_ids[0]), ("ProfileID", doc_ids[1])):
            if value is not None:
                add(root, cbc(tag), value)
        add(root, cbc("ID"), clean(invoice.document_id) or "")
        if invoice.issue_date is not None:
            add(root, cbc("IssueDate"), date_text(invoice.issue_date))
        if not (clean(invoice.document_id) and invoice.issue_date):
            problems.add("the document ID or the issue date is missing")
    if layout.root == "Invoice" and invoice.due_date is not None:
        add(root, cbc("DueDate"), date_text(invoice.due_date))
    if layout.peppol:
        allowed = SELF_BILLED_TYPE_CODES[layout.root] if sb else layout.type_codes
        default = _SELF_BILLED_DEFAULT[layout.root] if sb else layout.default_type
        code = clean(invoice.type_code) or default
        if code not in allowed:
            rules = "self-billing " if sb else ""
            problems.add(
                f"type code {code!r} is not allowed in a {rules}{layout.root} (P0100/P0101)"
            )
        add(root, cbc(f"{layout.root}TypeCode"), code or "")
    notes = [n for n in dict.fromkeys(clean(n) for n in [invoice.reason, *invoice.notes]) if n]
    if notes:  # PEPPOL-EN16931-R002: one note at most
        add(root, cbc("Note"), "\n".join(notes))


def _add_references(root: Element, invoice: Invoice, layout: _Layout, problems: Problems) -> None:
    orders = [ref for ref in (clean(r) for r in invoice.order_refs) if ref is not None]
    if len(orders) > 1:
        problems.add(f"a billing document refers to one order at most; got {orders}")
    if orders:
        add(add(root, cac("OrderReference")), cbc("ID"), orders[0])
    elif layout.peppol:
        problems.add("the order reference is missing (PEPPOL-EN16931-R003)")
    for ref in dict.fromkeys(clean(r) for r in invoice.billing_refs):
        if ref is not None:
            billing = add(root, cac("BillingReference"))
            add(add(billing, cac("InvoiceDocumentReference")), cbc("ID"), ref)


def _add_line(
    root: Element,
    line: InvoiceLine,
    net: Decimal,
    invoice: Invoice,
    *,
    layout: _Layout,
    currency: str,
    problems: Problems,
) -> None:
    line_id = clean(line.line_id) or ""
    where = f"line {line_id}"
    el = add(root, cac(f"{layout.root}Line"))
    add(el, cbc("ID"), line_id)
    note = clean(line.note)
    if note is not None:
        add(el, cbc("Note"), note)
    if line.quantity is None:
        problems.add(f"{where}: the quantity is missing")
    else:
        add_quantity(el, cbc(layout.quantity_tag), line.quantity, where, problems)
    add(el, cbc("LineExtensionAmount"), amount_text(net), currencyID=currency)
    order_line = clean(line.order_line_ref)
    if layout.root == "DebitNote":
        _add_line_billing_reference(el, invoice, line, where, problems)
    elif order_line is not None:
        add(add(el, cac("OrderLineReference")), cbc("LineID"), order_line)
    for position, item in enumerate(line.allowances_charges, start=1):
        add_allowance_charge(el, item, currency, f"{where} allowance/charge {position}", problems)
    add_item(el, line, where, problems)
    item_el = el.find(cac("Item"))
    if item_el is not None:
        add_tax_category(item_el, "ClassifiedTaxCategory", line.vat_category, line.vat_rate)
    _add_price(el, line, currency, where, problems)


def _add_line_billing_reference(
    el: Element, invoice: Invoice, line: InvoiceLine, where: str, problems: Problems
) -> None:
    refs = [ref for ref in (clean(r) for r in invoice.billing_refs) if ref is not None]
    if not refs:
        problems.add(f"{where}: a debit note line refers to the invoice it corrects")
        return
    billing = add(el, cac("BillingReference"))
    add(add(billing, cac("InvoiceDocumentReference")), cbc("ID"), refs[0])
    order_line = clean(line.order_line_ref)
    if order_line is not None:  # an amount-only line (a fee) corrects no line of the invoice
        add(add(billing, cac("BillingReferenceLine")), cbc("ID"), order_line)


def _add_price(
    el: Element, line: InvoiceLine, currency: str, where: str, problems: Problems
) -> None:
    if line.price is None or not line.price.is_finite():
        problems.add(f"{where}: the price is missing")
        return
    if line.price < 0:
        problems.add(f"{where}: the item net price {line.price} is negative (BR-27)")
    price = add(el, cac("Price"))
    add(price, cbc("PriceAmount"), decimal_text(line.price), currencyID=currency)
    base = line.base_quantity
    if base is not None and base != 1 and line.quantity is not None:
        add(
            price, cbc("BaseQuantity"), decimal_text(base), unitCode=clean(line.quantity.unit) or ""
        )
