"""Orders that carry order data (type, delivery, contacts, notes, attachments), for the tests of
issue 10 point 5: built from the factory's own order, never copied from the corpus."""

from __future__ import annotations

import base64
from pathlib import Path

from edi_gateway.domain.documents import Order
from edi_gateway.ubl.read import read_stored
from tests import factory as f
from tests.conftest import shared_dir

PEPPOL_EXAMPLES = Path("peppol-validation-artefacts/2026.5/examples")


def corpus_file(relative: str) -> Path:
    """A file of ../shared/corpus (skipped, or failed under CI, when absent)."""
    return shared_dir() / "corpus" / relative


def order_example() -> Path:
    """Peppol's Order_Example.xml (T01)."""
    return corpus_file(str(PEPPOL_EXAMPLES / "Order_Example.xml"))


def read(payload: bytes) -> Order:
    order = read_stored(payload)
    assert isinstance(order, Order)
    return order


DELIVERY = (
    "<cac:Delivery><cac:DeliveryLocation>"
    '<cbc:ID schemeID="0088">7300010000099</cbc:ID><cbc:Name>Dock 4</cbc:Name>'
    "<cac:Address><cbc:StreetName>Kajen 7</cbc:StreetName><cbc:CityName>Göteborg</cbc:CityName>"
    "<cbc:PostalZone>41101</cbc:PostalZone><cac:Country><cbc:IdentificationCode>SE"
    "</cbc:IdentificationCode></cac:Country></cac:Address></cac:DeliveryLocation>"
    "<cac:RequestedDeliveryPeriod><cbc:StartDate>2026-12-14</cbc:StartDate>"
    "<cbc:StartTime>08:00:00</cbc:StartTime><cbc:EndDate>2026-12-15</cbc:EndDate>"
    "<cbc:EndTime>16:00:00</cbc:EndTime></cac:RequestedDeliveryPeriod>"
    "<cac:DeliveryParty><cac:PartyName><cbc:Name>Goods reception</cbc:Name></cac:PartyName>"
    "<cac:Contact><cbc:Name>Eva</cbc:Name><cbc:Telephone>+46 31 100</cbc:Telephone>"
    "</cac:Contact></cac:DeliveryParty>{shipment}</cac:Delivery>"
)
EXPRESS = "<cac:Shipment><cbc:ID>NA</cbc:ID><cbc:ShippingPriorityLevelCode>1"
EXPRESS += "</cbc:ShippingPriorityLevelCode></cac:Shipment>"


def attachment(
    ref: str = "D1",
    content: bytes | None = b"%PDF-1.4 drawing",
    *,
    encoded: str | None = None,
    filename: str = "drawing.pdf",
    mime: str = "application/pdf",
) -> str:
    """An AdditionalDocumentReference embedding ``content`` (or the raw ``encoded`` text)."""
    body = encoded if encoded is not None else base64.b64encode(content or b"").decode()
    return (
        f"<cac:AdditionalDocumentReference><cbc:ID>{ref}</cbc:ID>"
        "<cbc:DocumentType>Drawing</cbc:DocumentType><cac:Attachment>"
        f'<cbc:EmbeddedDocumentBinaryObject mimeCode="{mime}" filename="{filename}">{body}'
        "</cbc:EmbeddedDocumentBinaryObject></cac:Attachment></cac:AdditionalDocumentReference>"
    )


def order_with_data(
    order_id: str = "PO-1",
    *,
    type_code: str | None = "221",
    notes: tuple[str, ...] = ("Ring at gate B",),
    reference: str | None = "REF-77",
    attachments: str = "",
    delivery: str | None = DELIVERY.format(shipment=""),
    contacts: bool = True,
) -> bytes:
    """The factory's order with order data put where UBL 2.1 wants each element."""
    text = f.order(order_id).decode()
    head = "".join(
        [
            f"<cbc:OrderTypeCode>{type_code}</cbc:OrderTypeCode>" if type_code else "",
            *(f"<cbc:Note>{n}</cbc:Note>" for n in notes),
        ]
    )
    text = text.replace("<cbc:DocumentCurrencyCode>", head + "<cbc:DocumentCurrencyCode>", 1)
    after_currency = (
        f"<cbc:CustomerReference>{reference}</cbc:CustomerReference>" if reference else ""
    ) + attachments
    text = text.replace(
        "EUR</cbc:DocumentCurrencyCode>", "EUR</cbc:DocumentCurrencyCode>" + after_currency, 1
    )
    if contacts:
        buyer = "<cac:Contact><cbc:Name>Anna Buyer</cbc:Name><cbc:ElectronicMail>anna@buyer.example"
        buyer += "</cbc:ElectronicMail></cac:Contact></cac:Party></cac:BuyerCustomerParty>"
        text = text.replace("</cac:Party></cac:BuyerCustomerParty>", buyer, 1)
        seller = "<cac:Contact><cbc:Telephone>+31 10 555</cbc:Telephone></cac:Contact>"
        text = text.replace(
            "</cac:Party></cac:SellerSupplierParty>",
            seller + "</cac:Party></cac:SellerSupplierParty>",
            1,
        )
    if delivery:
        text = text.replace(
            "<cac:AnticipatedMonetaryTotal>", delivery + "<cac:AnticipatedMonetaryTotal>", 1
        )
    return text.encode()
