"""Charges and discounts on Order Responses (T76 added / changed lines) and on to the invoice."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree

from edi_gateway import cli
from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.domain.billing import AllowanceCharge
from edi_gateway.domain.documents import Invoice, Line, OrderResponse
from edi_gateway.outbound import outbox
from edi_gateway.outbound.charges import (
    Charge,
    Discount,
    Vat,
    allowance_charge,
    parse_charge,
    parse_discount,
)
from edi_gateway.outbound.documents import show
from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest
from edi_gateway.outbound.respond import Decision, LineChange, ResponseRefused, respond
from edi_gateway.store.db import Store
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, receive
from tests.unit.test_invoice import SELLER_LEGAL, bill, billing_settings, payload_of, sent
from tests.unit.test_render import pdf_text

FREIGHT = Charge("freight", Decimal("25.00"))
S21 = ("S", Decimal(21))


@pytest.fixture
def billing(store: Store, tmp_path: Path) -> Gateway:
    """A gateway whose supplier has a legal profile (VAT 21 %); order PO-1 of two lines:
    10 x 2.25 and 10 x 3.25, no VAT on the lines."""
    (tmp_path / "out").mkdir()
    gateway = Gateway(billing_settings(tmp_path, seller_legal=SELLER_LEGAL), store)
    receive(gateway, f.order("PO-1", f.items(2)))
    return gateway


def response_sent(gateway: Gateway, outbox_id: int) -> OrderResponse:
    document = interpret(etree.fromstring(payload_of(gateway, outbox_id)))
    assert isinstance(document, OrderResponse)
    return document


def lines_of(document: OrderResponse) -> dict[str, Line]:
    return {line.line_id: line for line in document.lines}


def ubl_check(*payloads: bytes, tmp_path: Path) -> None:
    files = []
    for n, payload in enumerate(payloads):
        files.append(tmp_path / f"check-{n}.xml")
        files[-1].write_bytes(payload)
    done = subprocess.run(
        [sys.executable, str(shared_dir() / "tools" / "ubl-check"), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def charges_of(document: Invoice) -> list[tuple[bool, Decimal, str | None, str | None, Any]]:
    return [
        (a.charge, a.amount, a.reason_code, a.vat_category, a.vat_rate)
        for a in document.allowances_charges
    ]


# -- the Order Response ---------------------------------------------------------------------


def test_an_acceptance_with_freight_is_a_ca_with_an_added_line(billing: Gateway) -> None:
    issued = respond(
        billing.store, billing.settings, "PO-1", Decision("AP", charges=(FREIGHT,)), actor="ops"
    )
    assert issued.status == "Accepted with changes"
    document = response_sent(billing, issued.outbox_id)
    assert document.response_code == "CA"
    lines = lines_of(document)
    assert {k: v.status_code for k, v in lines.items()} == {"1": "5", "2": "5", "3": "1"}
    freight = lines["3"]
    assert (freight.item_name, freight.price, freight.order_line_ref) == (
        "Freight",
        Decimal("25.00"),
        "3",
    )
    assert freight.quantity is not None and (freight.quantity.value, freight.quantity.unit) == (
        Decimal(1),
        "C62",
    )
    assert freight.note == "Charge UNCL 7161 FC"  # the order lines state no VAT
    order = detail(billing)
    assert {ln["line_id"]: (ln["status_code"], ln["confirmed"]) for ln in order["lines"]} == {
        "1": ("5", "10"),
        "2": ("5", "10"),
    }
    issued_event = [h for h in order["history"] if h["event"] == "document.issued"]
    assert issued_event and "matching no order line" not in issued_event[0]["detail"]


def test_the_added_line_says_the_vat_of_the_order_lines(billing: Gateway) -> None:
    receive(billing, f.order("PO-9", f.items(12), detailed=True))  # lines say S 25 %
    packing = Charge("Packing", Decimal("4.50"))
    issued = respond(
        billing.store,
        billing.settings,
        "PO-9",
        Decision("CA", changes=(LineChange("2", Decimal(3)),), charges=(FREIGHT, packing)),
        actor="ops",
    )
    lines = lines_of(response_sent(billing, issued.outbox_id))
    assert (lines["13"].item_name, lines["13"].note) == (
        "Freight",
        "Charge UNCL 7161 FC, VAT S 25 %",
    )
    assert (lines["14"].item_name, lines["14"].note) == (
        "Packing",
        "Charge UNCL 7161 PC, VAT S 25 %",
    )
    assert lines["2"].status_code == "3" and lines["1"].status_code == "5"


def test_a_percentage_discount_changes_every_accepted_price(billing: Gateway) -> None:
    decision = Decision(
        "CA", changes=(LineChange("2", Decimal(0)),), discount=Discount(percent=Decimal(5))
    )
    issued = respond(billing.store, billing.settings, "PO-1", decision, actor="ops")
    lines = lines_of(response_sent(billing, issued.outbox_id))
    assert (lines["1"].status_code, lines["1"].price) == ("3", Decimal("2.1375"))  # 2.25 - 5 %
    assert lines["1"].quantity is not None and lines["1"].quantity.value == Decimal(10)
    assert (lines["2"].status_code, lines["2"].price) == ("7", Decimal("3.25"))  # not accepted
    assert set(lines) == {"1", "2"}


def test_every_response_with_charges_passes_the_official_checks(
    billing: Gateway, tmp_path: Path
) -> None:
    receive(billing, f.order("PO-2", f.items(3)))
    receive(billing, f.order("PO-3", f.items(2), detailed=True))
    decisions = {
        "PO-1": Decision("AP", charges=(FREIGHT, Charge("handling", Decimal("3.10"), Vat(*S21)))),
        "PO-2": Decision("AP", discount=Discount(percent=Decimal("12.5"))),
        "PO-3": Decision(
            "CA",
            changes=(LineChange("1", Decimal(4)),),
            charges=(Charge("Eilzuschlag", Decimal("9.99")),),
            discount=Discount(amount=Decimal("20.00")),
        ),
    }
    issued = {
        ref: respond(billing.store, billing.settings, ref, decision, actor="ops")
        for ref, decision in decisions.items()
    }
    discount = lines_of(response_sent(billing, issued["PO-3"].outbox_id))["4"]
    assert (discount.item_name, discount.price, discount.status_code) == (
        "Discount",
        Decimal("-20.00"),
        "1",
    )
    assert discount.note == "Allowance UNCL 5189 95, VAT S 25 %"
    ubl_check(*(payload_of(billing, i.outbox_id) for i in issued.values()), tmp_path=tmp_path)


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        (Decision("AB", charges=(FREIGHT,)), "only with an acceptance"),
        (Decision("RE", reason="no", discount=Discount(percent=Decimal(5))), "only with an acc"),
        (Decision("AP", charges=(Charge("freight", Decimal(-5)),)), "above 0"),
        (Decision("AP", charges=(Charge("freight", Decimal("2.001")),)), "at most 2 decimals"),
        (Decision("AP", discount=Discount(percent=Decimal(101))), "at most 100%"),
        (Decision("AP", discount=Discount(amount=Decimal(500))), "more than the accepted lines"),
        (Decision("AP", charges=(Charge("x", Decimal(1), Vat("S")),)), "needs a rate"),
        (Decision("AP", charges=(Charge("x", Decimal(1), Vat("Z", Decimal(5))),)), "rate 0"),
    ],
)
def test_what_charges_do_not_allow_is_refused(
    billing: Gateway, decision: Decision, message: str
) -> None:
    with pytest.raises(ResponseRefused, match=message):
        respond(billing.store, billing.settings, "PO-1", decision, actor="ops")


def test_lines_with_different_vat_need_the_charge_vat(billing: Gateway) -> None:
    order = f.order("PO-7", f.items(2), detailed=True).replace(
        b"<cbc:Percent>25</cbc:Percent>", b"<cbc:Percent>12</cbc:Percent>", 1
    )
    receive(billing, order)
    with pytest.raises(ResponseRefused, match=r"not all state the same VAT.*freight:25.00:S:25"):
        respond(
            billing.store, billing.settings, "PO-7", Decision("AP", charges=(FREIGHT,)), actor="o"
        )
    freight = Charge("freight", Decimal("25.00"), Vat("S", Decimal(25)))
    issued = respond(
        billing.store, billing.settings, "PO-7", Decision("AP", charges=(freight,)), actor="o"
    )
    assert lines_of(response_sent(billing, issued.outbox_id))["3"].note == (
        "Charge UNCL 7161 FC, VAT S 25 %"
    )


# -- on to the invoice ----------------------------------------------------------------------


def test_freight_and_discount_reach_the_first_invoice_only(
    billing: Gateway, tmp_path: Path
) -> None:
    decision = Decision("AP", charges=(FREIGHT,), discount=Discount(percent=Decimal(10)))
    respond(billing.store, billing.settings, "PO-1", decision, actor="ops")
    receive(billing, f.despatch_advice("D-1", "PO-1", [("1", "10"), ("2", "4")]))
    first_issued = bill(billing)
    first = sent(billing, first_issued.outbox_id)
    assert [ln.price for ln in first.lines] == [Decimal("2.025"), Decimal("2.925")]
    assert charges_of(first) == [(True, Decimal("25.00"), "FC", "S", Decimal(21))]
    # 10 x 2.025 + 4 x 2.925 = 31.95; + 25.00 freight = 56.95; VAT 21 % = 11.96 (11.9595)
    assert (first.tax_exclusive_amount, first.tax_amount, first.payable_amount) == (
        Decimal("56.95"),
        Decimal("11.96"),
        Decimal("68.91"),
    )
    receive(billing, f.despatch_advice("D-2", "PO-1", [("2", "6")]))
    second_issued = bill(billing)
    second = sent(billing, second_issued.outbox_id)
    assert second.allowances_charges == []  # never twice
    # 6 x 2.925 = 17.55; VAT 21 % = 3.69 (3.6855)
    assert (second.tax_exclusive_amount, second.tax_amount, second.payable_amount) == (
        Decimal("17.55"),
        Decimal("3.69"),
        Decimal("21.24"),
    )
    assert second_issued.status == "Fully invoiced"
    credit = sent(billing, bill(billing, InvoiceRequest(credit_of="INV-PO-1-2")).outbox_id)
    assert [ln.price for ln in credit.lines] == [Decimal("2.925")]  # at the invoiced price
    ubl_check(
        *(payload_of(billing, i.outbox_id) for i in (first_issued, second_issued)),
        tmp_path=tmp_path,
    )


def test_a_suppliers_freight_line_reaches_the_invoice(billing: Gateway, tmp_path: Path) -> None:
    confirmed = [("1", "5", "10"), ("2", "5", "10")]
    receive(
        billing,
        f.order_response(
            "OR-S-1",
            "PO-1",
            "CA",
            confirmed,
            added=[("3", "Freight", "12.50"), ("4", "Discount", "-5.00")],
        ),
    )
    order = detail(billing)
    assert order["status"] == "Accepted with changes"
    assert {ln["line_id"]: ln["status_code"] for ln in order["lines"]} == {"1": "5", "2": "5"}
    receive(billing, f.despatch_advice("D-1", "PO-1", [("1", "10"), ("2", "10")]))
    issued = bill(billing)
    document = sent(billing, issued.outbox_id)
    assert charges_of(document) == [
        (True, Decimal("12.50"), "FC", "S", Decimal(21)),
        (False, Decimal("5.00"), "95", "S", Decimal(21)),
    ]
    # 10 x 2.25 + 10 x 3.25 = 55.00; + 12.50 - 5.00 = 62.50; VAT 21 % = 13.13 (13.125)
    assert (document.tax_exclusive_amount, document.tax_amount, document.payable_amount) == (
        Decimal("62.50"),
        Decimal("13.13"),
        Decimal("75.63"),
    )
    ubl_check(payload_of(billing, issued.outbox_id), tmp_path=tmp_path)


def test_the_invoice_pdf_names_the_freight_in_the_buyers_language(
    billing: Gateway, tmp_path: Path
) -> None:
    respond(
        billing.store, billing.settings, "PO-1", Decision("AP", charges=(FREIGHT,)), actor="ops"
    )
    receive(billing, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    issued = bill(billing, InvoiceRequest((LineRequest("1"),)))
    data = billing.settings.model_dump()
    for partner in data["partners"]:
        partner["language"] = "nl" if partner["id"] == "buyer" else partner["language"]
    dutch = Settings.model_validate(data, context={"base_dir": tmp_path})
    shown = show(billing.store, dutch, issued.document_id, "pdf")
    text = "\n".join(pdf_text(shown.payload))
    assert "Vrachtkosten" in text and "25,00" in text
    assert "Te betalen" in text and "57,48 EUR" in text  # 47.50 + 9.98 (9.975) VAT


# -- the pieces -----------------------------------------------------------------------------


def test_charge_and_discount_arguments() -> None:
    assert parse_charge("freight:25.00") == Charge("freight", Decimal("25.00"))
    assert parse_charge("Packing:4.5:s:12") == Charge(
        "Packing", Decimal("4.5"), Vat("S", Decimal(12))
    )
    assert parse_discount("5%") == Discount(percent=Decimal(5))
    assert parse_discount("20.00:S:25") == Discount(
        amount=Decimal("20.00"), vat=Vat("S", Decimal(25))
    )
    for bad, message in [
        ("freight", "KIND:AMOUNT"),
        ("freight:abc", "'abc' in 'freight:abc' is not a number"),
        ("freight:-5", "above 0"),
        ("freight:25:S", "KIND:AMOUNT"),
        ("freight:25:X:1", "VAT category 'X'"),
        (":25", "KIND:AMOUNT"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_charge(bad)
    for bad, message in [
        ("150%", "at most 100%"),
        ("0%", "above 0"),
        ("-3", "above 0"),
        ("5%:S:25", "without VAT"),
        ("x%", "not a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_discount(bad)


def test_an_added_line_becomes_an_allowance_or_a_charge() -> None:
    default = Vat(*S21)
    line = Line("9", item_name="Fracht", price=Decimal("7.5"))
    assert allowance_charge(line, default) == AllowanceCharge(
        True, Decimal("7.50"), "Fracht", None, "S", Decimal(21)
    )
    line.note = "Charge UNCL 7161 FC, VAT Z 0 %"
    assert allowance_charge(line, default) == AllowanceCharge(
        True, Decimal("7.50"), "Fracht", "FC", "Z", Decimal(0)
    )
    line.note = "Charge UNCL 7161 XYZ, VAT Q 7 %"  # unknown code and category: not trusted
    assert allowance_charge(line, default) == AllowanceCharge(
        True, Decimal("7.50"), "Fracht", None, "S", Decimal(21)
    )
    assert allowance_charge(Line("9", item_name="Nothing", price=Decimal(0)), default) is None


def _config(gateway: Gateway, tmp_path: Path) -> str:
    data = gateway.settings.model_dump(mode="json", exclude={"path"}, exclude_defaults=True)
    data["store"] = {"url": gateway.store.engine.url.render_as_string(hide_password=False)}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_the_cli_sends_charges_and_refuses_bad_ones(
    billing: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(billing, tmp_path)
    for args, message in [
        (["--charge", "freight:abc"], "argument --charge: 'abc' in 'freight:abc' is not a number"),
        (
            ["--charge", "freight:-25"],
            "argument --charge: freight: a charge must be an amount above 0",
        ),
        (
            ["--discount", "120%"],
            "argument --discount: a discount of 120% must be above 0% and at most 100%",
        ),
    ]:
        with pytest.raises(SystemExit) as refused:
            cli.main(["--config", config, "respond", "PO-1", "--accept", *args])
        assert refused.value.code == 2
        assert message in capsys.readouterr().err
    assert cli.main(["--config", config, "respond", "PO-1", "--ack", "--charge", "freight:5"]) == 1
    assert "charges and discounts go only with an acceptance" in capsys.readouterr().err
    accept = ["--accept", "--charge", "freight:25.00", "--discount", "5%"]
    assert cli.main(["--config", config, "respond", "PO-1", *accept]) == 0
    assert "Order Response (CA) PO-1-OR1 queued" in capsys.readouterr().out
    outbox.flush(billing.store, billing.settings)
    [written] = (tmp_path / "out").iterdir()
    lines = lines_of(interpret(etree.fromstring(written.read_bytes())))  # type: ignore[arg-type]
    assert [(k, v.status_code, v.price) for k, v in lines.items()] == [
        ("1", "3", Decimal("2.1375")),
        ("2", "3", Decimal("3.0875")),
        ("3", "1", Decimal("25.00")),
    ]
