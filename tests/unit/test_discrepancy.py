"""The ledger's discrepancy arithmetic (domain/discrepancy.py): the worked examples of
docs/adr/0024, one order line of 40 units, and the hostile cases."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from edi_gateway.domain.discrepancy import (
    CONFIRMED,
    CREDITED,
    DESPATCHED,
    INVOICED,
    RECEIVED,
    LineBounds,
    Move,
    find,
)

LINE = 1
FORTY = {LINE: LineBounds("1", D(40), D(40))}


def moves(*steps: tuple[str, str]) -> list[Move]:
    """One document per step: (what, quantity) on line 1."""
    return [
        Move(n, f"doc {n}", LINE, what, D(quantity))
        for n, (what, quantity) in enumerate(steps, start=1)
    ]


def kinds(steps: list[Move], lines: dict[int, LineBounds] = FORTY) -> list[tuple[int, str]]:
    return [(found.document, found.kind) for found in find(steps, lines)]


def test_partial_deliveries_are_no_discrepancy() -> None:
    steps = moves((DESPATCHED, "15"), (INVOICED, "15"), (DESPATCHED, "25"), (INVOICED, "25"))
    assert kinds(steps) == []


def test_return_credited_is_no_discrepancy() -> None:
    steps = moves((DESPATCHED, "40"), (INVOICED, "40"), (RECEIVED, "40"), (CREDITED, "5"))
    assert kinds(steps) == []


def test_credit_then_reinvoice_is_no_discrepancy() -> None:
    steps = moves((DESPATCHED, "40"), (INVOICED, "40"), (CREDITED, "40"), (INVOICED, "40"))
    assert kinds(steps) == []


def test_the_issue_example_invoice_credit_despatch_invoice() -> None:
    steps = moves(
        (DESPATCHED, "20"), (INVOICED, "20"), (CREDITED, "5"), (DESPATCHED, "20"), (INVOICED, "20")
    )
    assert kinds(steps) == []


def test_over_delivery_flags_the_despatch_not_the_invoice_of_it() -> None:
    steps = moves((DESPATCHED, "45"), (INVOICED, "45"))
    [found] = find(steps, FORTY)
    assert (found.document, found.kind, found.quantity, found.bound) == (
        1,
        "over_despatched",
        D(45),
        D(40),
    )
    assert found.detail == "doc 1 line 1: despatched 45, more than 40 ordered or confirmed"


def test_a_second_invoice_for_the_same_lines() -> None:
    steps = moves((DESPATCHED, "40"), (INVOICED, "40"), (INVOICED, "40"))
    [found] = find(steps, FORTY)
    assert (found.document, found.kind, found.quantity, found.bound) == (
        3,
        "over_invoiced",
        D(80),
        D(40),
    )
    # crediting the duplicate settles the ledger; the discrepancy was the second invoice's
    credited = [*steps, Move(4, "doc 4", LINE, CREDITED, D(40))]
    assert kinds(credited) == [(3, "over_invoiced")]


def test_invoice_before_its_despatch_advice_is_judged_on_the_whole_order() -> None:
    assert kinds(moves((INVOICED, "40"), (DESPATCHED, "40"))) == []
    assert kinds(moves((INVOICED, "45"), (DESPATCHED, "45"))) == [(2, "over_despatched")]


def test_credit_beyond_invoiced() -> None:
    steps = moves((DESPATCHED, "40"), (INVOICED, "40"), (CREDITED, "30"), (CREDITED, "20"))
    [found] = find(steps, FORTY)
    assert (found.document, found.kind, found.quantity, found.bound) == (
        4,
        "over_credited",
        D(50),
        D(40),
    )


def test_confirmation_beyond_ordered_and_a_later_smaller_one() -> None:
    steps = moves((CONFIRMED, "50"), (CONFIRMED, "30"))
    lines = {LINE: LineBounds("1", D(40), D(30))}
    assert kinds(steps, lines) == [(1, "over_confirmed")]  # each response on its own


def test_despatch_beyond_a_reduced_confirmation() -> None:
    lines = {LINE: LineBounds("1", D(40), D(30))}
    assert kinds(moves((DESPATCHED, "20"), (DESPATCHED, "20")), lines) == [(2, "over_despatched")]


def test_received_beyond_despatched() -> None:
    assert kinds(moves((DESPATCHED, "40"), (RECEIVED, "41"))) == [(2, "over_received")]


@pytest.mark.parametrize("what", [DESPATCHED, INVOICED, CREDITED, RECEIVED, CONFIRMED])
def test_negative_quantities_are_flagged(what: str) -> None:
    [found] = find(moves((what, "-5")), FORTY)
    assert (found.kind, found.quantity, found.bound) == ("negative", D(-5), D(0))
    assert found.detail == f"doc 1 line 1: {what} quantity -5 is below 0"


def test_each_document_past_the_bound_is_flagged_and_lines_of_one_document_add_up() -> None:
    steps = [
        Move(1, "DA-1", LINE, DESPATCHED, D(30)),
        Move(1, "DA-1", LINE, DESPATCHED, D(15)),  # two lines of one advice: 45
        Move(2, "DA-2", LINE, DESPATCHED, D(1)),
    ]
    found = find(steps, FORTY)
    assert [(f.document, f.quantity) for f in found] == [(1, D(45)), (2, D(46))]


def test_a_line_of_another_order_or_unknown_is_ignored() -> None:
    assert find([Move(1, "DA-1", 99, DESPATCHED, D(100))], FORTY) == []


def test_the_ledger_sums_under_the_names_the_rules_judge() -> None:
    from edi_gateway.domain.discrepancy import MOVES
    from edi_gateway.pipeline.ledger import SUMMED

    assert set(SUMMED.values()) == set(MOVES) - {CONFIRMED}


def test_the_official_despatch_use_case_2_backorders_and_oversupply() -> None:
    """Peppol T16 use case 2 (10 ordered on each line): 4 and 3 outstanding follow later,
    line 5 is an oversupply of 12. Read as the gateway reads it, judged as the ledger does."""
    from lxml import etree

    from edi_gateway.domain.status import LineQuantities, OrderStatus, derive_status
    from edi_gateway.ubl.read import interpret
    from tests.conftest import shared_dir

    examples = shared_dir() / "corpus/peppol-validation-artefacts/2026.5/examples"
    advice = interpret(
        etree.parse(
            examples / "Despatch Advice use cases/DespatchAdvice-BIS3_UseCase2.xml"
        ).getroot()
    )
    read = {
        ln.order_line_ref: (
            ln.quantity and ln.quantity.value,
            ln.backorder_quantity and ln.backorder_quantity.value,
        )
        for ln in advice.lines
    }
    assert read["1"] == (D(10), None) and read["2"] == (D(6), D(4))
    assert read["3"] == (D(6), D(0)) and read["4"] == (D(6), D(3)) and read["5"] == (D(12), None)
    bounds = {n: LineBounds(str(n), D(10), D(10)) for n in range(1, 6)}
    steps = [Move(1, "DA", int(ref), DESPATCHED, qty) for ref, (qty, _) in read.items() if qty]
    assert [(f.line, f.kind, f.quantity) for f in find(steps, bounds)] == [
        (5, "over_despatched", D(12))
    ]
    lines = [
        LineQuantities(ordered=D(10), despatched=qty or D(0), backordered=later or D(0))
        for qty, later in read.values()
    ]
    assert derive_status(lines, response_code="AP") is OrderStatus.PARTIALLY_BACKORDERED


def test_the_official_despatch_use_case_5_tracking() -> None:
    from lxml import etree

    from edi_gateway.domain.documents import DespatchAdvice
    from edi_gateway.ubl.read import interpret
    from tests.conftest import shared_dir

    examples = shared_dir() / "corpus/peppol-validation-artefacts/2026.5/examples"
    advice = interpret(
        etree.parse(
            examples / "Despatch Advice use cases/DespatchAdvice-BIS3_UseCase5.xml"
        ).getroot()
    )
    assert isinstance(advice, DespatchAdvice)
    assert (advice.tracking_id, advice.tracking_url) == ("1178298510DK", None)
