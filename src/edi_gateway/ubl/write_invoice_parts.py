"""The parts of a Billing 3.0 document outside its lines: parties, payment, allowances and
charges, the VAT breakdown and the totals. Part of :mod:`edi_gateway.ubl.write_invoice`; every
amount comes from :mod:`edi_gateway.domain.billing`.
"""

from __future__ import annotations

from decimal import Decimal

from edi_gateway.domain.billing import (
    NO_RATE_CATEGORIES,
    OUT_OF_SCOPE,
    STANDARD,
    AllowanceCharge,
    InvoiceLine,
    Totals,
    VatBreakdown,
    money,
    vat_categories,
    vat_key,
)
from edi_gateway.domain.documents import Invoice, Party, PartyId
from edi_gateway.ubl.namespaces import cac, cbc
from edi_gateway.ubl.read_values import clean
from edi_gateway.ubl.write_common import (
    Element,
    Problems,
    add,
    date_text,
    decimal_text,
)

CREDIT_TRANSFER = "30"
"""UNCL 4461 payment means code written with the seller's IBAN."""


def add_party(
    root: Element, role: str, party: Party | None, problems: Problems, *, vat_id: bool = True
) -> None:
    """``cac:<role>/cac:Party`` with what EN 16931 wants of a seller or buyer; its VAT number
    unless ``vat_id`` is false (a document not subject to VAT, see :func:`out_of_scope`)."""
    if party is None:
        problems.add(f"the {role} is missing")
        return
    el = add(add(root, cac(role)), cac("Party"))
    endpoint = party.endpoint
    if endpoint is None or clean(endpoint.value) is None or clean(endpoint.scheme) is None:
        problems.add(f"the {role} has no endpoint ID with a scheme (PEPPOL-EN16931-R010/R020)")
    else:
        add(el, cbc("EndpointID"), clean(endpoint.value), schemeID=clean(endpoint.scheme) or "")
    ids = [pid for pid in party.ids if clean(pid.value) is not None]
    if ids:  # UBL-SR-16: the buyer identifier occurs once; one for the seller is enough too
        add_id(add(el, cac("PartyIdentification")), "ID", ids[0])
    address = add(el, cac("PostalAddress"))
    for tag, value in (
        ("StreetName", party.street),
        ("CityName", party.city),
        ("PostalZone", party.postal_zone),
    ):
        if clean(value) is not None:
            add(address, cbc(tag), clean(value))
    country = clean(party.country)
    if country is None:
        problems.add(f"the {role} has no country (BR-09/BR-11)")
    add(add(address, cac("Country")), cbc("IdentificationCode"), country or "")
    vat = clean(party.vat_id) if vat_id else None
    if vat is not None:
        tax = add(el, cac("PartyTaxScheme"))
        add(tax, cbc("CompanyID"), vat)
        add(add(tax, cac("TaxScheme")), cbc("ID"), "VAT")
    legal = add(el, cac("PartyLegalEntity"))
    name = clean(party.name)
    if name is None:
        problems.add(f"the {role} has no name (BR-06/BR-07)")
    add(legal, cbc("RegistrationName"), name or "")
    if party.company_id is not None and clean(party.company_id.value) is not None:
        add_id(legal, "CompanyID", party.company_id)


def add_id(parent: Element, tag: str, pid: PartyId) -> None:
    """``cbc:<tag>`` with the identifier and its scheme (when it has one)."""
    scheme = clean(pid.scheme)
    add(parent, cbc(tag), clean(pid.value), **({"schemeID": scheme} if scheme else {}))


def out_of_scope(invoice: Invoice, lines: list[InvoiceLine]) -> bool:
    """Whether a line or an allowance/charge is not subject to VAT (category O): then neither
    the seller's nor the buyer's VAT number may appear (BR-O-02, BR-O-03, BR-O-04)."""
    return OUT_OF_SCOPE in vat_categories(lines, invoice.allowances_charges)


def check_seller_vat(invoice: Invoice, lines: list[InvoiceLine], problems: Problems) -> None:
    """A VAT-rated invoice needs the seller's VAT number (BR-S-02 and the like)."""
    categories = vat_categories(lines, invoice.allowances_charges)
    seller = invoice.seller
    if categories & {STANDARD, "Z", "E", "AE", "K", "G"} and not (seller and clean(seller.vat_id)):
        problems.add("the seller has no VAT number, which a VAT-rated invoice needs (BR-S-02)")


def add_payment(
    root: Element, invoice: Invoice, layout_root: str, totals: Totals | None, problems: Problems
) -> None:
    """PaymentMeans (the invoice's means code, else a credit transfer, to its account, with its
    payment reference, else the invoice number), PaymentTerms; BR-CO-25, NL-R-007."""
    iban = clean(invoice.iban)
    if iban is not None:
        means = add(root, cac("PaymentMeans"))
        code = clean(invoice.payment_means_code) or CREDIT_TRANSFER
        if code == CREDIT_TRANSFER:
            add(means, cbc("PaymentMeansCode"), code, name="Credit transfer")
        else:
            add(means, cbc("PaymentMeansCode"), code)
        if layout_root != "Invoice" and invoice.due_date is not None:
            add(means, cbc("PaymentDueDate"), date_text(invoice.due_date))
        add(means, cbc("PaymentID"), clean(invoice.payment_id) or clean(invoice.document_id) or "")
        account = add(means, cac("PayeeFinancialAccount"))
        add(account, cbc("ID"), iban)
        bic = clean(invoice.bic)
        if bic is not None:
            add(add(account, cac("FinancialInstitutionBranch")), cbc("ID"), bic)
    terms = clean(invoice.payment_terms)
    if terms is not None:
        add(add(root, cac("PaymentTerms")), cbc("Note"), terms)
    seller_country = clean(invoice.seller.country) if invoice.seller else None
    if iban is None and layout_root == "Invoice" and seller_country == "NL":
        problems.add("a Dutch supplier must give payment means: the IBAN is missing (NL-R-007)")
    due_written = invoice.due_date is not None and (layout_root == "Invoice" or iban is not None)
    if totals is not None and totals.payable > 0 and terms is None and not due_written:
        problems.add("a positive amount due needs a due date or payment terms (BR-CO-25)")


def add_allowance_charge(
    parent: Element, item: AllowanceCharge, currency: str, where: str, problems: Problems
) -> Element:
    """``cac:AllowanceCharge``: indicator, reason code and/or text (BR-33/38), the percentage
    (``MultiplierFactorNumeric``), amount and base amount, the last two only together (R041/42)."""
    el = add(parent, cac("AllowanceCharge"))
    add(el, cbc("ChargeIndicator"), "true" if item.charge else "false")
    code, reason = clean(item.reason_code), clean(item.reason)
    if code is None and reason is None:
        problems.add(f"{where}: a reason or reason code is needed (BR-33/BR-38)")
    if code is not None:
        add(el, cbc("AllowanceChargeReasonCode"), code)
    if reason is not None:
        add(el, cbc("AllowanceChargeReason"), reason)
    percent = item.percent if item.base_amount is not None else None
    if percent is not None:
        add(el, cbc("MultiplierFactorNumeric"), decimal_text(percent))
    add(el, cbc("Amount"), amount_text(item.amount), currencyID=currency)
    if percent is not None and item.base_amount is not None:
        add(el, cbc("BaseAmount"), amount_text(item.base_amount), currencyID=currency)
    return el


def add_tax_category(
    parent: Element, tag: str, category: str, rate: Decimal | None, reason: str | None = None
) -> None:
    """``cac:<tag>`` (TaxCategory, ClassifiedTaxCategory): ID, Percent, exemption reason, VAT."""
    el = add(parent, cac(tag))
    add(el, cbc("ID"), category)
    key_rate = vat_key(category, rate)[1]
    if category not in NO_RATE_CATEGORIES:
        add(el, cbc("Percent"), decimal_text(key_rate if key_rate is not None else Decimal(0)))
    if reason is not None:
        add(el, cbc("TaxExemptionReason"), reason)
    add(add(el, cac("TaxScheme")), cbc("ID"), "VAT")


def add_tax_total(root: Element, totals: Totals, currency: str) -> None:
    """``cac:TaxTotal``: the VAT total and one ``cac:TaxSubtotal`` per category and rate."""
    tax_total = add(root, cac("TaxTotal"))
    add(tax_total, cbc("TaxAmount"), amount_text(totals.tax_total), currencyID=currency)
    for part in totals.breakdown:
        _add_subtotal(tax_total, part, currency)


def _add_subtotal(tax_total: Element, part: VatBreakdown, currency: str) -> None:
    subtotal = add(tax_total, cac("TaxSubtotal"))
    add(subtotal, cbc("TaxableAmount"), amount_text(part.taxable), currencyID=currency)
    add(subtotal, cbc("TaxAmount"), amount_text(part.tax), currencyID=currency)
    add_tax_category(subtotal, "TaxCategory", part.category, part.rate, part.exemption_reason)


def add_monetary_total(root: Element, tag: str, totals: Totals, currency: str) -> None:
    """``cac:<tag>`` (LegalMonetaryTotal or RequestedMonetaryTotal) from the totals."""
    total = add(root, cac(tag))
    amounts = (
        ("LineExtensionAmount", totals.line_extension, True),
        ("TaxExclusiveAmount", totals.tax_exclusive, True),
        ("TaxInclusiveAmount", totals.tax_inclusive, True),
        ("AllowanceTotalAmount", totals.allowance_total, totals.allowance_total != 0),
        ("ChargeTotalAmount", totals.charge_total, totals.charge_total != 0),
        ("PrepaidAmount", totals.prepaid, totals.prepaid != 0),
        ("PayableRoundingAmount", totals.rounding, totals.rounding != 0),
        ("PayableAmount", totals.payable, True),
    )
    for name, value, written in amounts:
        if written:
            add(total, cbc(name), amount_text(value), currencyID=currency)


def amount_text(value: Decimal) -> str:
    """An amount rounded half up to cents, in plain notation."""
    return decimal_text(money(value))
