"""Peppol advanced ordering end to end: the official scenarios replayed (ADR 0025).

The documents are read from ``../shared/corpus`` (never copied). Every scenario of the 2026.5
artefacts continues order ``Order-1`` of scenario 1: the buyer City Hospital
(0088:7300010000001) orders from The Supplier AB (0088:7302347231110); the gateway sits
between them. Each step asserts the order's status and line quantities.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.domain.documents import OrderResponse, Quantity
from edi_gateway.outbound import bulk
from edi_gateway.outbound.cancel import answer
from edi_gateway.outbound.charges import Charge
from edi_gateway.outbound.forward import flush_all
from edi_gateway.outbound.respond import Decision, LineChange, ResponseRefused, respond
from edi_gateway.store.db import Store
from edi_gateway.store.queries import Filters
from edi_gateway.store.tables import Message, OutboxRow
from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.unit.support import detail, make_settings, receive

BUYER, SUPPLIER = "7300010000001", "7302347231110"
SCENARIOS = "peppol-validation-artefacts/2026.5/examples/Advanced Ordering scenarios"


def corpus(name: str) -> bytes:
    """``sc2/OrderChange_sc2.xml`` -> the bytes of that official example."""
    folder, file = name.split("/")
    path = shared_dir() / "corpus" / SCENARIOS / f"advanced_ordering_{folder}" / file
    return path.read_bytes()


def settings(tmp_path: Path, auto: str = "none", legal: tuple[Any, Any] = (None, None)) -> Settings:
    """The scenarios' buyer and supplier; ``legal``: their legal profiles, to invoice."""
    buyer, supplier = ({"legal": profile} if profile else {} for profile in legal)
    (tmp_path / "out").mkdir(exist_ok=True)
    return Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                {
                    "id": "hospital",
                    "name": "City Hospital",
                    "role": "buyer",
                    "endpoint": {"scheme": "0088", "value": BUYER},
                    "outbound": "to-buyer",
                    "auto_response": auto,
                    **buyer,
                },
                {
                    "id": "supplier",
                    "name": "The Supplier AB",
                    "role": "supplier",
                    "endpoint": {"scheme": "0088", "value": SUPPLIER},
                    **supplier,
                },
            ],
            "connectors": [
                {"name": "to-buyer", "type": "folder", "direction": "out", "path": "out"},
            ],
        },
        context={"base_dir": tmp_path},
    )


@pytest.fixture
def gw(store: Store, tmp_path: Path) -> Gateway:
    return Gateway(settings(tmp_path), store)


def state(gw: Gateway) -> tuple[str, dict[str, tuple[str | None, str | None, str | None]]]:
    """The order's status and, per line, (ordered, confirmed, unit)."""
    found = detail(gw, "Order-1")
    lines = {
        line["line_id"]: (line["ordered"], line["confirmed"], line["unit"])
        for line in found["lines"]
    }
    return found["status"], lines


def events(gw: Gateway, prefix: str) -> list[str]:
    return [
        h["detail"] or "" for h in detail(gw, "Order-1")["history"] if h["event"].startswith(prefix)
    ]


def message(gw: Gateway, message_id: int) -> tuple[str, str | None]:
    with gw.store.session() as session:
        row = session.execute(
            select(Message.state, Message.error_code).where(Message.id == message_id)
        ).one()
        return row.state, row.error_code


def told(gw: Gateway, tmp_path: Path) -> list[tuple[Path, OrderResponse]]:
    """The Order Responses the buyer got (the outbox flushed), oldest first, with their files."""
    flush_all(gw.store, gw.settings)
    out = []
    for path in sorted((tmp_path / "out").iterdir()):
        document = interpret(etree.fromstring(path.read_bytes()))
        assert isinstance(document, OrderResponse)
        out.append((path, document))
    return out


def ubl_check(*paths: Path) -> None:
    tool = shared_dir() / "tools" / "ubl-check"
    done = subprocess.run(
        [sys.executable, str(tool), *map(str, paths)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_sc1_order_response_change(gw: Gateway) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    assert state(gw) == ("Received", {"1": ("10", None, "NAR"), "2": ("50", None, "NAR")})
    receive(gw, corpus("sc1/OrderResponse_sc1.xml"))  # CA: line 1 reduced to 5
    status, lines = state(gw)
    assert status == "Accepted with changes"
    assert lines["1"] == ("10", "5", "NAR")
    receive(gw, corpus("sc1/OrderChange_sc1.xml"))  # the buyer accepts: line 1 changed to 5
    status, lines = state(gw)
    assert lines == {"1": ("5", "5", "NAR"), "2": ("50", "50", "NAR")}
    assert events(gw, "line.") == [
        # the CA "added Sellers item identification": kept for the items named without one
        "line 1: the seller's item ID SN-1, from OrderResponse Response-1",
        "line 2: the seller's item ID SN-2, from OrderResponse Response-1",
        "line 1 quantity changed from 10 to 5 NAR by order change Change-1",
        "line 2 changed, quantity 50 NAR as before by order change Change-1",
    ]
    assert events(gw, "order_change.") == [
        "order change Change-1 (sequence 1, the order's first numbered change): 2 line actions"
    ]


def test_sc2_change_deletes_line_2(gw: Gateway) -> None:
    for name in ("sc1/Order_sc1.xml", "sc1/OrderResponse_sc1.xml", "sc1/OrderChange_sc1.xml"):
        receive(gw, corpus(name))
    receive(gw, corpus("sc2/OrderChange_sc2.xml"))  # line 1 no action, line 2 deleted (2)
    status, lines = state(gw)
    assert lines["1"] == ("5", "5", "NAR")
    # the CA accepted line 2 as ordered (5, no quantity): its confirmation follows the order
    assert lines["2"] == ("0", "0", "NAR")
    assert events(gw, "line.deleted") == [
        "line 2 deleted (was 50 NAR) by order change Change-2; the 50 the supplier confirmed "
        "no longer count"
    ]
    assert detail(gw, "Order-1")["lines"][1]["deleted"] is True
    assert detail(gw, "Order-1")["lines"][0]["deleted"] is False
    # The supplier's T116 accepting the change uses cac:OrderChangeDocumentReference (UBL 2.2
    # only): refused as XSD_INVALID, the order stays as the change left it (ADR 0002, 0025).
    refused = receive(gw, corpus("sc2/OrderResponse_sc2.xml"))
    assert message(gw, refused) == ("failed", "XSD_INVALID")
    assert state(gw) == (status, lines)


def test_sc3_change_with_a_repeated_sequence_is_refused(gw: Gateway) -> None:
    for name in ("sc1/Order_sc1.xml", "sc1/OrderResponse_sc1.xml", "sc1/OrderChange_sc1.xml"):
        receive(gw, corpus(name))
    receive(gw, corpus("sc2/OrderChange_sc2.xml"))  # sequence 2
    before = state(gw)
    late = receive(gw, corpus("sc3/OrderChange_sc3.xml"))  # sequence 2 again
    assert message(gw, late) == ("failed", "CHANGE_OUT_OF_SEQUENCE")
    assert state(gw) == before


def test_sc3_response_then_change(gw: Gateway) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    receive(gw, corpus("sc3/OrderResponse_sc3.xml"))  # CA: new delivery period for line 1
    status, lines = state(gw)
    assert status == "Accepted with changes"
    assert lines == {"1": ("10", "10", "NAR"), "2": ("50", "50", "NAR")}
    receive(gw, corpus("sc3/OrderChange_sc3.xml"))  # sequence 2 after none: a gap, applied
    status, lines = state(gw)
    # a CA line without a quantity confirms what is ordered (ledger, ADR 0003)
    assert lines == {"1": ("5", "5", "NAR"), "2": ("50", "50", "NAR")}
    assert events(gw, "order_change.") == [
        "order change Change-3 (sequence 2, the order's first numbered change): 2 line actions"
    ]


@pytest.mark.parametrize(
    ("folder", "code", "status", "outcome"),
    [("sc4", "AP", "Cancelled", "accepted"), ("sc5", "RE", "Accepted with changes", "refused")],
)
def test_cancellation_answered_by_the_supplier(
    gw: Gateway, tmp_path: Path, folder: str, code: str, status: str, outcome: str
) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    receive(gw, corpus("sc1/OrderResponse_sc1.xml"))  # CA: the order is confirmed
    receive(gw, corpus(f"{folder}/OrderCancellation_{folder}.xml"))
    found = detail(gw, "Order-1")
    assert found["pending_cancellation"] is not None
    assert found["status"] == "Accepted with changes"
    receive(gw, corpus(f"{folder}/OrderResponse_{folder}.xml"))
    found = detail(gw, "Order-1")
    assert found["status"] == status
    assert {d["state"] for d in found["documents"] if d["type"] == "OrderCancellation"} == {outcome}
    _, lines = state(gw)
    assert lines["1"] == ("10", "5", "NAR")
    # The buyer is told with a T116 answering its cancellation: AP accepted, RE refused.
    [(path, response)] = told(gw, tmp_path)
    assert response.response_code == code
    assert response.customization_id == "urn:fdc:peppol.eu:poacc:trns:order_response_advanced:3"
    assert response.profile_id == "urn:fdc:peppol.eu:poacc:bis:advanced_ordering:3"
    assert response.lines == []
    assert any("Cancellation-1" in note for note in response.notes)
    ubl_check(path)


def test_sc1_cancellation_of_an_unconfirmed_order_is_accepted_at_once(
    gw: Gateway, tmp_path: Path
) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    receive(gw, corpus("sc1/OrderCancellation_sc1.xml"))
    assert state(gw)[0] == "Cancelled"
    [(path, response)] = told(gw, tmp_path)
    assert response.response_code == "AP"
    assert response.customization_id == "urn:fdc:peppol.eu:poacc:trns:order_response_advanced:3"
    ubl_check(path)


def test_respond_to_an_advanced_order_is_a_t116(gw: Gateway, tmp_path: Path) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    decision = Decision(
        "CA",
        changes=(LineChange("1", Decimal(4), date(2022, 3, 1)),),
        substitutes=(("2", "SN-22", "Item 2, new model"),),
        charges=(Charge("freight", Decimal("12.50")),),
    )
    issued = respond(gw.store, gw.settings, "Order-1", decision, actor="ops")
    assert issued.status == "Accepted with changes"
    [(path, response)] = told(gw, tmp_path)
    assert response.customization_id == "urn:fdc:peppol.eu:poacc:trns:order_response_advanced:3"
    assert response.profile_id == "urn:fdc:peppol.eu:poacc:bis:advanced_ordering:3"
    assert [(line.line_id, line.status_code) for line in response.lines] == [
        ("1", "3"),
        ("2", "3"),
        ("3", "1"),
    ]
    ubl_check(path)
    _, lines = state(gw)
    assert lines == {"1": ("10", "4", "NAR"), "2": ("50", "50", "NAR")}


def test_respond_answers_the_latest_change_with_a_t116(gw: Gateway, tmp_path: Path) -> None:
    for name in ("sc1/Order_sc1.xml", "sc1/OrderResponse_sc1.xml", "sc1/OrderChange_sc1.xml"):
        receive(gw, corpus(name))
    receive(gw, corpus("sc2/OrderChange_sc2.xml"))
    with pytest.raises(ResponseRefused, match="line 2 was deleted by the buyer"):
        respond(
            gw.store,
            gw.settings,
            "Order-1",
            Decision("CA", changes=(LineChange("2", Decimal(3)),)),
            actor="ops",
        )
    respond(gw.store, gw.settings, "Order-1", Decision("AP"), actor="ops")
    [(path, response)] = told(gw, tmp_path)
    assert response.response_code == "AP" and response.lines == []
    assert response.notes == ["Answers order change Change-2"]
    assert response.customization_id == "urn:fdc:peppol.eu:poacc:trns:order_response_advanced:3"
    ubl_check(path)
    status, lines = state(gw)
    assert status == "Accepted"
    assert lines == {"1": ("5", "5", "NAR"), "2": ("0", "0", "NAR")}
    # a second response answers no change any more
    respond(gw.store, gw.settings, "Order-1", Decision("AB"), actor="ops")
    assert told(gw, tmp_path)[1][1].notes == []


def test_bulk_respond_keeps_the_deleted_lines_and_the_change_it_answers(
    gw: Gateway, tmp_path: Path
) -> None:
    """In bulk the order's lines and deleted lines are read for the whole batch at once: the
    same refusal and the same response as the single-order command above."""
    for name in ("sc1/Order_sc1.xml", "sc1/OrderResponse_sc1.xml", "sc1/OrderChange_sc1.xml"):
        receive(gw, corpus(name))
    receive(gw, corpus("sc2/OrderChange_sc2.xml"))
    [order_id] = bulk.filtered(gw.store, Filters())
    change = Decision("CA", changes=(LineChange("2", Decimal(3)),))
    [refused] = bulk.run(
        gw.store, gw.settings, "respond", [bulk.Item(order_id, change)], actor="ops"
    )
    assert (refused.state, refused.code) == ("refused", "NOT_ALLOWED")
    assert "line 2 was deleted by the buyer" in (refused.message or "")
    [issued] = bulk.run(
        gw.store, gw.settings, "respond", [bulk.Item(order_id, Decision("AP"))], actor="ops"
    )
    assert (issued.state, issued.status) == ("issued", "Accepted")
    [(path, response)] = told(gw, tmp_path)
    assert response.notes == ["Answers order change Change-2"]
    ubl_check(path)
    assert state(gw) == ("Accepted", {"1": ("5", "5", "NAR"), "2": ("0", "0", "NAR")})


def test_respond_to_a_basic_order_stays_a_t76(store: Store, tmp_path: Path) -> None:
    gw = Gateway(make_settings(tmp_path), store)
    receive(gw, f.order("PO-1", f.items(2)))
    respond(gw.store, gw.settings, "PO-1", Decision("AP"), actor="ops")
    [(path, response)] = told(gw, tmp_path)
    assert response.customization_id == "urn:fdc:peppol.eu:poacc:trns:order_response:3"
    assert response.profile_id == "urn:fdc:peppol.eu:poacc:bis:ordering:3"
    ubl_check(path)


def changed(change: bytes, old: str, new: str) -> bytes:
    assert old.encode() in change, old
    return change.replace(old.encode(), new.encode())


@pytest.fixture
def ordered(gw: Gateway) -> Gateway:
    """Order-1 (10 + 50 NAR) confirmed by the supplier's CA, accepted by Change-1 (seq 1)."""
    for name in ("sc1/Order_sc1.xml", "sc1/OrderResponse_sc1.xml", "sc1/OrderChange_sc1.xml"):
        receive(gw, corpus(name))
    return gw


def test_change_in_another_unit_is_converted(ordered: Gateway) -> None:
    change = corpus("sc2/OrderChange_sc2.xml")
    change = changed(
        change,
        "<cbc:LineStatusCode>2</cbc:LineStatusCode>",
        "<cbc:LineStatusCode>3</cbc:LineStatusCode>",
    )
    change = changed(
        change,
        '<cbc:Quantity unitCode="NAR">50</cbc:Quantity>',
        '<cbc:Quantity unitCode="DZN">5</cbc:Quantity>',
    )
    receive(ordered, change)
    _, lines = state(ordered)
    assert lines["2"][0] == "60"
    assert events(ordered, "line.changed")[-1] == (
        "line 2 quantity changed from 50 to 60 NAR (given as 5 DZN) by order change Change-2"
    )


def test_a_conversion_keeps_every_digit_the_column_holds(ordered: Gateway) -> None:
    """5.000000000000000000000000000001 DZN is 60.000000000000000000000000000012 NAR: the
    default context's 28 digits made it an ordered 60 (the extra part was never ordered)."""
    dozens = "5.000000000000000000000000000001"
    change = changed(
        corpus("sc2/OrderChange_sc2.xml"),
        '2</cbc:LineStatusCode>\n      <cbc:Quantity unitCode="NAR">50',
        f'3</cbc:LineStatusCode>\n      <cbc:Quantity unitCode="DZN">{dozens}',
    )
    receive(ordered, change)
    assert state(ordered)[1]["2"][0] == "60.000000000000000000000000000012"


@pytest.mark.parametrize(
    ("old", "new", "code", "why"),
    [
        (  # 10**47 gross is 1.44 * 10**49 pieces: 50 digits, more than the 48 kept
            '2</cbc:LineStatusCode>\n      <cbc:Quantity unitCode="NAR">50',
            '3</cbc:LineStatusCode>\n      <cbc:Quantity unitCode="GRO">1' + "0" * 47,
            "VALUE_TOO_LONG",
            "order change Change-2 line 2: the quantity converted to its unit is 50 characters",
        ),
        (
            '2</cbc:LineStatusCode>\n      <cbc:Quantity unitCode="NAR">50',
            '3</cbc:LineStatusCode>\n      <cbc:Quantity unitCode="KGM">50',
            "ORDER_CHANGE_REFUSED",
            "the change's unit KGM does not convert to the order line's unit NAR",
        ),
        (
            "<cbc:ID>2</cbc:ID>\n      <cbc:LineStatusCode>2",
            "<cbc:ID>9</cbc:ID>\n      <cbc:LineStatusCode>2",
            "ORDER_CHANGE_REFUSED",
            "line 9 is deleted (2) but no line of the order",
        ),
        (
            "<cbc:LineStatusCode>2</cbc:LineStatusCode>",
            "<cbc:LineStatusCode>1</cbc:LineStatusCode>",
            "ORDER_CHANGE_REFUSED",
            "line 2 is added (1) but the order has it already",
        ),
        (
            "<cbc:LineStatusCode>2</cbc:LineStatusCode>",
            "<cbc:LineStatusCode>74</cbc:LineStatusCode>",
            "ORDER_CHANGE_REFUSED",
            "line 2 is reopened (74) but it was not deleted",
        ),
        (
            "<cbc:LineStatusCode>2</cbc:LineStatusCode>",
            "",
            "ORDER_CHANGE_REFUSED",
            "line 2 has no LineStatusCode",
        ),
        (
            "<cbc:SequenceNumberID>2</cbc:SequenceNumberID>",
            "<cbc:SequenceNumberID>1</cbc:SequenceNumberID>",
            "CHANGE_OUT_OF_SEQUENCE",
            "sequence number 1 repeats that of change Change-1",
        ),
        (
            "<cbc:SequenceNumberID>2</cbc:SequenceNumberID>",
            "<cbc:SequenceNumberID>0</cbc:SequenceNumberID>",
            "CHANGE_OUT_OF_SEQUENCE",
            "sequence number 0 comes after change Change-1 with 1 was applied",
        ),
        (
            "<cbc:SequenceNumberID>2</cbc:SequenceNumberID>",
            "<cbc:SequenceNumberID>2b</cbc:SequenceNumberID>",
            "CHANGE_OUT_OF_SEQUENCE",
            "sequence number '2b' is not a whole number",
        ),
    ],
)
def test_a_change_that_cannot_apply_is_refused_whole(
    ordered: Gateway, old: str, new: str, code: str, why: str
) -> None:
    before = state(ordered)
    history = len(detail(ordered, "Order-1")["history"])
    failed = receive(ordered, changed(corpus("sc2/OrderChange_sc2.xml"), old, new))
    assert message(ordered, failed) == ("failed", code)
    with ordered.store.session() as session:
        error = session.scalar(select(Message.error_detail).where(Message.id == failed))
    assert why in (error or "")
    assert state(ordered) == before
    assert len(detail(ordered, "Order-1")["history"]) == history


def test_deleted_line_reopened_and_line_added(ordered: Gateway) -> None:
    receive(ordered, corpus("sc2/OrderChange_sc2.xml"))
    reopen = changed(
        corpus("sc2/OrderChange_sc2.xml"),
        "<cbc:LineStatusCode>2</cbc:LineStatusCode>",
        "<cbc:LineStatusCode>74</cbc:LineStatusCode>",
    )
    reopen = changed(
        reopen,
        "<cbc:SequenceNumberID>2</cbc:SequenceNumberID>",
        "<cbc:SequenceNumberID>3</cbc:SequenceNumberID>",
    )
    reopen = changed(reopen, "<cbc:ID>Change-2</cbc:ID>", "<cbc:ID>Change-3b</cbc:ID>")
    reopen = changed(
        reopen,
        '<cbc:Quantity unitCode="NAR">50</cbc:Quantity>',
        '<cbc:Quantity unitCode="NAR">20</cbc:Quantity>',
    )
    reopen = changed(
        reopen,
        "<cbc:ID>1</cbc:ID>\n      <cbc:LineStatusCode>4",
        "<cbc:ID>3</cbc:ID>\n      <cbc:LineStatusCode>1",
    )
    receive(ordered, reopen)
    found = detail(ordered, "Order-1")
    lines = {line["line_id"]: (line["ordered"], line["deleted"]) for line in found["lines"]}
    assert lines == {"1": ("5", False), "2": ("20", False), "3": ("5", False)}
    assert events(ordered, "line.")[-2:] == [
        "line 3 added: 5 NAR Item 1 by order change Change-3b",
        "line 2 reopened: 20 NAR by order change Change-3b",
    ]


def test_cancelled_order_is_not_changed(gw: Gateway) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    receive(gw, corpus("sc1/OrderCancellation_sc1.xml"))
    failed = receive(gw, corpus("sc1/OrderChange_sc1.xml"))
    assert message(gw, failed) == ("failed", "ORDER_CHANGE_REFUSED")


def test_sc3_cancellation_of_a_confirmed_order_answered_by_the_operator(
    gw: Gateway, tmp_path: Path
) -> None:
    receive(gw, corpus("sc1/Order_sc1.xml"))
    receive(gw, corpus("sc3/OrderResponse_sc3.xml"))  # CA: the order is confirmed
    receive(gw, corpus("sc3/OrderCancellation_sc3.xml"))  # the buyer cancels instead
    assert detail(gw, "Order-1")["pending_cancellation"] is not None
    assert state(gw)[0] == "Accepted with changes"
    done = answer(gw.store, gw.settings, "Order-1", accepted=True, reason=None, actor="ops")
    assert done.status == "Cancelled"
    [(path, response)] = told(gw, tmp_path)
    assert response.response_code == "AP"
    assert response.notes == ["Order cancelled as requested by cancellation Cancellation-1"]
    ubl_check(path)


def test_orders_show_marks_the_deleted_line(ordered: Gateway) -> None:
    from edi_gateway import views

    receive(ordered, corpus("sc2/OrderChange_sc2.xml"))
    text = views.order_text(detail(ordered, "Order-1"))
    [header] = [row for row in text.splitlines() if "STATUS_CODE" in row]
    assert header.split()[-1] == "DELETED"
    [line_2] = [row for row in text.splitlines() if row.split()[:2] == ["2", "Item"]]
    assert line_2.split()[-1] == "True" and line_2.split()[4] == "0"  # ordered 0


def sc2_response(code: str, note: str) -> bytes:
    """OrderResponse_sc2 as UBL 2.1 allows it: without cac:OrderChangeDocumentReference."""
    data = corpus("sc2/OrderResponse_sc2.xml")
    data = changed(
        data,
        "<cac:OrderChangeDocumentReference>\n    <cbc:ID>Change-2</cbc:ID>\n"
        "  </cac:OrderChangeDocumentReference>\n",
        "",
    )
    data = changed(data, "<cbc:OrderResponseCode>AP<", f"<cbc:OrderResponseCode>{code}<")
    return changed(data, "<cbc:Note>Change is accepted<", f"<cbc:Note>{note}<")


def test_supplier_accepts_the_change(ordered: Gateway, tmp_path: Path) -> None:
    receive(ordered, corpus("sc2/OrderChange_sc2.xml"))
    accepted = sc2_response("AP", "Change is accepted")
    (tmp_path / "response.xml").write_bytes(accepted)
    ubl_check(tmp_path / "response.xml")
    receive(ordered, accepted)
    status, lines = state(ordered)
    assert status == "Accepted"
    assert lines == {"1": ("5", "5", "NAR"), "2": ("0", "0", "NAR")}
    assert events(ordered, "order_change.accepted") == [
        "OrderResponse Response-2 (AP) accepts order change Change-2"
    ]


def test_supplier_refuses_the_change_not_the_order(ordered: Gateway) -> None:
    receive(ordered, corpus("sc2/OrderChange_sc2.xml"))
    receive(ordered, sc2_response("RE", "Line 2 is already packed"))
    found = detail(ordered, "Order-1")
    assert found["status"] == "Accepted with changes"  # as before the change, not Rejected
    states = {d["document_id"]: d["state"] for d in found["documents"]}
    assert (states["Change-2"], states["Response-2"]) == ("refused", "answer")
    _, lines = state(ordered)
    assert lines == {"1": ("5", "5", "NAR"), "2": ("50", "50", "NAR")}
    assert [line["deleted"] for line in found["lines"]] == [False, False]
    assert events(ordered, "order_change.refused") == [
        "OrderResponse Response-2 (RE) refuses order change Change-2: Line 2 is already "
        "packed; the order stands as before that change"
    ]
    # the refused change's sequence number is free again
    again = changed(corpus("sc2/OrderChange_sc2.xml"), "<cbc:ID>Change-2<", "<cbc:ID>Change-2b<")
    receive(ordered, again)
    assert state(ordered)[1]["2"][0] == "0"


def test_auto_acceptance_of_an_advanced_order_is_a_t116(store: Store, tmp_path: Path) -> None:
    gw = Gateway(settings(tmp_path, auto="accept"), store)
    receive(gw, corpus("sc1/Order_sc1.xml"))
    [(path, response)] = told(gw, tmp_path)
    assert (response.response_code, response.customization_id) == (
        "AP",
        "urn:fdc:peppol.eu:poacc:trns:order_response_advanced:3",
    )
    ubl_check(path)
    assert state(gw)[0] == "Accepted"


def test_a_ca_after_a_deletion_lists_the_deleted_line_not_accepted(
    ordered: Gateway, tmp_path: Path
) -> None:
    receive(ordered, corpus("sc2/OrderChange_sc2.xml"))
    decision = Decision("CA", changes=(LineChange("1", Decimal(4)),))
    respond(ordered.store, ordered.settings, "Order-1", decision, actor="ops")
    [(path, response)] = told(ordered, tmp_path)
    assert [(x.line_id, x.status_code, x.quantity) for x in response.lines] == [
        ("1", "3", Quantity(Decimal(4), "NAR")),
        ("2", "7", Quantity(Decimal(0), "NAR")),
    ]
    assert response.notes == ["Answers order change Change-2"]
    ubl_check(path)


def with_seller_ids(document: bytes) -> bytes:
    """The official items have a name only, which no Despatch Advice can name (T16-R003, see
    test_despatch.py): give Item N the seller's ID S-N."""
    for n in (b"1", b"2"):
        name = b"<cbc:Name>Item " + n + b"</cbc:Name>"
        seller = b"<cac:SellersItemIdentification><cbc:ID>S-" + n + b"</cbc:ID>"
        document = document.replace(name, name + seller + b"</cac:SellersItemIdentification>")
    return document


def test_a_line_deleted_after_a_response_confirmed_it_is_not_despatched(
    gw: Gateway, tmp_path: Path
) -> None:
    """The supplier confirms line 2 (40 of 50); sc2's change then deletes it. Despatching "all
    that is open" sends line 1 only; line 2 asked for is refused unless forced (it used to go
    out as the 40 the response confirmed, an over-despatch the gateway then flagged itself).
    Nor does the status count the 40 (ledger: the change took the confirmation back), and the
    response is not flagged as confirming more than the (now 0) ordered."""
    from edi_gateway.outbound.despatch import DespatchRequest, despatch
    from edi_gateway.outbound.issuing import QuantityExceeded

    receive(gw, with_seller_ids(corpus("sc1/Order_sc1.xml")))
    confirm = Decision("CA", changes=(LineChange("2", Decimal(40)),))
    respond(gw.store, gw.settings, "Order-1", confirm, actor="ops")
    receive(gw, corpus("sc2/OrderChange_sc2.xml"))  # line 1 no action, line 2 deleted
    assert state(gw)[1]["2"][:2] == ("0", None)  # deleted: the response's 40 taken back
    despatch(gw.store, gw.settings, "Order-1", DespatchRequest(), actor="ops")
    lines = {line["line_id"]: line for line in detail(gw, "Order-1")["lines"]}
    assert (lines["1"]["despatched"], lines["2"]["despatched"]) == ("10", "0")
    assert detail(gw, "Order-1")["discrepancies"] == []
    assert state(gw)[0] == "Fully delivered"
    asked = DespatchRequest((("2", Decimal(1)),))
    with pytest.raises(QuantityExceeded, match=r"0 open \(deleted by the buyer's change\)"):
        despatch(gw.store, gw.settings, "Order-1", asked, actor="ops")
    flush_all(gw.store, gw.settings)
    sent = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in sent] == [
        "DespatchAdvice-Order-1-DA1.xml",
        "OrderResponse-Order-1-OR1.xml",
    ]
    ubl_check(*sent)


def billed_change(store: Store, tmp_path: Path, old: str, new: str) -> tuple[Gateway, bytes]:
    """A gateway whose buyer and seller have legal profiles, with scenario 1's order; and
    scenario 2's change with ``old`` made ``new`` (not received yet)."""
    from tests.unit.test_invoice import BUYER_LEGAL, SELLER_LEGAL

    gw = Gateway(settings(tmp_path, legal=(BUYER_LEGAL, SELLER_LEGAL)), store)
    receive(gw, with_seller_ids(corpus("sc1/Order_sc1.xml")))
    return gw, changed(with_seller_ids(corpus("sc2/OrderChange_sc2.xml")), old, new)


NS = {"cac": f.NS + "CommonAggregateComponents-2", "cbc": f.NS + "CommonBasicComponents-2"}


def despatched_and_invoiced(gw: Gateway, line_id: str) -> Any:
    """Despatch 5 of Order-1's line ``line_id`` and invoice it: the invoice's root element."""
    from edi_gateway.outbound.despatch import DespatchRequest, despatch
    from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest, invoice

    request = DespatchRequest(((line_id, Decimal(5)),))
    despatch(gw.store, gw.settings, "Order-1", request, actor="ops")
    billed = InvoiceRequest((LineRequest(line_id),))
    issued = invoice(gw.store, gw.settings, "Order-1", billed, actor="ops")
    with gw.store.session() as session:
        [payload] = session.scalars(
            select(OutboxRow.payload).where(OutboxRow.id == issued.outbox_id)
        )
    return etree.fromstring(payload)


def test_a_line_added_by_a_change_is_billed_with_its_own_vat_and_price_basis(
    store: Store, tmp_path: Path
) -> None:
    """The Order's lines are S 20 %; the buyer's change adds line 3 as zero-rated (Z) at 40
    per 5 NAR. The invoice bills line 3 as the change said (Z, 5 x 40 / 5 = 40.00), not with
    the supplier's default VAT per unit (S 25 %, 200.00)."""
    from tests.unit.test_ledger_chain import ubl_check_outbox

    gw, add = billed_change(
        store,
        tmp_path,
        "<cbc:ID>1</cbc:ID>\n      <cbc:LineStatusCode>4",
        "<cbc:ID>3</cbc:ID>\n      <cbc:LineStatusCode>1",
    )
    add = changed(
        add,
        '<cbc:PriceAmount currencyID="EUR">40</cbc:PriceAmount>',
        '<cbc:PriceAmount currencyID="EUR">40</cbc:PriceAmount>'
        '<cbc:BaseQuantity unitCode="NAR">5</cbc:BaseQuantity>',
    )
    add = changed(
        add,
        "<cbc:ID>S</cbc:ID>\n          <cbc:Percent>20",
        "<cbc:ID>Z</cbc:ID>\n          <cbc:Percent>0",
    )
    receive(gw, add)
    line = despatched_and_invoiced(gw, "3").find("cac:InvoiceLine", NS)
    assert line is not None
    tax = "cac:Item/cac:ClassifiedTaxCategory/cbc:"
    paths = ("cbc:LineExtensionAmount", "cac:Price/cbc:BaseQuantity", tax + "ID", tax + "Percent")
    assert [line.findtext(path, namespaces=NS) for path in paths] == ["40.00", "5", "Z", "0"]
    assert ubl_check_outbox(gw, tmp_path) == 2


def billed(store: Store, tmp_path: Path) -> Gateway:
    """Order-1 with the seller's item IDs, line 2 confirmed 40 of 50 by the gateway's CA."""
    from tests.unit.test_invoice import BUYER_LEGAL, SELLER_LEGAL

    gw = Gateway(settings(tmp_path, legal=(BUYER_LEGAL, SELLER_LEGAL)), store)
    receive(gw, with_seller_ids(corpus("sc1/Order_sc1.xml")))
    confirm = Decision("CA", changes=(LineChange("2", Decimal(40)),))
    respond(gw.store, gw.settings, "Order-1", confirm, actor="ops")
    return gw


def edited(document: bytes, *edits: tuple[str, str]) -> bytes:
    """``document`` with each (old, new) of ``edits`` replaced in turn (:func:`changed`)."""
    for old, new in edits:
        document = changed(document, old, new)
    return document


def change_line_2(code: str, quantity: str, sequence: str = "2") -> bytes:
    """sc2's Change-2 with line 2's action ``code`` and ``quantity`` (line 1: no action)."""
    action = '</cbc:LineStatusCode>\n      <cbc:Quantity unitCode="NAR">'
    return edited(
        corpus("sc2/OrderChange_sc2.xml"),
        (f"<cbc:LineStatusCode>2{action}50", f"<cbc:LineStatusCode>{code}{action}{quantity}"),
        ("<cbc:ID>Change-2</cbc:ID>", f"<cbc:ID>Change-{sequence}</cbc:ID>"),
        ("<cbc:SequenceNumberID>2<", f"<cbc:SequenceNumberID>{sequence}<"),
    )


def test_a_line_deleted_after_a_ca_is_out_of_the_status(store: Store, tmp_path: Path) -> None:
    """Line 2 confirmed 40 by a CA, then deleted by the buyer's change: despatching and billing
    the rest makes the order Fully delivered, then Fully invoiced (the 40 kept it Partially
    delivered / invoiced until a new response); nothing is flagged."""
    from edi_gateway.outbound.despatch import DespatchRequest, despatch
    from edi_gateway.outbound.invoice import InvoiceRequest, invoice
    from tests.unit.test_ledger_chain import ubl_check_outbox

    gw = billed(store, tmp_path)
    receive(gw, corpus("sc2/OrderChange_sc2.xml"))  # line 1 no action, line 2 deleted
    assert state(gw) == (
        "Accepted with changes",
        {"1": ("10", "10", "NAR"), "2": ("0", None, "NAR")},
    )
    assert events(gw, "line.deleted") == [
        "line 2 deleted (was 50 NAR) by order change Change-2; the 40 the supplier confirmed "
        "no longer count"
    ]
    despatch(gw.store, gw.settings, "Order-1", DespatchRequest(), actor="ops")
    assert state(gw)[0] == "Fully delivered"
    invoice(gw.store, gw.settings, "Order-1", InvoiceRequest(), actor="ops")
    assert state(gw)[0] == "Fully invoiced"
    assert events(gw, "order.status") == [
        "Received -> Accepted with changes",
        "Accepted with changes -> Fully delivered",
        "Fully delivered -> Fully invoiced",
    ]
    assert detail(gw, "Order-1")["discrepancies"] == []
    assert ubl_check_outbox(gw, tmp_path) == 3


def test_a_change_lowers_a_confirmation_but_never_raises_it(store: Store, tmp_path: Path) -> None:
    """Line 2 confirmed 40: a change to 30 takes the confirmation back (30 expected, the
    order Fully delivered when 30 left); a later change to 45 does not make the seller's 40
    into 45 (more than confirmed waits for the seller's answer): 40 expected again."""
    from edi_gateway.outbound.despatch import DespatchRequest, despatch

    gw = billed(store, tmp_path)
    receive(gw, change_line_2("3", "30"))
    assert state(gw)[1]["2"] == ("30", None, "NAR")
    assert events(gw, "line.changed") == [
        "line 2 quantity changed from 50 to 30 NAR by order change Change-2; the 40 the "
        "supplier confirmed no longer count"
    ]
    despatch(gw.store, gw.settings, "Order-1", DespatchRequest(), actor="ops")
    lines = {line["line_id"]: line for line in detail(gw, "Order-1")["lines"]}
    assert (lines["1"]["despatched"], lines["2"]["despatched"]) == ("10", "30")
    assert state(gw)[0] == "Fully delivered"
    receive(gw, change_line_2("3", "45", sequence="3"))
    assert state(gw) == (
        "Partially delivered",
        {"1": ("10", "10", "NAR"), "2": ("45", "40", "NAR")},
    )
    assert detail(gw, "Order-1")["discrepancies"] == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # AP accepts the change: line 1 confirmed as now ordered, 0
        ("AP", ("Accepted", {"1": ("0", "0", "NAR"), "2": ("50", "50", "NAR")})),
        # RE refuses it: line 1 as before the change, its 5 confirmed by the CA again
        ("RE", ("Accepted with changes", {"1": ("10", "5", "NAR"), "2": ("50", "50", "NAR")})),
    ],
)
def test_the_suppliers_answer_after_a_change_took_a_confirmation_back(
    gw: Gateway, answer: str, expected: tuple[str, dict[str, Any]]
) -> None:
    """sc1's CA confirms line 1 at 5; the buyer's change deletes line 1 (5 no longer count);
    the supplier's answer to the change then decides the line."""
    receive(gw, corpus("sc1/Order_sc1.xml"))
    receive(gw, corpus("sc1/OrderResponse_sc1.xml"))
    swapped = edited(  # line 1 deleted, line 2 no action
        corpus("sc2/OrderChange_sc2.xml"),
        ("<cbc:LineStatusCode>4<", "<cbc:LineStatusCode>2<"),
        (
            "<cbc:ID>2</cbc:ID>\n      <cbc:LineStatusCode>2",
            "<cbc:ID>2</cbc:ID>\n      <cbc:LineStatusCode>4",
        ),
    )
    receive(gw, swapped)
    assert state(gw) == (
        "Accepted with changes",
        {"1": ("0", None, "NAR"), "2": ("50", "50", "NAR")},
    )
    reply = changed(
        corpus("sc5/OrderResponse_sc5.xml"),
        "<cbc:OrderResponseCode>RE<",
        f"<cbc:OrderResponseCode>{answer}<",
    )
    receive(gw, reply)
    assert state(gw) == expected


INVOICEE_A, INVOICEE_B = "7300010000025", "7300010000032"
_SELLER_END = "</cac:SellerSupplierParty>"


def with_invoicee(document: bytes, gln: str) -> bytes:
    """``document`` (an Order or Order Change) naming invoicee ``gln`` in its
    AccountingCustomerParty, with what T01/T114 ask of that party (address, legal entity)."""
    party = (
        "<cac:AccountingCustomerParty><cac:Party>"
        f'<cbc:EndpointID schemeID="0088">{gln}</cbc:EndpointID>'
        f'<cac:PartyIdentification><cbc:ID schemeID="0088">{gln}</cbc:ID>'
        "</cac:PartyIdentification><cac:PostalAddress><cbc:StreetName>Box 12</cbc:StreetName>"
        "<cbc:CityName>Eurocity</cbc:CityName><cbc:PostalZone>11122</cbc:PostalZone>"
        "<cac:Country><cbc:IdentificationCode>SE</cbc:IdentificationCode></cac:Country>"
        "</cac:PostalAddress><cac:PartyLegalEntity>"
        f"<cbc:RegistrationName>Payables {gln}</cbc:RegistrationName></cac:PartyLegalEntity>"
        "</cac:Party></cac:AccountingCustomerParty>"
    )
    return changed(document, _SELLER_END, _SELLER_END + party)


def test_an_order_change_naming_another_invoicee_moves_the_bills_to_it(
    store: Store, tmp_path: Path
) -> None:
    """Order-1 names invoicee A; the buyer's Order Change names B (T114 carries an
    AccountingCustomerParty): the gateway's invoice is addressed to B and passes ubl-check,
    and the supplier's invoice to B finds Order-1 although B is also another order's
    invoicee (it waited as an orphan: the order kept A's keys). The supplier refusing the
    change gives A back."""
    from tests.unit.test_invoice import BUYER_LEGAL, SELLER_LEGAL
    from tests.unit.test_ledger_chain import ubl_check_outbox

    gw = Gateway(settings(tmp_path, legal=(BUYER_LEGAL, SELLER_LEGAL)), store)
    order = with_seller_ids(corpus("sc1/Order_sc1.xml"))
    receive(gw, with_invoicee(order, INVOICEE_A))
    other = changed(with_invoicee(order, INVOICEE_B), "<cbc:ID>Order-1<", "<cbc:ID>Order-2<")
    receive(gw, other)  # B is Order-2's invoicee: a known party, not only Order-1's
    receive(gw, with_invoicee(with_seller_ids(corpus("sc2/OrderChange_sc2.xml")), INVOICEE_B))
    assert events(gw, "order.invoicee_changed") == [
        f"invoicee 0088:{INVOICEE_A} -> 0088:{INVOICEE_B} by order change Change-2"
    ]
    endpoint = "cac:AccountingCustomerParty/cac:Party/cbc:EndpointID"
    assert despatched_and_invoiced(gw, "1").findtext(endpoint, namespaces=NS) == INVOICEE_B
    assert ubl_check_outbox(gw, tmp_path) == 2
    bill = f.invoice("S-1", "Order-1", [("1", "1", "10")], buyer=INVOICEE_B, seller=SUPPLIER)
    assert message(gw, receive(gw, bill)) == ("processed", None)

    receive(gw, sc2_response("RE", "No"))
    assert events(gw, "order.invoicee_changed")[-1] == (
        f"invoicee 0088:{INVOICEE_B} -> 0088:{INVOICEE_A} as the order and the changes in "
        "effect name it"
    )
