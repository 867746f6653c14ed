"""The Billing 3.0 writer: Invoice 380 / 383, CreditNote 381, UBL DebitNote."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.domain.billing import AllowanceCharge, InvoiceLine
from edi_gateway.domain.documents import (
    SELF_BILLING,
    DocumentKind,
    Invoice,
    Line,
    Party,
    PartyId,
    Quantity,
)
from edi_gateway.ubl.namespaces import cac, cbc
from edi_gateway.ubl.read import interpret
from edi_gateway.ubl.validate import validate_document
from edi_gateway.ubl.write import WriteError, write_debit_note, write_invoice
from edi_gateway.ubl.write_invoice import CUSTOMIZATION_ID, PROFILE_ID
from tests import factory as f
from tests.conftest import shared_dir

D = Decimal


def seller() -> Party:
    gln = PartyId(f.SELLER_GLN, "0088")
    return Party(
        endpoint=gln,
        ids=[gln],
        name="Verkäufer & Söhne BV",
        vat_id="NL123456789B01",
        country="NL",
        street="Keizersgracht 1",
        city="Amsterdam",
        postal_zone="1015 CJ",
        company_id=PartyId("12345678", "0106"),
    )


def buyer() -> Party:
    gln = PartyId(f.BUYER_GLN, "0088")
    return Party(
        endpoint=gln, ids=[gln], name="Köpare AB – 東京", vat_id="SE556677889901", country="SE"
    )


def invoice_line(
    line_id: str,
    quantity: str,
    price: str,
    category: str = "S",
    rate: str = "21",
    **extra: object,
) -> InvoiceLine:
    built = InvoiceLine(
        line_id=line_id,
        quantity=Quantity(D(quantity), "C62"),
        order_line_ref=line_id,
        item_name=f"Artikel {line_id} – ü",
        seller_item_id=f"SKU-{line_id}",
        price=D(price),
    )
    built.vat_category, built.vat_rate = category, D(rate)
    for name, value in extra.items():
        setattr(built, name, value)
    return built


def document(kind: DocumentKind = DocumentKind.INVOICE, **changes: object) -> Invoice:
    doc = Invoice(
        kind=kind,
        document_id="INV-PO-1-1",
        issue_date=date(2026, 11, 10),
        currency="EUR",
        buyer=buyer(),
        seller=seller(),
        order_refs=["PO-1"],
        lines=[
            invoice_line("1", "3", "10.25"),
            invoice_line(
                "2",
                "4",
                "7.333",
                base_quantity=D(2),
                allowances_charges=[AllowanceCharge(False, D("1.50"), "Rabatt", "95")],
            ),
            invoice_line("3", "1", "20", category="Z", rate="0"),
        ],
        allowances_charges=[AllowanceCharge(True, D(5), "Fracht", "FC", "S", D(21))],
        payment_terms="30 dagen netto",
        iban="NL91ABNA0417164300",
        bic="ABNANL2A",
        due_date=date(2026, 12, 10),
    )
    for name, value in changes.items():
        setattr(doc, name, value)
    return doc


def variants() -> dict[str, bytes]:
    """Every document shape the gateway writes."""
    exempt = [invoice_line("1", "2", "50", category="E", rate="0")]
    reverse = [invoice_line("1", "2", "50", category="AE", rate="0")]
    finnish = seller()
    finnish.country, finnish.vat_id, finnish.company_id = "FI", "FI12345671", None
    return {
        "invoice-380": write_invoice(document()),
        "invoice-383": write_invoice(
            document(type_code="383", billing_refs=["INV-PO-1-1"], document_id="DN-PO-1-1")
        ),
        "credit-381": write_invoice(
            document(
                DocumentKind.CREDIT_NOTE,
                billing_refs=["INV-PO-1-1"],
                document_id="CN-PO-1-1",
                reason="Retour – 返品",
            )
        ),
        "invoice-exempt": write_invoice(document(lines=exempt, allowances_charges=[])),
        "invoice-reverse-charge": write_invoice(document(lines=reverse, allowances_charges=[])),
        "invoice-no-iban": write_invoice(document(iban=None, bic=None, seller=finnish)),
        "debit-note": write_debit_note(
            document(DocumentKind.DEBIT_NOTE, billing_refs=["INV-PO-1-1"], reason="Nachbelastung")
        ),
        "selfbilled-389": write_invoice(document(customization_id=SELF_BILLING)),
        "selfbilled-527": write_invoice(
            document(
                customization_id=SELF_BILLING,
                type_code="527",
                billing_refs=["SB-INV-PO-1-1"],
                document_id="SB-DN-PO-1-1",
            )
        ),
        "selfbilled-261": write_invoice(
            document(
                DocumentKind.CREDIT_NOTE,
                customization_id=SELF_BILLING,
                billing_refs=["SB-INV-PO-1-1"],
                document_id="SB-CN-PO-1-1",
            )
        ),
    }


def test_invoice_reads_back_with_its_totals() -> None:
    payload = write_invoice(document())
    validate_document(payload, max_size=len(payload) + 1)
    read = interpret(etree.fromstring(payload))
    assert isinstance(read, Invoice)
    assert (read.kind, read.type_code, read.order_refs) == (DocumentKind.INVOICE, "380", ["PO-1"])
    assert (read.customization_id, read.profile_id) == (CUSTOMIZATION_ID, PROFILE_ID)
    # lines 30.75 + 13.17 + 20.00; freight 5; VAT 21 % of 48.92 = 10.27 (10.2732)
    assert (read.tax_exclusive_amount, read.tax_amount, read.payable_amount) == (
        D("68.92"),
        D("10.27"),
        D("79.19"),
    )
    assert read.seller is not None and read.seller.name == "Verkäufer & Söhne BV"
    assert read.buyer is not None and read.buyer.name == "Köpare AB – 東京"
    assert [line.order_line_ref for line in read.lines] == ["1", "2", "3"]
    assert read.due_date == date(2026, 12, 10)


def test_credit_note_refers_to_the_invoice_it_corrects() -> None:
    root = etree.fromstring(variants()["credit-381"])
    assert etree.QName(root).localname == "CreditNote"
    assert root.findtext(cbc("CreditNoteTypeCode")) == "381"
    ref = f"{cac('BillingReference')}/{cac('InvoiceDocumentReference')}/{cbc('ID')}"
    assert root.findtext(ref) == "INV-PO-1-1"
    assert root.findtext(cbc("Note")) == "Retour – 返品"
    assert root.find(cbc("DueDate")) is None  # a CreditNote has none in UBL 2.1
    assert len(root.findall(cac("CreditNoteLine"))) == 3


def test_vat_breakdown_per_category_and_rate() -> None:
    root = etree.fromstring(variants()["invoice-380"])
    subtotals = root.findall(f"{cac('TaxTotal')}/{cac('TaxSubtotal')}")
    got = [
        (
            s.findtext(f"{cac('TaxCategory')}/{cbc('ID')}"),
            s.findtext(f"{cac('TaxCategory')}/{cbc('Percent')}"),
            s.findtext(cbc("TaxableAmount")),
            s.findtext(cbc("TaxAmount")),
        )
        for s in subtotals
    ]
    assert got == [("S", "21", "48.92", "10.27"), ("Z", "0", "20.00", "0.00")]
    price = root.find(f"{cac('InvoiceLine')}[2]/{cac('Price')}")
    assert price is not None and price.findtext(cbc("BaseQuantity")) == "2"
    exempt = etree.fromstring(variants()["invoice-exempt"])
    reason = (
        f"{cac('TaxTotal')}/{cac('TaxSubtotal')}/{cac('TaxCategory')}/{cbc('TaxExemptionReason')}"
    )
    assert exempt.findtext(reason) == "Exempt from VAT"


def test_debit_note_is_a_ubl_debit_note_tracing_the_invoice_lines() -> None:
    payload = variants()["debit-note"]
    validate_document(payload, max_size=len(payload) + 1)
    root = etree.fromstring(payload)
    assert etree.QName(root).localname == "DebitNote"
    assert root.find(cbc("CustomizationID")) is None
    assert root.find(cac("RequestedMonetaryTotal")) is not None
    ref = f"{cac('DebitNoteLine')}/{cac('BillingReference')}"
    lines = root.findall(ref)
    assert [r.findtext(f"{cac('InvoiceDocumentReference')}/{cbc('ID')}") for r in lines] == [
        "INV-PO-1-1"
    ] * 3
    assert [r.findtext(f"{cac('BillingReferenceLine')}/{cbc('ID')}") for r in lines] == [
        "1",
        "2",
        "3",
    ]
    read = interpret(root)
    assert isinstance(read, Invoice) and read.payable_amount == D("79.19")


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"currency": None}, "document currency is missing"),
        ({"order_refs": []}, "order reference is missing"),
        ({"type_code": "381"}, "type code '381' is not allowed in a Invoice"),
        ({"lines": []}, "at least one line"),
        ({"payment_terms": None, "due_date": None}, "BR-CO-25"),
        ({"seller": Party(name="X", country="NL")}, "AccountingSupplierParty has no endpoint"),
        ({"buyer": Party(endpoint=PartyId("1", "0088"))}, "has no country"),
        (
            {"allowances_charges": [AllowanceCharge(True, D(1), vat_rate=D(21))]},
            "reason or reason code",
        ),
        (
            {"lines": [Line(line_id="1", quantity=Quantity(D(1), "C62"), price=D(1))]},
            "needs a rate",
        ),
        ({"lines": [invoice_line("1", "1", "-1")]}, r"is negative \(BR-27\)"),
        ({"iban": None}, "NL-R-007"),
    ],
)
def test_what_cannot_be_valid_billing_is_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(WriteError, match=problem):
        write_invoice(document(**changes))


def test_seller_vat_number_is_required_for_rated_lines() -> None:
    no_vat = seller()
    no_vat.vat_id = None
    with pytest.raises(WriteError, match="BR-S-02"):
        write_invoice(document(seller=no_vat))


def test_debit_note_lines_need_the_invoice_reference() -> None:
    with pytest.raises(WriteError, match="refers to the invoice it corrects"):
        write_debit_note(document(DocumentKind.DEBIT_NOTE))


def test_self_billed_documents_carry_the_self_billing_ids_and_codes() -> None:
    for name, code in (("selfbilled-389", "389"), ("selfbilled-261", "261")):
        root = etree.fromstring(variants()[name])
        assert root.findtext(cbc("CustomizationID")) == SELF_BILLING
        assert root.findtext(cbc("ProfileID")) == "urn:fdc:peppol.eu:2017:poacc:selfbilling:01:1.0"
        assert code in (
            root.findtext(cbc("InvoiceTypeCode")),
            root.findtext(cbc("CreditNoteTypeCode")),
        )


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (DocumentKind.INVOICE, "380"),
        (DocumentKind.INVOICE, "383"),
        (DocumentKind.CREDIT_NOTE, "381"),
    ],
)
def test_billing_type_codes_are_refused_in_self_billed_documents(
    kind: DocumentKind, code: str
) -> None:
    with pytest.raises(WriteError, match=f"type code '{code}' is not allowed in a self-billing"):
        write_invoice(document(kind, customization_id=SELF_BILLING, type_code=code))


def test_self_billed_codes_are_refused_in_billing_documents() -> None:
    with pytest.raises(WriteError, match="type code '389' is not allowed in a Invoice"):
        write_invoice(document(type_code="389"))


def test_a_self_billed_debit_note_is_never_a_ubl_debit_note() -> None:
    with pytest.raises(WriteError, match="Invoice 527, not a UBL DebitNote"):
        write_debit_note(
            document(DocumentKind.DEBIT_NOTE, customization_id=SELF_BILLING, billing_refs=["X"])
        )


def test_write_invoice_refuses_other_kinds() -> None:
    with pytest.raises(ValueError, match="not DebitNote"):
        write_invoice(document(DocumentKind.DEBIT_NOTE))


def test_every_variant_passes_the_official_checks(tmp_path: Path) -> None:
    check = shared_dir() / "tools" / "ubl-check"
    files = []
    for name, payload in variants().items():
        path = tmp_path / f"{name}.xml"
        path.write_bytes(payload)
        files.append(str(path))
    done = subprocess.run(
        [sys.executable, str(check), *files], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok ") == len(files)
