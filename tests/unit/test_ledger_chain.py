"""The ledger that cannot be fooled, end to end (docs/adr/0024): order -> response -> despatch
-> invoice -> credit -> invoice through the real pipeline and the real issuing commands, with
quantities, status, attention, discrepancies and history asserted at each step, and every UBL
document the gateway generated put through the official checks."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.envelope import Envelope
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.despatch import DespatchRequest, despatch
from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest, invoice
from edi_gateway.outbound.issuing import QuantityExceeded
from edi_gateway.outbound.respond import Decision, LineChange, respond
from edi_gateway.pipeline.discrepancies import clear_attention
from edi_gateway.pipeline.intake import intake
from edi_gateway.pipeline.process import process_messages
from edi_gateway.store.db import Store
from edi_gateway.store.queries import Filters, page_orders, resolve_order
from edi_gateway.store.tables import DocumentRow, HistoryEvent, Message, OutboxRow
from edi_gateway.views import order_text, orders_table
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, receive
from tests.unit.test_invoice import SELLER_LEGAL, billing_settings

D = Decimal


@pytest.fixture
def gw(store: Store, tmp_path: Path) -> Gateway:
    """Order PO-1: line 1 and line 2, 40 units each; the supplier has a legal profile."""
    (tmp_path / "out").mkdir()
    gateway = Gateway(billing_settings(tmp_path, seller_legal=SELLER_LEGAL), store)
    receive(gateway, f.order("PO-1", f.items(2, "40")))
    return gateway


def issue(gw: Gateway, command: Any, request: Any, ref: str = "PO-1", **kw: Any) -> Any:
    return command(gw.store, gw.settings, ref, request, actor="ops", **kw)


def line(gw: Gateway, line_id: str = "1") -> dict[str, Any]:
    [found] = [ln for ln in detail(gw)["lines"] if ln["line_id"] == line_id]
    return found


def events(gw: Gateway, name: str) -> list[str]:
    return [h["detail"] for h in detail(gw)["history"] if h["event"] == name]


def ubl_check_outbox(gw: Gateway, tmp_path: Path) -> int:
    """Every document the gateway queued, through ubl-check; how many there were."""
    with gw.store.session() as session:
        rows = session.execute(select(OutboxRow.filename, OutboxRow.payload)).all()
    folder = tmp_path / "generated"
    folder.mkdir()
    paths = []
    for name, payload in rows:
        (folder / name).write_bytes(payload)
        paths.append(folder / name)
    tool = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(tool), *map(str, paths)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return len(paths)


def test_credited_goods_are_not_billed_again(gw: Gateway, tmp_path: Path) -> None:
    """The issue's finding: invoice 20, credit 5 (damaged), despatch the rest, invoice ORDER."""
    issue(gw, respond, Decision("AP"))
    assert detail(gw)["status"] == "Accepted"
    issue(gw, despatch, DespatchRequest((("1", D(20)),)))
    assert detail(gw)["status"] == "Partially delivered"  # our own advice: no supplier backorder
    first = issue(gw, invoice, InvoiceRequest((LineRequest("1", D(20)),)))
    assert first.status == "Partially invoiced"
    credit = issue(
        gw, invoice, InvoiceRequest((LineRequest("1", D(5)),), credit_of=first.doc_number)
    )
    assert (line(gw)["invoiced"], line(gw)["credited"]) == ("20", "5")
    assert credit.status == "Partially invoiced"  # line 2 is not billed yet
    issue(gw, despatch, DespatchRequest())  # the rest: line 1 20, line 2 40
    assert detail(gw)["status"] == "Partially invoiced"
    last = issue(gw, invoice, InvoiceRequest())
    assert (line(gw)["invoiced"], line(gw)["credited"]) == ("40", "5")  # not 45
    assert (line(gw, "2")["invoiced"], line(gw, "2")["credited"]) == ("40", "0")
    assert last.status == "Fully invoiced"
    with pytest.raises(GatewayError, match="nothing to bill"):
        issue(gw, invoice, InvoiceRequest())
    order = detail(gw)
    assert order["attention"] is False and order["discrepancies"] == []
    assert ubl_check_outbox(gw, tmp_path) == 6  # response, 2 advices, 2 invoices, credit


def test_credit_then_reinvoice_needs_the_operator(gw: Gateway, tmp_path: Path) -> None:
    issue(gw, despatch, DespatchRequest((("1", D(40)),)))
    wrong = issue(gw, invoice, InvoiceRequest((LineRequest("1", price=D("12.00")),)))
    issue(gw, invoice, InvoiceRequest(credit_of=wrong.doc_number, reason="wrong price"))
    assert (line(gw)["invoiced"], line(gw)["credited"]) == ("40", "40")
    with pytest.raises(GatewayError, match="nothing to bill"):
        issue(gw, invoice, InvoiceRequest())
    again = issue(gw, invoice, InvoiceRequest(rebill_credited=True))
    assert (line(gw)["invoiced"], line(gw)["credited"]) == ("80", "40")
    assert events(gw, "invoice.rebill_credited") == [
        f"{again.doc_number} bills credited quantities again: line 1: 40 (credited 40)"
    ]
    assert detail(gw)["attention"] is False  # 80 invoiced less 40 credited: 40 of 40
    assert ubl_check_outbox(gw, tmp_path) == 4


def test_a_second_supplier_invoice_for_the_same_lines_is_flagged(gw: Gateway) -> None:
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", "40"), ("2", "40")]))
    billed = [("1", "40", "2.25"), ("2", "40", "3.25")]
    receive(gw, f.invoice("S-INV-1", "PO-1", billed))
    assert detail(gw)["status"] == "Fully invoiced" and detail(gw)["attention"] is False
    receive(gw, f.invoice("S-INV-2", "PO-1", billed))
    order = detail(gw)
    assert line(gw)["invoiced"] == "80"  # recorded as the supplier stated it
    assert order["attention"] is True
    assert [
        (d["line_id"], d["kind"], d["quantity"], d["bound"]) for d in order["discrepancies"]
    ] == [
        ("1", "over_invoiced", "80", "40"),
        ("2", "over_invoiced", "80", "40"),
    ]
    basis = "more than 40 confirmed or despatched (net of credits)"
    assert events(gw, "order.discrepancy") == [
        f"Invoice S-INV-2 line 1: invoiced 80, {basis}",
        f"Invoice S-INV-2 line 2: invoiced 80, {basis}",
    ]
    with gw.store.session() as session:
        flagged = page_orders(session, Filters(attention=True)).rows
        assert [o["number"] for o in flagged] == ["PO-1"] and flagged[0]["attention"] is True
        assert page_orders(session, Filters()).total == 1
    assert "ATTENTION" in orders_table(flagged)
    text = order_text(order)
    assert "ATTENTION" in text and "Invoice S-INV-2 line 1: invoiced 80" in text

    # the supplier credits the duplicate: no new discrepancy, the operator clears the flag
    credit = [("1", "40", "2.25"), ("2", "40", "3.25")]
    receive(
        gw,
        f.invoice(
            "S-CN-1", "PO-1", credit, root="CreditNote", type_code="381", billing_ref="S-INV-2"
        ),
    )
    assert len(detail(gw)["discrepancies"]) == 2 and detail(gw)["attention"] is True
    with gw.store.session() as session:
        order_row = resolve_order(session, "PO-1")
        with pytest.raises(GatewayError, match="give the reason") as empty:
            clear_attention(session, order_row, "  ", actor="ops")
        assert empty.value.code is ErrorCode.USAGE
        assert clear_attention(session, order_row, "S-INV-2 credited by S-CN-1", actor="ops") == 2
    order = detail(gw)
    assert order["attention"] is False and len(order["discrepancies"]) == 2  # kept on record
    [cleared] = [h for h in order["history"] if h["event"] == "order.attention_cleared"]
    assert (cleared["detail"], cleared["actor"]) == ("S-INV-2 credited by S-CN-1", "ops")
    with gw.store.session() as session:
        assert page_orders(session, Filters(attention=True)).total == 0
        with pytest.raises(GatewayError, match="does not need attention"):
            clear_attention(session, resolve_order(session, "PO-1"), "again", actor="ops")

    # the same ledger recomputed flags nothing again; a third invoice does
    receive(gw, f.order_response("R-1", "PO-1", "AB"))
    assert detail(gw)["attention"] is False
    receive(gw, f.invoice("S-INV-3", "PO-1", [("1", "1", "2.25")]))
    assert detail(gw)["attention"] is True
    assert events(gw, "order.discrepancy")[-1] == (
        "Invoice S-INV-3 line 1: invoiced 41, more than 40 confirmed or despatched (net of credits)"
    )


def test_over_despatch_credit_beyond_invoiced_and_negative_quantities(gw: Gateway) -> None:
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", "45")]))
    assert detail(gw)["attention"] is True
    assert line(gw)["despatched"] == "45"
    receive(gw, f.invoice("S-INV-1", "PO-1", [("1", "45", "2.25")]))  # billing the over-delivery
    receive(
        gw,
        f.invoice(
            "S-CN-1",
            "PO-1",
            [("1", "50", "2.25")],
            root="CreditNote",
            type_code="381",
            billing_ref="S-INV-1",
        ),
    )
    receive(gw, f.despatch_advice("D-2", "PO-1", [("2", "-5")]))
    kinds = [(d["line_id"], d["kind"]) for d in detail(gw)["discrepancies"]]
    assert kinds == [("1", "over_despatched"), ("1", "over_credited"), ("2", "negative")]
    assert events(gw, "order.discrepancy")[-1] == (
        "DespatchAdvice D-2 line 2: despatched quantity -5 is below 0"
    )


def test_a_quantity_in_another_unit_is_flagged(gw: Gateway) -> None:
    """The order is in pieces (C62): 10 boxes or 2 dozen are not 10 or 2 pieces."""
    boxes = f.despatch_advice("D-1", "PO-1", [("1", "10")]).replace(b'"C62"', b'"XBX"')
    receive(gw, boxes)
    dozens = f.invoice("S-INV-1", "PO-1", [("1", "2", "2.25")]).replace(b'"C62"', b'"DZN"')
    receive(gw, dozens)
    receive(gw, f.despatch_advice("D-2", "PO-1", [("2", "5")]).replace(b'"C62"', b'"EA"'))
    order = detail(gw)
    assert order["attention"] is True
    assert [(d["line_id"], d["kind"]) for d in order["discrepancies"]] == [
        ("1", "unit"),
        ("1", "unit"),
    ]  # EA counts single units as C62 does: no discrepancy
    assert events(gw, "order.discrepancy") == [
        "DespatchAdvice D-1 line 1: despatched 10 XBX, but the order line is in C62",
        "Invoice S-INV-1 line 1: invoiced 2 DZN (24 C62), but the order line is in C62",
    ]


def test_a_conversion_that_does_not_end_is_kept_as_its_column_holds(gw: Gateway) -> None:
    """1 C62 on a line in dozens is 1/12 DZN: in the recompute's 100-digit context that ran to
    100 digits, which PostgreSQL refused (the despatch advice failed) and SQLite kept."""
    receive(gw, f.order("PO-2", [f.Item("1", "10", unit="DZN")]))
    mid = receive(gw, f.despatch_advice("D-1", "PO-2", [("1", "1")]))
    with gw.store.session() as session:
        assert session.get_one(Message, mid).state == "processed"
    twelfth = "0." + "0" + "8" + "3" * 44  # 48 characters
    [found] = detail(gw, "PO-2")["discrepancies"]
    assert (found["kind"], found["quantity"], found["bound"]) == ("unit", "1", twelfth)
    assert found["detail"] == (
        f"DespatchAdvice D-1 line 1: despatched 1 C62 ({twelfth} DZN), but the order line is in DZN"
    )


def test_a_document_from_another_supplier_is_flagged(store: Store, tmp_path: Path) -> None:
    """Correlation finds PO-1 by buyer and order number: another supplier's invoice for it is
    counted as stated, and flagged even within what was ordered."""
    (tmp_path / "out").mkdir()
    settings = billing_settings(tmp_path, seller_legal=SELLER_LEGAL)
    other = {"id": "other", "name": "Other AB", "role": "supplier"}
    other["endpoint"] = {"scheme": "0088", "value": "7300000000097"}
    data = settings.model_dump()
    data["partners"].append(other)
    gw = Gateway(type(settings).model_validate(data, context={"base_dir": tmp_path}), store)
    receive(gw, f.order("PO-1", f.items(2, "40")))
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", "5")], seller="7300000000097"))
    order = detail(gw)
    assert line(gw)["despatched"] == "5" and order["attention"] is True
    assert [(d["line_id"], d["kind"]) for d in order["discrepancies"]] == [("1", "other_party")]
    assert events(gw, "order.discrepancy") == [
        "DespatchAdvice D-1 line 1: despatched 5 by other, not the order's buyer or supplier"
    ]
    receive(gw, f.despatch_advice("D-2", "PO-1", [("2", "5")]))  # the order's own supplier
    assert len(detail(gw)["discrepancies"]) == 1


def flagged_after_the_end(gw: Gateway, ended: str, despatched: str, bound: str) -> None:
    """D-2 took line 1 beyond what left before the order ended, S-INV-2 billed 40 of line 2
    that never left: both flagged, both counted as stated."""
    order = detail(gw)
    assert order["attention"] is True and line(gw, "2")["invoiced"] == "40"
    assert [(d["line_id"], d["kind"], d["bound"]) for d in order["discrepancies"]] == [
        ("1", "over_despatched", bound),
        ("2", "over_invoiced", "0"),
    ]
    assert events(gw, "order.discrepancy") == [
        f"DespatchAdvice D-2 line 1: despatched {despatched}, more than {bound} despatched "
        f"before the order was {ended}",
        "Invoice S-INV-2 line 2: invoiced 40, more than 0 confirmed or despatched (net of "
        f"credits) (the order is {ended})",
    ]


def test_goods_sent_or_billed_after_a_cancellation_are_flagged(gw: Gateway) -> None:
    """A cancellation accepted after part of the order left (ADR 0008): what left before it
    stands and is billed unflagged; a despatch after it, or a bill for goods that never left,
    is flagged (both used to count silently under the status Cancelled)."""
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", "10")]))
    receive(gw, f.order_cancellation("C-1", "PO-1"))  # pending: part of it was despatched
    receive(gw, f.order_response("R-1", "PO-1", "AP"))  # the supplier accepts the cancellation
    receive(gw, f.invoice("S-INV-1", "PO-1", [("1", "10", "2.25")]))
    assert detail(gw)["status"] == "Cancelled" and detail(gw)["attention"] is False
    receive(gw, f.despatch_advice("D-2", "PO-1", [("1", "5")]))
    receive(gw, f.invoice("S-INV-2", "PO-1", [("2", "40", "3.25")]))
    assert detail(gw)["status"] == "Cancelled" and line(gw)["despatched"] == "15"
    flagged_after_the_end(gw, "cancelled", "15", "10")


def test_goods_sent_or_billed_after_a_rejection_are_flagged(gw: Gateway) -> None:
    """The supplier's RE rejects the whole order (T76). A CA refusing every line made any
    despatch over (confirmed 0); after an RE despatches and invoices counted silently under
    Rejected. A later acceptance puts the order back, and nothing more is flagged."""
    receive(gw, f.order_response("R-1", "PO-1", "RE"))
    receive(gw, f.despatch_advice("D-2", "PO-1", [("1", "40")]))
    receive(gw, f.invoice("S-INV-2", "PO-1", [("2", "40", "3.25")]))
    assert detail(gw)["status"] == "Rejected"
    flagged_after_the_end(gw, "rejected", "40", "0")
    receive(gw, f.order_response("R-2", "PO-1", "AP"))
    receive(gw, f.despatch_advice("D-3", "PO-1", [("2", "40")]))
    assert detail(gw)["status"] == "Partially invoiced"
    assert len(detail(gw)["discrepancies"]) == 2


def test_an_over_despatch_before_a_cancellation_stays_flagged(gw: Gateway) -> None:
    """D-1 sent 50 of the 40 ordered before the cancellation, but is attached (by hand) only
    once the cancellation is in effect: what left before the end bounds a line only up to what
    was ordered or confirmed, so D-1 is over as it was on an order that stands."""
    orphan = receive(gw, f.despatch_advice("D-1", "PO-X", [("1", "50")]))
    receive(gw, f.order_cancellation("C-1", "PO-1"))
    receive(gw, f.order_response("R-1", "PO-1", "AP"))
    assert detail(gw)["status"] == "Cancelled"
    gw.attach(orphan, "PO-1", actor="ops")
    order = detail(gw)
    assert line(gw)["despatched"] == "50" and order["attention"] is True
    assert [(d["line_id"], d["kind"], d["bound"]) for d in order["discrepancies"]] == [
        ("1", "over_despatched", "40")
    ]


def test_our_own_commands_refuse_to_exceed(gw: Gateway) -> None:
    with pytest.raises(QuantityExceeded, match=r"line 1: 50 confirmed, 40 ordered") as refused:
        issue(gw, respond, Decision("CA", changes=(LineChange("1", D(50)),)))
    assert refused.value.code is ErrorCode.QUANTITY_EXCEEDED
    issue(gw, respond, Decision("CA", changes=(LineChange("1", D(30)),)))
    with pytest.raises(QuantityExceeded, match=r"1: 31 asked, 30 open") as over:
        issue(gw, despatch, DespatchRequest((("1", D(31)),)))
    assert over.value.code is ErrorCode.QUANTITY_EXCEEDED
    issue(gw, despatch, DespatchRequest((("1", D(30)),)))
    with pytest.raises(QuantityExceeded, match=r"1: 31 asked, 30 was despatched"):
        issue(gw, invoice, InvoiceRequest((LineRequest("1", D(31)),)))
    first = issue(gw, invoice, InvoiceRequest())
    with pytest.raises(QuantityExceeded, match=r"1: 31 asked, 30 invoice .* billed"):
        issue(gw, invoice, InvoiceRequest((LineRequest("1", D(31)),), credit_of=first.doc_number))
    with pytest.raises(QuantityExceeded, match=r"1: 31 asked, 30 invoice .* billed"):
        issue(gw, invoice, InvoiceRequest((LineRequest("1", D(31)),), debit_of=first.doc_number))
    assert detail(gw)["attention"] is False
    # forcing is the operator's word: recorded, and the ledger flags what it exceeds
    issue(gw, despatch, DespatchRequest((("1", D(5)),)), force=True)
    assert events(gw, "despatch.forced") == ["1: 5 asked, 0 open"]
    assert detail(gw)["attention"] is True
    assert events(gw, "order.discrepancy") == [
        "DespatchAdvice PO-1-DA2 (issued here) line 1: despatched 35, more than 30 ordered or "
        "confirmed"
    ]


def test_responses_confirming_more_or_refusing_every_line(gw: Gateway) -> None:
    receive(gw, f.order_response("R-1", "PO-1", "CA", [("1", "3", "50"), ("2", "5", "40")]))
    order = detail(gw)
    assert order["attention"] is True and order["status"] == "Accepted with changes"
    assert [d["detail"] for d in order["discrepancies"]] == [
        "OrderResponse R-1 line 1: confirmed 50, more than 40 ordered"
    ]
    receive(gw, f.order_response("R-2", "PO-1", "CA", [("1", "7", "0"), ("2", "7", "0")]))
    assert detail(gw)["status"] == "Rejected"  # a CA accepting no line refuses the order
    with pytest.raises(GatewayError, match="is Rejected"):
        issue(gw, despatch, DespatchRequest())


def test_backorders_and_track_and_trace(gw: Gateway) -> None:
    receive(gw, f.order_response("R-1", "PO-1", "AP"))
    receive(
        gw,
        f.despatch_advice(
            "D-0", "PO-1", [("1", "0"), ("2", "0")], outstanding={"1": "40", "2": "40"}
        ),
    )
    assert detail(gw)["status"] == "Backordered"
    assert [ln["backordered"] for ln in detail(gw)["lines"]] == ["40", "40"]
    receive(
        gw, f.despatch_advice("D-1", "PO-1", [("1", "30"), ("2", "40")], outstanding={"1": "10"})
    )
    assert detail(gw)["status"] == "Partially backordered"
    assert [ln["backordered"] for ln in detail(gw)["lines"]] == ["10", "0"]
    assert "backordered" in order_text(detail(gw))
    url = "https://track.example/?id=JD0146000062"
    receive(
        gw,
        f.despatch_advice(
            "D-2", "PO-1", [("1", "10")], tracking=("DHL Freight", "JD0146000062", url)
        ),
    )
    order = detail(gw)
    assert order["status"] == "Shipped"
    assert [ln["backordered"] for ln in order["lines"]] == ["0", "0"]  # the 10 followed
    assert order["shipments"] == [
        {
            "document_id": order["shipments"][0]["document_id"],
            "despatch_advice": "D-2",
            "carrier": "DHL Freight",
            "tracking_id": "JD0146000062",
            "tracking_url": url,
        }
    ]
    assert "D-2: DHL Freight  tracking JD0146000062  " + url in order_text(order)
    assert order["attention"] is False
    # invoicing outranks shipping
    receive(gw, f.invoice("S-INV-1", "PO-1", [("1", "40", "2.25"), ("2", "40", "3.25")]))
    assert detail(gw)["status"] == "Fully invoiced"


def test_a_partial_despatch_without_backorder_is_partially_delivered(gw: Gateway) -> None:
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", "10")], tracking=("PostNord", "X1", None)))
    order = detail(gw)
    assert order["status"] == "Partially delivered"
    assert order["shipments"][0]["tracking_url"] is None
    assert [ln["backordered"] for ln in order["lines"]] == ["0", None]


def test_a_replacement_of_returned_goods_is_flagged_then_billed_once(
    gw: Gateway, tmp_path: Path
) -> None:
    """ADR 0024 examples 2 and 5: a return credited, its replacement despatched beyond 40."""
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", "40")]))
    first = issue(gw, invoice, InvoiceRequest())
    issue(gw, invoice, InvoiceRequest((LineRequest("1", D(5)),), credit_of=first.doc_number))
    with pytest.raises(GatewayError, match="nothing to bill"):
        issue(gw, invoice, InvoiceRequest())
    receive(gw, f.despatch_advice("D-2", "PO-1", [("1", "5")]))  # the replacement
    assert [d["kind"] for d in detail(gw)["discrepancies"]] == ["over_despatched"]
    replaced = issue(gw, invoice, InvoiceRequest())
    assert (line(gw)["invoiced"], line(gw)["credited"]) == ("45", "5")
    assert replaced.status == "Partially invoiced"  # line 2 never left
    assert [d["kind"] for d in detail(gw)["discrepancies"]] == ["over_despatched"]
    assert ubl_check_outbox(gw, tmp_path) == 3


def test_a_despatch_a_hair_over_the_order_is_flagged_not_rounded(gw: Gateway) -> None:
    """Summed in Python's default context (28 digits) 40.00000000000000000000000000001 read
    as 40: "despatched 40", Fully delivered, no over-despatch."""
    hair = "40.00000000000000000000000000001"
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", hair), ("2", "40")]))
    receive(gw, f.despatch_advice("D-2", "PO-1", [("2", "0")]))  # a second row: a real sum
    assert line(gw)["despatched"] == hair
    assert [(d["line_id"], d["kind"]) for d in detail(gw)["discrepancies"]] == [
        ("1", "over_despatched")
    ]
    assert detail(gw)["attention"] is True


def test_quantities_adding_up_beyond_their_column_fail_that_document_alone(gw: Gateway) -> None:
    """Each quantity fits its column (48 characters); their exact sum does not. The document
    that would make it fails with VALUE_TOO_LONG; nothing of it is kept in the ledger."""
    big, tiny = "1" + "0" * 46, "0." + "0" * 45 + "1"
    receive(gw, f.despatch_advice("D-1", "PO-1", [("1", big)]))
    failed = receive(gw, f.despatch_advice("D-2", "PO-1", [("1", tiny), ("2", "5")]))
    with gw.store.session() as session:
        message = session.get_one(Message, failed)
        assert (message.state, message.error_code) == ("failed", "VALUE_TOO_LONG")
    assert line(gw)["despatched"] == big
    assert line(gw, "2")["despatched"] == "0"
    assert "D-2" not in [d["number"] for d in detail(gw)["documents"]]


BIG, TINY = "1" + "0" * 43, "0." + "0" * 45 + "1"  # each fits its column; their sum does not
HAIR = "40.00000000000000000000000000001"


def test_a_sum_too_long_in_a_batch_costs_the_other_documents_nothing(gw: Gateway) -> None:
    """One batch: D-2 fails with VALUE_TOO_LONG once its recompute has loaded its ledger rows.
    Its savepoint was rolled back, but those rows stayed in the session; SQLite gave their IDs
    to D-3's and D-4's rows, whose recomputes then counted D-2's instead: both "processed",
    their quantities lost (PO-1 line 1 and PO-2 line 2 read 0)."""
    receive(gw, f.order("PO-2", f.items(2, BIG)))
    payloads = [
        f.despatch_advice("D-1", "PO-2", [("1", BIG)]),
        f.despatch_advice("D-2", "PO-2", [("1", TINY), ("2", "5")]),
        f.despatch_advice("D-3", "PO-1", [("1", "4")]),
        f.despatch_advice("D-4", "PO-2", [("2", "7")]),
    ]
    ids = intake(
        gw.store,
        [
            Envelope(payload=p, source="t", source_ref=f"batch-{n}", filename="d.xml")
            for n, p in enumerate(payloads)
        ],
    )
    states = process_messages(gw.store, gw.policy, ids, react=gw.react)
    assert [states[i] for i in ids] == ["processed", "failed", "processed", "processed"]
    assert line(gw)["despatched"] == "4"
    assert [ln["despatched"] for ln in detail(gw, "PO-2")["lines"]] == [BIG, "7"]


def test_what_is_open_keeps_every_digit_and_despatching_it_completes_the_line(
    gw: Gateway,
) -> None:
    """Open, unbilled and backordered were computed in the default context: 39.5 shown for
    39.50000000000000000000000000001, and `despatch ORDER` sent that rounded rest, leaving the
    line 1E-29 short of Fully delivered for good."""
    receive(gw, f.order("PO-2", f.items(1, HAIR)))
    receive(gw, f.despatch_advice("D-1", "PO-2", [("1", "0.5")], outstanding={"1": HAIR}))
    receive(gw, f.invoice("I-1", "PO-2", [("1", "0.25", "1")]))
    [shown] = detail(gw, "PO-2")["lines"]
    rest = "39.50000000000000000000000000001"
    assert (shown["open"], shown["backordered"], shown["unbilled"]) == (rest, rest, "0.25")
    despatch(gw.store, gw.settings, "PO-2", DespatchRequest(), actor="ops")
    [shown] = detail(gw, "PO-2")["lines"]
    assert (shown["despatched"], shown["open"]) == (HAIR, "0")
    assert shown["unbilled"] == "39.75000000000000000000000000001"
    issue(gw, invoice, InvoiceRequest(), ref="PO-2")  # bills every digit of what is unbilled
    [shown] = detail(gw, "PO-2")["lines"]
    assert (shown["invoiced"], shown["unbilled"]) == (HAIR, "0")
    assert detail(gw, "PO-2")["status"] == "Fully invoiced"


def _kept(gw: Gateway) -> tuple[int, int, int]:
    with gw.store.session() as session:
        return tuple(  # type: ignore[return-value]
            len(session.scalars(select(table.id)).all())
            for table in (DocumentRow, OutboxRow, HistoryEvent)
        )


@pytest.mark.parametrize(
    ("shipped", "request_line"),
    [
        (TINY, "9" * 43),  # each fits: their sum does not (the recompute refuses it)
        (None, "0." + "0" * 50 + "1"),  # the quantity typed: PostgreSQL refused it uncoded
    ],
)
def test_an_operator_document_too_long_for_the_store_is_refused_coded_and_keeps_nothing(
    gw: Gateway, shipped: str | None, request_line: str
) -> None:
    receive(gw, f.order("PO-2", f.items(1, BIG)))
    if shipped:
        receive(gw, f.despatch_advice("D-1", "PO-2", [("1", shipped)]))
    before, status = _kept(gw), detail(gw, "PO-2")["status"]
    with pytest.raises(GatewayError) as refused:
        request = DespatchRequest((("1", Decimal(request_line)),))
        despatch(gw.store, gw.settings, "PO-2", request, actor="ops")
    assert refused.value.code is ErrorCode.VALUE_TOO_LONG
    assert (_kept(gw), detail(gw, "PO-2")["status"]) == (before, status)
    assert line(gw)["despatched"] == "0"
