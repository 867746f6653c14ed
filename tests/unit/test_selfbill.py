"""Self-billing (Peppol BIS Self-Billing 3.0) and amount-only debit notes (issue 10, points 6-7).

Every document the gateway issues here goes through the independent ``ubl-check`` (UBL 2.1 XSD
+ the Peppol 2026.5 rules: PEPPOL-EN16931-UBL-SB for self-billed ones, Billing for the rest);
the official SB examples are read from ``../shared/corpus`` and only given an order reference
in memory so that they have an order to attach to.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree
from pydantic import ValidationError
from sqlalchemy import select

from edi_gateway import cli
from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.domain.documents import SELF_BILLING, Invoice
from edi_gateway.errors import ErrorCode
from edi_gateway.outbound import outbox
from edi_gateway.outbound.charges import Vat
from edi_gateway.outbound.documents import show
from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest, invoice
from edi_gateway.outbound.invoice_amount import fee_vat
from edi_gateway.outbound.issuing import NotAllowed
from edi_gateway.store.db import Store
from edi_gateway.store.tables import Message, Order, OutboxRow
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, receive
from tests.unit.test_charges import _config
from tests.unit.test_invoice import BUYER_LEGAL, SELLER_LEGAL
from tests.unit.test_render import pdf_text

EXAMPLES = shared_dir() / "corpus" / "peppol-validation-artefacts" / "2026.5" / "examples"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
SB_SELLER = "9482348239847239874"  # the seller (0088) of the official SB-base examples


def settings_for(tmp_path: Path, *, self_billing: bool = True, **seller: Any) -> Settings:
    return Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                f.buyer_partner(outbound="to-buyer", legal=BUYER_LEGAL),
                f.seller_partner(
                    **{
                        "legal": SELLER_LEGAL,
                        "outbound": "to-seller",
                        "self_billing": self_billing,
                        **seller,
                    }
                ),
            ],
            "connectors": [
                {"name": "to-buyer", "type": "folder", "direction": "out", "path": "out"},
                {"name": "to-seller", "type": "folder", "direction": "out", "path": "seller"},
            ],
        },
        context={"base_dir": tmp_path},
    )


def gateway_for(store: Store, tmp_path: Path, **kw: Any) -> Gateway:
    for folder in ("out", "seller"):
        (tmp_path / folder).mkdir(exist_ok=True)
    gateway = Gateway(settings_for(tmp_path, **kw), store)
    receive(gateway, f.order("PO-1", f.items(2)))
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10"), ("2", "10")]))
    return gateway


@pytest.fixture
def selfbilled(store: Store, tmp_path: Path) -> Gateway:
    """Order PO-1 (two lines of 10, all despatched) of a supplier with self_billing: true."""
    return gateway_for(store, tmp_path)


@pytest.fixture
def plain(store: Store, tmp_path: Path) -> Gateway:
    """The same order of a supplier that invoices itself (Billing 3.0)."""
    return gateway_for(store, tmp_path, self_billing=False)


def bill(gateway: Gateway, request: InvoiceRequest | None = None, **kw: Any) -> Any:
    return invoice(
        gateway.store, gateway.settings, "PO-1", request or InvoiceRequest(), actor="ops", **kw
    )


def queued(gateway: Gateway, outbox_id: int) -> tuple[str, str, bytes]:
    """The outbox row's partner, connector and payload."""
    with gateway.store.session() as session:
        row = session.get_one(OutboxRow, outbox_id)
        return row.partner, row.connector, row.payload


def sent(gateway: Gateway, outbox_id: int) -> Invoice:
    document = interpret(etree.fromstring(queued(gateway, outbox_id)[2]))
    assert isinstance(document, Invoice)
    return document


def quantities(gateway: Gateway, ref: str = "PO-1") -> dict[str, tuple[str, str]]:
    return {
        line["line_id"]: (line["invoiced"], line["credited"])
        for line in detail(gateway, ref)["lines"]
    }


def ubl_check(files: list[Path]) -> str:
    """Run the independent checker on ``files``; fail on any XSD error or fatal finding."""
    tool = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(tool), "--json", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# --- point 7: the gateway issues self-billed documents -------------------------------------


def test_self_billed_chain_goes_to_the_supplier_and_counts(
    selfbilled: Gateway, tmp_path: Path
) -> None:
    first = bill(selfbilled, InvoiceRequest((LineRequest("1", Decimal(6)),)))
    assert (first.doc_number, first.status) == ("SB-INV-PO-1-1", "Partially invoiced")
    assert queued(selfbilled, first.outbox_id)[:2] == (
        "seller",
        "to-seller",
    )  # the seller receives it
    document = sent(selfbilled, first.outbox_id)
    assert (document.type_code, document.customization_id) == ("389", SELF_BILLING)
    assert document.profile_id == "urn:fdc:peppol.eu:2017:poacc:selfbilling:01:1.0"
    # the seller is still the supplier, the buyer the customer; the payee is the seller
    assert document.seller is not None and document.seller.vat_id == "NL123456789B01"
    assert document.buyer is not None and document.buyer.vat_id == "SE556677889901"
    assert b"<cbc:ID>NL91ABNA0417164300</cbc:ID>" in queued(selfbilled, first.outbox_id)[2]
    assert quantities(selfbilled) == {"1": ("6", "0"), "2": ("0", "0")}

    rest = bill(selfbilled)
    assert (rest.doc_number, rest.status) == ("SB-INV-PO-1-2", "Fully invoiced")
    credit = bill(
        selfbilled, InvoiceRequest((LineRequest("1", Decimal(2)),), credit_of="SB-INV-PO-1-1")
    )
    assert credit.doc_number == "SB-CN-PO-1-1"
    note = sent(selfbilled, credit.outbox_id)
    assert (note.kind.value, note.type_code, note.billing_refs) == (
        "CreditNote",
        "261",
        ["SB-INV-PO-1-1"],
    )
    assert quantities(selfbilled) == {"1": ("10", "2"), "2": ("10", "0")}
    debit = bill(selfbilled, InvoiceRequest(debit_of="SB-INV-PO-1-2", reason="Prisjustering"))
    fee = bill(
        selfbilled,
        InvoiceRequest(debit_of="SB-INV-PO-1-1", amount=Decimal("40.00"), reason="Handling fee"),
    )
    assert (debit.doc_number, fee.doc_number) == ("SB-DN-PO-1-1", "SB-DN-PO-1-2")
    assert [sent(selfbilled, i.outbox_id).type_code for i in (debit, fee)] == ["527", "527"]
    [page] = pdf_text(show(selfbilled.store, selfbilled.settings, fee.document_id, "pdf").payload)
    assert "Debit note SB-DN-PO-1-2 (Self-billing)" in page and "Handling fee" in page
    [page] = pdf_text(show(selfbilled.store, selfbilled.settings, first.document_id, "pdf").payload)
    assert "Invoice SB-INV-PO-1-1 (Self-billing)" in page
    assert quantities(selfbilled) == {"1": ("10", "2"), "2": ("10", "0")}  # 527 moves none

    outbox.flush(selfbilled.store, selfbilled.settings)
    assert list((tmp_path / "out").iterdir()) == []  # nothing went to the buyer
    files = sorted((tmp_path / "seller").iterdir())
    assert len(files) == 5
    report = ubl_check(files)
    assert "PEPPOL-EN16931-UBL-SB" in report  # the self-billing rules were the ones applied


def test_self_billed_numbers_are_the_buyers_and_do_not_repeat(selfbilled: Gateway) -> None:
    numbers = [bill(selfbilled, InvoiceRequest((LineRequest("1", Decimal(1)),))).doc_number]
    numbers.append(bill(selfbilled, InvoiceRequest((LineRequest("1", Decimal(1)),))).doc_number)
    assert numbers == ["SB-INV-PO-1-1", "SB-INV-PO-1-2"]
    rows = detail(selfbilled)["documents"]
    assert [d["document_id"] for d in rows if d["direction"] == "out"] == numbers


def test_over_invoicing_is_refused_for_self_billed_too(selfbilled: Gateway) -> None:
    with pytest.raises(NotAllowed, match=r"1: 11 asked, 10 was despatched"):
        bill(selfbilled, InvoiceRequest((LineRequest("1", Decimal(11)),)))
    with pytest.raises(NotAllowed, match="has no invoice INV-PO-1-1"):
        bill(selfbilled, InvoiceRequest(credit_of="INV-PO-1-1"))


@pytest.mark.parametrize(
    ("seller", "message"),
    [
        ({"role": "buyer"}, "is for a supplier"),
        ({"outbound": None}, "needs outbound"),
        ({"legal": None}, "needs legal"),
        ({"debit_note_as": "debitnote"}, "527"),
    ],
)
def test_self_billing_that_makes_no_sense_is_refused(
    tmp_path: Path, seller: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        settings_for(tmp_path, **seller)


def test_self_billing_is_off_by_default(plain: Gateway) -> None:
    issued = bill(plain)
    document = sent(plain, issued.outbox_id)
    assert (issued.doc_number, document.type_code) == ("INV-PO-1-1", "380")
    assert queued(plain, issued.outbox_id)[:2] == ("buyer", "to-buyer")
    [page] = pdf_text(show(plain.store, plain.settings, issued.document_id, "pdf").payload)
    assert "Invoice INV-PO-1-1" in page and "Self-billing" not in page


# --- point 6: amount-only debit notes -------------------------------------------------------


def test_amount_only_debit_note_bills_no_quantity(plain: Gateway, tmp_path: Path) -> None:
    bill(plain)
    before = quantities(plain)
    fee = bill(
        plain,
        InvoiceRequest(debit_of="INV-PO-1-1", amount=Decimal("25.00"), reason="Late payment fee"),
    )
    document = sent(plain, fee.outbox_id)
    assert (fee.doc_number, document.type_code, document.billing_refs) == (
        "DN-PO-1-1",
        "383",
        ["INV-PO-1-1"],
    )
    [line] = document.lines
    assert (line.item_name, line.quantity and line.quantity.value, line.price) == (
        "Late payment fee",
        Decimal(1),
        Decimal("25.00"),
    )
    assert line.order_line_ref is None  # a fee is no order line's
    assert document.payable_amount == Decimal("30.25")  # 25.00 + 21 % (the supplier's default)
    correction = bill(
        plain,
        InvoiceRequest(
            debit_of="INV-PO-1-1",
            amount=Decimal("12.40"),
            reason="Price correction line 2: 1.24 per unit",
            vat=Vat("S", Decimal(12)),
        ),
    )
    assert sent(plain, correction.outbox_id).tax_amount == Decimal("1.49")  # 12 % of 12.40
    exempt = bill(
        plain,
        InvoiceRequest(
            debit_of="INV-PO-1-1", amount=Decimal("3"), reason="Pallet", vat=fee_vat("Z", None)
        ),
    )
    assert sent(plain, exempt.outbox_id).payable_amount == Decimal("3.00")
    for category in ("E", "AE", "G"):  # exempt, reverse charge, export: 0 %, with a reason
        request = InvoiceRequest(
            debit_of="INV-PO-1-1", amount=Decimal(2), reason="Fee", vat=fee_vat(category, None)
        )
        assert sent(plain, bill(plain, request).outbox_id).tax_amount == Decimal("0.00")
    assert quantities(plain) == before
    assert detail(plain)["status"] == "Fully invoiced"
    outbox.flush(plain.store, plain.settings)
    files = sorted(p for p in (tmp_path / "out").iterdir() if p.name.startswith("Invoice"))
    assert len(files) == 7
    ubl_check(files)


def test_amount_only_debit_takes_the_vat_the_order_lines_share(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    gateway = Gateway(settings_for(tmp_path, self_billing=False), store)
    receive(gateway, f.order("PO-9", f.items(1), detailed=True))  # the line says S 25 %
    receive(gateway, f.despatch_advice("D-9", "PO-9", [("1", "10")]))
    first = invoice(gateway.store, gateway.settings, "PO-9", InvoiceRequest(), actor="ops")
    fee = invoice(
        gateway.store,
        gateway.settings,
        "PO-9",
        InvoiceRequest(debit_of=first.doc_number, amount=Decimal(10), reason="Freight"),
        actor="ops",
    )
    assert sent(gateway, fee.outbox_id).tax_amount == Decimal("2.50")


def test_amount_only_debit_as_ubl_debit_note(store: Store, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    settings = Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                f.buyer_partner(outbound="to-buyer", legal=BUYER_LEGAL, debit_note_as="debitnote"),
                f.seller_partner(legal=SELLER_LEGAL),
            ],
            "connectors": [
                {"name": "to-buyer", "type": "folder", "direction": "out", "path": "out"}
            ],
        },
        context={"base_dir": tmp_path},
    )
    gateway = Gateway(settings, store)
    receive(gateway, f.order("PO-1", f.items(1)))
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    bill(gateway)
    fee = bill(
        gateway, InvoiceRequest(debit_of="INV-PO-1-1", amount=Decimal(5), reason="Mahngebühr")
    )
    document = sent(gateway, fee.outbox_id)  # written, hence XSD-checked, by the gateway
    assert (document.kind.value, document.billing_refs) == ("DebitNote", ["INV-PO-1-1"])
    assert b"BillingReferenceLine" not in queued(gateway, fee.outbox_id)[2]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (InvoiceRequest(debit_of="INV-PO-1-1", amount=Decimal(0), reason="x"), "above 0"),
        (InvoiceRequest(debit_of="INV-PO-1-1", amount=Decimal(-5), reason="x"), "above 0"),
        (InvoiceRequest(debit_of="INV-PO-1-1", amount=Decimal("1.005"), reason="x"), "2 decimals"),
        (InvoiceRequest(debit_of="INV-PO-1-1", amount=Decimal("NaN"), reason="x"), "above 0"),
        (InvoiceRequest(debit_of="INV-PO-1-1", amount=Decimal("Infinity"), reason="x"), "above"),
        (InvoiceRequest(amount=Decimal(5), reason="x"), r"--debit INVOICE_ID"),
        (InvoiceRequest(credit_of="INV-PO-1-1", amount=Decimal(5), reason="x"), "--debit"),
        (
            InvoiceRequest(
                (LineRequest("1", Decimal(1)),), debit_of="INV-PO-1-1", amount=Decimal(5)
            ),
            "no order line",
        ),
        (InvoiceRequest(debit_of="INV-PO-1-1", amount=Decimal(5)), "what the amount is for"),
        (InvoiceRequest(debit_of="INV-PO-1-1", amount=Decimal(5), reason="  "), "is for"),
        (InvoiceRequest(debit_of="INV-PO-1-1", vat=Vat("S", Decimal(25))), "go with an amount"),
        (
            InvoiceRequest(
                debit_of="INV-PO-1-1", amount=Decimal(5), reason="x", vat=Vat("X", Decimal(1))
            ),
            "VAT category 'X'",
        ),
        (
            InvoiceRequest(
                debit_of="INV-PO-1-1", amount=Decimal(5), reason="x", vat=fee_vat("Z", Decimal(5))
            ),
            "rate 0, not 5",
        ),
        (
            InvoiceRequest(
                debit_of="INV-PO-1-1", amount=Decimal(5), reason="x", vat=fee_vat("S", None)
            ),
            "needs a rate",
        ),
        (
            InvoiceRequest(
                debit_of="INV-PO-1-1", amount=Decimal(5), reason="x", vat=fee_vat("S", Decimal(0))
            ),
            r"BR-S-05",
        ),
        (InvoiceRequest(debit_of="INV-X", amount=Decimal(5), reason="x"), "has no invoice INV-X"),
        (
            InvoiceRequest(
                debit_of="INV-PO-1-1", amount=Decimal(5), reason="x", vat=fee_vat("K", None)
            ),
            r"BR-IC-11/12",
        ),
        (
            InvoiceRequest(
                debit_of="INV-PO-1-1", amount=Decimal(5), reason="x", vat=fee_vat("o", None)
            ),
            r"BR-O-02",
        ),
        (
            InvoiceRequest(
                debit_of="INV-PO-1-1",
                amount=Decimal(5),
                reason="x",
                vat=fee_vat(None, Decimal(250)),
            ),
            "VAT rate 250 is not a percentage",
        ),
        (
            InvoiceRequest(
                debit_of="INV-PO-1-1", amount=Decimal(5), reason="x", vat=fee_vat("S", Decimal(-1))
            ),
            "VAT rate -1 is not a percentage",
        ),
    ],
)
def test_bad_amount_only_debits_are_refused_with_a_code(
    plain: Gateway, request_: InvoiceRequest, message: str
) -> None:
    bill(plain)
    before = detail(plain)["documents"]
    with pytest.raises(NotAllowed, match=message) as refused:
        bill(plain, request_)
    assert refused.value.code is ErrorCode.NOT_ALLOWED
    assert detail(plain)["documents"] == before  # nothing recorded, nothing queued


# --- point 7: inbound self-billed documents (the official examples) -------------------------


def example(name: str, order_ref: str | None = None) -> bytes:
    """An official SB example, with ``cac:OrderReference`` added when it has none."""
    root = etree.parse(str(EXAMPLES / name)).getroot()
    if order_ref is not None and root.find(f"{{{CAC}}}OrderReference") is None:
        reference = etree.Element(f"{{{CAC}}}OrderReference")
        etree.SubElement(reference, f"{{{CBC}}}ID").text = order_ref
        follows = {
            f"{{{CAC}}}{tag}"
            for tag in (
                "BillingReference",
                "DespatchDocumentReference",
                "ReceiptDocumentReference",
                "ContractDocumentReference",
                "AdditionalDocumentReference",
                "ProjectReference",
                "AccountingSupplierParty",
            )
        }
        before = next(child for child in root if child.tag in follows)
        before.addprevious(reference)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sb_gateway(store: Store, tmp_path: Path) -> Gateway:
    """The buyer of the official examples (0002:FR23342) is a partner; their seller is not."""
    buyer = {
        "id": "sb-buyer",
        "name": "Buyer Official Name",
        "role": "buyer",
        "endpoint": {"scheme": "0002", "value": "FR23342"},
    }
    settings = Settings.model_validate(
        {"path": tmp_path / "gateway.yaml", "partners": [buyer]}, context={"base_dir": tmp_path}
    )
    return Gateway(settings, store)


def sb_order(order_id: str, buyer: tuple[str, str], seller: str, item: f.Item) -> bytes:
    scheme, value = buyer
    plain = f.order(order_id, [item], seller=seller)
    return plain.replace(
        f'schemeID="0088">{f.BUYER_GLN}'.encode(), f'schemeID="{scheme}">{value}'.encode()
    )


def test_official_self_billing_examples_attach_and_count(store: Store, tmp_path: Path) -> None:
    gateway = sb_gateway(store, tmp_path)
    days = f.Item("123", "10", "400", "Consulting", unit="DAY")
    receive(gateway, sb_order("PO-SB", ("0002", "FR23342"), SB_SELLER, days))
    receive(gateway, example("SB-base-example.xml", "PO-SB"))  # 7 and -3 days of line 123
    assert quantities(gateway, "PO-SB") == {"123": ("4", "0")}
    order = detail(gateway, "PO-SB")
    assert order["status"] == "Partially invoiced"
    [billed] = [d for d in order["documents"] if d["type"] == "Invoice"]
    assert (billed["document_id"], billed["code"]) == ("Snippet1", "389")

    receive(gateway, example("SB-base-creditnote-correction.xml"))  # via BillingReference
    assert quantities(gateway, "PO-SB") == {"123": ("4", "4")}
    receive(gateway, example("SB-base-negative-inv-correction.xml"))  # -7 and 3 days
    assert quantities(gateway, "PO-SB") == {"123": ("0", "4")}
    documents = detail(gateway, "PO-SB")["documents"]
    assert [(d["type"], d["code"]) for d in documents] == [
        ("Order", None),
        ("Invoice", "389"),
        ("CreditNote", "261"),
        ("Invoice", "389"),
    ]
    with gateway.store.session() as session:
        messages = session.scalars(select(Message).order_by(Message.id)).all()
        assert [(m.state, m.partner) for m in messages[1:]] == [("processed", "sb-buyer")] * 3
        # a self-billed invoice is the buyer's: it never makes its sender the order's supplier
        assert session.scalars(select(Order.seller_partner)).one() is None


def test_official_self_billing_examples_are_buyer_documents() -> None:
    for path in sorted(EXAMPLES.glob("SB-*.xml")):
        document = interpret(etree.parse(str(path)).getroot())
        assert isinstance(document, Invoice), path.name
        assert document.sender() is document.buyer, path.name
        assert document.receiver() is document.seller, path.name


def endpoint(root: Any, role: str) -> tuple[str, str]:
    """(scheme, value) of the ``Accounting<role>Party`` endpoint of an official example."""
    found = root.find(f"{{{CAC}}}Accounting{role}Party/{{{CAC}}}Party/{{{CBC}}}EndpointID")
    assert found is not None and found.text
    return str(found.get("schemeID")), str(found.text)


def official_lines(root: Any) -> tuple[str, list[tuple[Decimal, str, str | None, str | None]]]:
    """The type code and (quantity, unit, order line ID, seller item ID) of each line."""
    credit = etree.QName(root).localname == "CreditNote"
    line_tag, quantity_tag = (
        ("CreditNoteLine", "CreditedQuantity")
        if credit
        else (
            "InvoiceLine",
            "InvoicedQuantity",
        )
    )
    lines = []
    for line in root.iter(f"{{{CAC}}}{line_tag}"):
        quantity = line.find(f"{{{CBC}}}{quantity_tag}")
        lines.append(
            (
                Decimal(quantity.text),
                quantity.get("unitCode"),
                line.findtext(f"{{{CAC}}}OrderLineReference/{{{CBC}}}LineID"),
                line.findtext(f"{{{CAC}}}Item/{{{CAC}}}SellersItemIdentification/{{{CBC}}}ID"),
            )
        )
    code = root.findtext(f"{{{CBC}}}{'CreditNoteTypeCode' if credit else 'InvoiceTypeCode'}")
    return code, lines


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("SB-*.xml")))
def test_every_official_self_billing_example_attaches_and_counts(
    store: Store, tmp_path: Path, name: str
) -> None:
    """Each example gets an order of its own parties with one line its lines all refer to (by
    line ID or by item); a 389 counts as invoiced, a 261 as credited, a 527 not at all."""
    settings = Settings.model_validate(
        {"path": tmp_path / "gateway.yaml", "intake": {"unknown_partner": "accept"}},
        context={"base_dir": tmp_path},
    )
    gateway = Gateway(settings, store)
    root = etree.parse(str(EXAMPLES / name)).getroot()
    code, lines = official_lines(root)
    line_id = next((ref for _, _, ref, _ in lines if ref), "1")
    item = next((item for *_, item in lines if item), None)
    order_id = root.findtext(f"{{{CAC}}}OrderReference/{{{CBC}}}ID") or "PO-SB"
    seller, buyer = (endpoint(root, role) for role in ("Supplier", "Customer"))
    ordered = f.Item(line_id, "1000", "1", "Ordered", unit=lines[0][1], seller_item=item)
    assert seller[0] == "0088"  # the factory's seller scheme
    receive(gateway, sb_order(order_id, buyer, seller[1], ordered))
    receive(gateway, example(name, order_id))
    total = str(sum((quantity for quantity, *_ in lines), Decimal(0)))
    expected = {"389": (total, "0"), "261": ("0", total), "527": ("0", "0")}[code]
    assert quantities(gateway, order_id) == {line_id: expected}
    documents = detail(gateway, order_id)["documents"]
    assert [(d["type"], d["code"]) for d in documents][1:] == [(etree.QName(root).localname, code)]
    with gateway.store.session() as session:
        assert session.scalars(select(Message.state).order_by(Message.id)).all() == [
            "processed",
            "processed",
        ]


# --- the command line --------------------------------------------------------------------------


def test_the_cli_issues_amount_only_debits_and_refuses_bad_ones(
    plain: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(plain, tmp_path)
    run = ["--config", config, "invoice", "PO-1"]
    assert cli.main(run) == 0
    capsys.readouterr()
    debit = [*run, "--debit", "INV-PO-1-1"]
    with pytest.raises(SystemExit) as refused:
        cli.main([*debit, "--amount", "abc", "--reason", "x"])
    assert refused.value.code == 2
    assert "argument --amount: expected a number such as 25.00" in capsys.readouterr().err
    assert cli.main([*debit, "--amount", "-5", "--reason", "Fee", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)
    assert error["error"]["code"] == "NOT_ALLOWED"
    assert "above 0" in error["error"]["message"]
    assert cli.main([*run, "--amount", "5", "--reason", "Fee"]) == 1
    assert "--debit INVOICE_ID" in capsys.readouterr().err
    for reason in ("Fee\x01", "Fee\x00", "\x1b[31mFee"):  # no document can carry these
        assert cli.main([*debit, "--amount", "5", "--reason", reason, "--json"]) == 2
        error = json.loads(capsys.readouterr().out)["error"]
        assert error["code"] == "USAGE" and "--reason" in error["message"], error
    fee = [*debit, "--amount", "25.00", "--reason", "Late fee", "--tax-rate", "12", "--json"]
    assert cli.main(fee) == 0
    issued = json.loads(capsys.readouterr().out)
    assert issued["document_number"] == "DN-PO-1-1"
    document = sent(plain, issued["outbox_id"])
    assert (document.type_code, document.tax_amount) == ("383", Decimal("3.00"))


def test_config_check_explains_self_billing_that_makes_no_sense(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seller = f.seller_partner(self_billing=True, legal=SELLER_LEGAL)  # no outbound
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"partners": [seller]}))
    assert cli.main(["--config", str(path), "config", "check"]) == 2
    assert "self_billing: true needs outbound" in capsys.readouterr().out


def test_self_billed_documents_need_no_way_to_the_buyer(store: Store, tmp_path: Path) -> None:
    (tmp_path / "seller").mkdir()
    settings = Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                f.buyer_partner(legal=BUYER_LEGAL),  # no outbound connector
                f.seller_partner(legal=SELLER_LEGAL, outbound="to-seller", self_billing=True),
            ],
            "connectors": [
                {"name": "to-seller", "type": "folder", "direction": "out", "path": "seller"}
            ],
        },
        context={"base_dir": tmp_path},
    )
    gateway = Gateway(settings, store)
    receive(gateway, f.order("PO-1", f.items(1)))
    receive(gateway, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    issued = bill(gateway)
    assert queued(gateway, issued.outbox_id)[:2] == ("seller", "to-seller")
    settings = settings.model_copy(
        update={
            "partners": [
                settings.partners[0],
                settings.partners[1].model_copy(update={"self_billing": False}),
            ]
        }
    )
    with pytest.raises(NotAllowed, match="has no outbound connector"):
        invoice(store, settings, "PO-1", InvoiceRequest(credit_of=issued.doc_number), actor="ops")
