"""The Order Change rules, pure (domain/order_change.py, ADR 0025)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from edi_gateway.domain.documents import Line, Quantity
from edi_gateway.domain.order_change import (
    ChangeRefused,
    CurrentLine,
    LineAction,
    SequenceRefused,
    check_sequence,
    convert,
    plan,
)

D = Decimal


@pytest.mark.parametrize(
    ("value", "unit", "to", "expected"),
    [
        (D("1500"), "GRM", "KGM", D("1.5")),
        (D("2"), "TNE", "KGM", D("2000")),
        (D("5"), "DZN", "H87", D("60")),
        # exact past the default context's 28 digits (it gave 60)
        (
            D("5.000000000000000000000000000001"),
            "DZN",
            "H87",
            D("60.000000000000000000000000000012"),
        ),
        (D("1"), "GRO", "DZN", D("12")),
        (D("250"), "CMT", "MTR", D("2.5")),
        (D("3"), "C62", "NAR", D("3")),
        (D("7"), None, "KGM", D("7")),
        (D("7"), "KGM", "KGM", D("7")),
        (D("1"), "KGM", "LTR", None),  # mass is no volume
        (D("1"), "XBX", "H87", None),  # a box holds an unknown count
    ],
)
def test_convert(value: Decimal, unit: str | None, to: str, expected: Decimal | None) -> None:
    assert convert(value, unit, to) == expected


def line(line_id: str, code: str | None, quantity: str | None = "5", unit: str = "NAR") -> Line:
    return Line(
        line_id=line_id,
        quantity=None if quantity is None else Quantity(D(quantity), unit),
        status_code=code,
        item_name=f"Item {line_id}",
    )


CURRENT = {
    "1": CurrentLine("1", D(10), "NAR", despatched=D(4)),
    "2": CurrentLine("2", D(50), "NAR"),
    "3": CurrentLine("3", D(0), "NAR", deleted=True),
}


def test_plan_every_action() -> None:
    steps = plan(
        CURRENT,
        [
            line("1", "3", "6"),
            line("2", "2"),
            line("3", "74", "1", "DZN"),
            line("4", "1", "2"),
        ],
    )
    assert [(s.action, s.line_id, s.before, s.after, s.unit) for s in steps] == [
        (LineAction.CHANGED, "1", D(10), D(6), "NAR"),
        (LineAction.DELETED, "2", D(50), D(0), "NAR"),
        (LineAction.REOPENED, "3", D(0), D(12), "NAR"),
        (LineAction.ADDED, "4", None, D(2), "NAR"),
    ]
    assert steps[2].describe() == "line 3 reopened: 12 NAR (given as 1 DZN)"


def test_ubl_line_status_names() -> None:
    steps = plan(
        CURRENT, [line("1", "Revised", "7"), line("2", "Cancelled"), line("3", "NoStatus")]
    )
    assert [(s.action, s.after) for s in steps] == [
        (LineAction.CHANGED, D(7)),
        (LineAction.DELETED, D(0)),
    ]
    with pytest.raises(ChangeRefused, match="line 2 has LineStatusCode 'Disputed'"):
        plan(CURRENT, [line("2", "Disputed")])


def test_no_action_changes_nothing_even_with_another_quantity() -> None:
    assert plan(CURRENT, [line("2", "4", "999")]) == []


@pytest.mark.parametrize(
    ("lines", "why"),
    [
        ([line("1", "3", "3")], "line 1 cannot go down to 3 NAR: 4 have been despatched"),
        ([line("1", "2")], "line 1 cannot be deleted: 4 NAR of it have been despatched"),
        ([line("3", "3")], "line 3 was deleted; reopen it with 74"),
        ([line("3", "2")], "line 3 is deleted already"),
        ([line("2", "3", "-1")], "line 2 has a negative quantity -1"),
        ([line("2", "3", None)], "line 2 has no quantity"),
        ([line("9", "4")], "line 9 (no action) is no line of the order"),
        ([line("2", "5")], "line 2 has LineStatusCode '5'"),
        ([line("5", "1", None)], "line 5 has no quantity"),
    ],
)
def test_plan_refuses(lines: list[Line], why: str) -> None:
    with pytest.raises(ChangeRefused, match=why.replace("(", r"\(").replace(")", r"\)")):
        plan(CURRENT, lines)


def test_plan_names_every_line_it_refuses() -> None:
    with pytest.raises(ChangeRefused) as caught:
        plan(CURRENT, [line("9", "3"), line("2", "3", "1", "KGM"), line("1", "3", "8")])
    message = str(caught.value)
    assert "line 9 is changed (3) but no line of the order" in message
    assert "line 2: the change's unit KGM does not convert" in message
    assert "line 1" not in message


def test_sequence() -> None:
    assert check_sequence(None, [("C-1", "1")]) == "no sequence number: applied in arrival order"
    assert check_sequence("1", []) == "sequence 1, the order's first numbered change"
    assert check_sequence("2", [("C-1", "1")]) == "sequence 2 follows 1 (C-1)"
    assert (
        check_sequence(" 5 ", [("C-1", "1"), ("C-2", "2")])
        == "sequence 5 follows 2 (C-2): 2 missing"
    )
    for bad, why in [
        ("2", "repeats that of change C-2"),
        ("1", "repeats that of change C-1"),
        ("0", "comes after change C-2 with 2 was applied"),
        ("x1", "is not a whole number"),
        ("-3", "is not a whole number"),
        ("12345678901", "at most 10"),
    ]:
        with pytest.raises(SequenceRefused, match=why):
            check_sequence(bad, [("C-1", "1"), ("C-2", "2")])
