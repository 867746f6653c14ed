"""Builds UBL 2.1 documents for tests and benchmarks (our own, never copied from the corpus).

Every builder returns bytes of an XSD-valid document; parameters pick ids, parties and lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

NS = "urn:oasis:names:specification:ubl:schema:xsd:"
CAC = 'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"'
CBC = 'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"'
POACC = "urn:fdc:peppol.eu:poacc"
BUYER_GLN = "7300010000001"
SELLER_GLN = "7310000000003"


@dataclass(frozen=True)
class Item:
    line_id: str
    quantity: str
    price: str = "10.00"
    name: str = "Widget"
    unit: str = "C62"
    seller_item: str | None = None


def buyer_partner(**extra: Any) -> dict[str, Any]:
    """The gateway.yaml partner entry of the factory's buyer (``BUYER_GLN``), plus ``extra``."""
    endpoint = {"scheme": "0088", "value": BUYER_GLN}
    return {"id": "buyer", "name": "Buyer AB", "role": "buyer", "endpoint": endpoint, **extra}


def seller_partner(**extra: Any) -> dict[str, Any]:
    """The gateway.yaml partner entry of the factory's seller (``SELLER_GLN``), plus ``extra``."""
    endpoint = {"scheme": "0088", "value": SELLER_GLN}
    return {"id": "seller", "name": "Seller BV", "role": "supplier", "endpoint": endpoint, **extra}


def items(count: int, quantity: str = "10") -> list[Item]:
    return [
        Item(str(n), quantity, f"{(n % 50) + 1}.25", f"Article {n}", seller_item=f"SKU-{n:05d}")
        for n in range(1, count + 1)
    ]


def _party(gln: str, name: str) -> str:
    return (
        f'<cac:Party><cbc:EndpointID schemeID="0088">{gln}</cbc:EndpointID>'
        f'<cac:PartyIdentification><cbc:ID schemeID="0088">{gln}</cbc:ID></cac:PartyIdentification>'
        f"<cac:PartyLegalEntity><cbc:RegistrationName>{escape(name)}</cbc:RegistrationName>"
        "</cac:PartyLegalEntity></cac:Party>"
    )


def _head(root: str, transaction: str, doc_id: str, issue: str = "2026-11-01") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}{root}-2" {CAC} {CBC}>'
        f"<cbc:CustomizationID>{POACC}:trns:{transaction}:3</cbc:CustomizationID>"
        f"<cbc:ProfileID>{POACC}:bis:ordering:3</cbc:ProfileID>"
        f"<cbc:ID>{escape(doc_id)}</cbc:ID><cbc:IssueDate>{issue}</cbc:IssueDate>"
    )


def _amount(lines: Sequence[Item]) -> Decimal:
    return sum((Decimal(i.quantity) * Decimal(i.price) for i in lines), Decimal(0))


def _detail(i: Item) -> tuple[str, str]:
    """What a catalogue order line also carries: a description, a GTIN and a tax category
    (about 700 bytes a line in all, like the issue's 20,000-line, 14 MB order)."""
    description = f"<cbc:Description>{escape(i.name)}, box of 10</cbc:Description>"
    tail = (
        f'<cac:StandardItemIdentification><cbc:ID schemeID="0160">0735000{int(i.line_id):06d}'
        "</cbc:ID></cac:StandardItemIdentification>"
        "<cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent>"
        "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>"
    )
    return description, tail


def order(
    order_id: str,
    lines: Sequence[Item] = (),
    *,
    buyer: str = BUYER_GLN,
    seller: str = SELLER_GLN,
    buyer_name: str = "Buyer AB",
    seller_name: str = "Seller BV",
    detailed: bool = False,
    invoicee: str | None = None,
) -> bytes:
    """An Order; ``detailed`` lines carry what real catalogue lines do (~700 bytes each);
    ``invoicee``: the GLN of an AccountingCustomerParty (none by default)."""
    lines = lines or items(3)
    body = "".join(_order_line(i, detailed) for i in lines)
    billed = (
        f"<cac:AccountingCustomerParty>{_party(invoicee, 'Invoicee')}</cac:AccountingCustomerParty>"
        if invoicee
        else ""
    )
    return (
        _head("Order", "order", order_id)
        + "<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>"
        + f"<cac:BuyerCustomerParty>{_party(buyer, buyer_name)}</cac:BuyerCustomerParty>"
        + f"<cac:SellerSupplierParty>{_party(seller, seller_name)}</cac:SellerSupplierParty>"
        + billed
        + "<cac:AnticipatedMonetaryTotal>"
        + f'<cbc:PayableAmount currencyID="EUR">{_amount(lines):.2f}</cbc:PayableAmount>'
        + "</cac:AnticipatedMonetaryTotal>"
        + body
        + "</Order>"
    ).encode()


def _order_line(i: Item, detailed: bool) -> str:
    description, tail = _detail(i) if detailed else ("", "")
    seller_item = (
        f"<cac:SellersItemIdentification><cbc:ID>{i.seller_item}</cbc:ID>"
        "</cac:SellersItemIdentification>"
        if i.seller_item
        else ""
    )
    return (
        "<cac:OrderLine><cac:LineItem>"
        f"<cbc:ID>{i.line_id}</cbc:ID>"
        f'<cbc:Quantity unitCode="{i.unit}">{i.quantity}</cbc:Quantity>'
        f'<cbc:LineExtensionAmount currencyID="EUR">'
        f"{Decimal(i.quantity) * Decimal(i.price):.2f}</cbc:LineExtensionAmount>"
        f'<cac:Price><cbc:PriceAmount currencyID="EUR">{i.price}</cbc:PriceAmount></cac:Price>'
        f"<cac:Item>{description}<cbc:Name>{escape(i.name)}</cbc:Name>{seller_item}{tail}"
        "</cac:Item></cac:LineItem></cac:OrderLine>"
    )


def order_response(
    response_id: str,
    order_id: str,
    code: str,
    changes: Sequence[tuple[str, str, str]] = (),
    *,
    buyer: str = BUYER_GLN,
    seller: str = SELLER_GLN,
    added: Sequence[tuple[str, str, str]] = (),
) -> bytes:
    """``changes``: (order line id, line status code, quantity) for a CA response;
    ``added``: (line id, item name, price) of lines the seller adds (status 1, quantity 1)."""
    body = "".join(
        "<cac:OrderLine><cac:LineItem>"
        f"<cbc:ID>{line}</cbc:ID><cbc:LineStatusCode>{status}</cbc:LineStatusCode>"
        f'<cbc:Quantity unitCode="C62">{qty}</cbc:Quantity>'
        "<cac:Item><cbc:Name>x</cbc:Name></cac:Item>"
        "</cac:LineItem>"
        f"<cac:OrderLineReference><cbc:LineID>{line}</cbc:LineID></cac:OrderLineReference>"
        "</cac:OrderLine>"
        for line, status, qty in changes
    ) + "".join(
        "<cac:OrderLine><cac:LineItem>"
        f"<cbc:ID>{line}</cbc:ID><cbc:LineStatusCode>1</cbc:LineStatusCode>"
        '<cbc:Quantity unitCode="C62">1</cbc:Quantity>'
        f'<cac:Price><cbc:PriceAmount currencyID="EUR">{price}</cbc:PriceAmount></cac:Price>'
        f"<cac:Item><cbc:Name>{escape(name)}</cbc:Name></cac:Item>"
        "</cac:LineItem>"
        f"<cac:OrderLineReference><cbc:LineID>{line}</cbc:LineID></cac:OrderLineReference>"
        "</cac:OrderLine>"
        for line, name, price in added
    )
    return (
        _head("OrderResponse", "order_response", response_id)
        + f"<cbc:OrderResponseCode>{code}</cbc:OrderResponseCode>"
        + f"<cac:OrderReference><cbc:ID>{escape(order_id)}</cbc:ID></cac:OrderReference>"
        + f"<cac:SellerSupplierParty>{_party(seller, 'Seller BV')}</cac:SellerSupplierParty>"
        + f"<cac:BuyerCustomerParty>{_party(buyer, 'Buyer AB')}</cac:BuyerCustomerParty>"
        + body
        + "</OrderResponse>"
    ).encode()


def order_cancellation(
    cancellation_id: str,
    order_id: str,
    reason: str = "Project postponed",
    *,
    buyer: str = BUYER_GLN,
    seller: str = SELLER_GLN,
) -> bytes:
    """A buyer's OrderCancellation (Peppol T115) of ``order_id``, with ``reason`` as its note."""
    return (
        _head("OrderCancellation", "order_cancellation", cancellation_id).replace(
            "bis:ordering:3", "bis:advanced_ordering:3"
        )
        + f"<cbc:CancellationNote>{escape(reason)}</cbc:CancellationNote>"
        + f"<cac:OrderReference><cbc:ID>{escape(order_id)}</cbc:ID></cac:OrderReference>"
        + f"<cac:BuyerCustomerParty>{_party(buyer, 'Buyer AB')}</cac:BuyerCustomerParty>"
        + f"<cac:SellerSupplierParty>{_party(seller, 'Seller BV')}</cac:SellerSupplierParty>"
        + "</OrderCancellation>"
    ).encode()


def despatch_advice(
    despatch_id: str,
    order_id: str,
    shipped: Sequence[tuple[str, str]],
    *,
    buyer: str = BUYER_GLN,
    seller: str = SELLER_GLN,
    outstanding: dict[str, str] | None = None,
    tracking: tuple[str, str, str | None] | None = None,
) -> bytes:
    """``shipped``: (order line id, delivered quantity); ``outstanding``: order line id ->
    OutstandingQuantity (to follow later); ``tracking``: (carrier, tracking ID, URL or None)."""
    later = outstanding or {}
    body = "".join(
        f"<cac:DespatchLine><cbc:ID>{n}</cbc:ID>"
        f'<cbc:DeliveredQuantity unitCode="C62">{qty}</cbc:DeliveredQuantity>'
        + (
            f'<cbc:OutstandingQuantity unitCode="C62">{later[line]}</cbc:OutstandingQuantity>'
            "<cbc:OutstandingReason>Backordered</cbc:OutstandingReason>"
            if line in later
            else ""
        )
        + f"<cac:OrderLineReference><cbc:LineID>{line}</cbc:LineID></cac:OrderLineReference>"
        "<cac:Item><cbc:Name>x</cbc:Name></cac:Item></cac:DespatchLine>"
        for n, (line, qty) in enumerate(shipped, start=1)
    )
    reference = shipment = ""
    if tracking is not None:
        carrier, tracking_id, url = tracking
        if url:
            reference = (
                "<cac:AdditionalDocumentReference><cbc:ID>T-1</cbc:ID>"
                "<cbc:DocumentType>Tracking link</cbc:DocumentType><cac:Attachment>"
                f"<cac:ExternalReference><cbc:URI>{escape(url)}</cbc:URI></cac:ExternalReference>"
                "</cac:Attachment></cac:AdditionalDocumentReference>"
            )
        shipment = (
            "<cac:Shipment><cbc:ID>1</cbc:ID><cac:Consignment><cbc:ID>1</cbc:ID>"
            f"<cac:CarrierParty><cac:PartyName><cbc:Name>{escape(carrier)}</cbc:Name>"
            "</cac:PartyName></cac:CarrierParty></cac:Consignment>"
            f"<cac:Delivery><cbc:TrackingID>{escape(tracking_id)}</cbc:TrackingID></cac:Delivery>"
            "</cac:Shipment>"
        )
    return (
        _head("DespatchAdvice", "despatch_advice", despatch_id).replace(
            "bis:ordering:3", "bis:despatch_advice:3"
        )
        + f"<cac:OrderReference><cbc:ID>{escape(order_id)}</cbc:ID></cac:OrderReference>"
        + reference
        + f"<cac:DespatchSupplierParty>{_party(seller, 'Seller BV')}</cac:DespatchSupplierParty>"
        + f"<cac:DeliveryCustomerParty>{_party(buyer, 'Buyer AB')}</cac:DeliveryCustomerParty>"
        + shipment
        + body
        + "</DespatchAdvice>"
    ).encode()


def invoice(
    invoice_id: str,
    order_id: str | None,
    billed: Sequence[tuple[str, str, str]],
    *,
    root: str = "Invoice",
    type_code: str = "380",
    billing_ref: str | None = None,
    buyer: str = BUYER_GLN,
    seller: str = SELLER_GLN,
) -> bytes:
    """``billed``: (order line id, quantity, price). ``root`` Invoice | CreditNote."""
    line_tag = "InvoiceLine" if root == "Invoice" else "CreditNoteLine"
    qty_tag = "InvoicedQuantity" if root == "Invoice" else "CreditedQuantity"
    total = sum((Decimal(q) * Decimal(p) for _, q, p in billed), Decimal(0))
    body = "".join(
        f"<cac:{line_tag}><cbc:ID>{n}</cbc:ID>"
        f'<cbc:{qty_tag} unitCode="C62">{qty}</cbc:{qty_tag}>'
        f'<cbc:LineExtensionAmount currencyID="EUR">{Decimal(qty) * Decimal(price):.2f}'
        "</cbc:LineExtensionAmount>"
        f"<cac:OrderLineReference><cbc:LineID>{line}</cbc:LineID></cac:OrderLineReference>"
        "<cac:Item><cbc:Name>x</cbc:Name><cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID>"
        "<cbc:Percent>25</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"
        "</cac:ClassifiedTaxCategory></cac:Item>"
        f'<cac:Price><cbc:PriceAmount currencyID="EUR">{price}</cbc:PriceAmount></cac:Price>'
        f"</cac:{line_tag}>"
        for n, (line, qty, price) in enumerate(billed, start=1)
    )
    tax = (total * Decimal("0.25")).quantize(Decimal("0.01"))
    refs = ""
    if order_id:
        refs += f"<cac:OrderReference><cbc:ID>{escape(order_id)}</cbc:ID></cac:OrderReference>"
    if billing_ref:
        refs += (
            "<cac:BillingReference><cac:InvoiceDocumentReference>"
            f"<cbc:ID>{billing_ref}</cbc:ID></cac:InvoiceDocumentReference></cac:BillingReference>"
        )
    type_tag = "InvoiceTypeCode" if root == "Invoice" else "CreditNoteTypeCode"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}{root}-2" {CAC} {CBC}>'
        "<cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#"
        "urn:fdc:peppol.eu:2017:poacc:billing:3.0</cbc:CustomizationID>"
        "<cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>"
        f"<cbc:ID>{invoice_id}</cbc:ID><cbc:IssueDate>2026-11-10</cbc:IssueDate>"
        f"<cbc:{type_tag}>{type_code}</cbc:{type_tag}>"
        "<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>"
        f"{refs}"
        f"<cac:AccountingSupplierParty>{_party(seller, 'Seller BV')}</cac:AccountingSupplierParty>"
        f"<cac:AccountingCustomerParty>{_party(buyer, 'Buyer AB')}</cac:AccountingCustomerParty>"
        f'<cac:TaxTotal><cbc:TaxAmount currencyID="EUR">{tax}</cbc:TaxAmount></cac:TaxTotal>'
        "<cac:LegalMonetaryTotal>"
        f'<cbc:LineExtensionAmount currencyID="EUR">{total:.2f}</cbc:LineExtensionAmount>'
        f'<cbc:TaxExclusiveAmount currencyID="EUR">{total:.2f}</cbc:TaxExclusiveAmount>'
        f'<cbc:TaxInclusiveAmount currencyID="EUR">{total + tax:.2f}</cbc:TaxInclusiveAmount>'
        f'<cbc:PayableAmount currencyID="EUR">{total + tax:.2f}</cbc:PayableAmount>'
        "</cac:LegalMonetaryTotal>"
        f"{body}</{root}>"
    ).encode()
