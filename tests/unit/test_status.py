"""The order status rules: derived from quantities and responses, never typed in."""

from decimal import Decimal as D

import pytest

from edi_gateway.domain.status import LineQuantities, OrderStatus, derive_status


def line(ordered: str = "10", **kw: str | None) -> LineQuantities:
    values = {k: (D(v) if v is not None else None) for k, v in kw.items()}
    return LineQuantities(ordered=D(ordered), **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lines", "code", "cancelled", "expected"),
    [
        ([line()], None, False, OrderStatus.RECEIVED),
        ([line()], "AB", False, OrderStatus.ACKNOWLEDGED),
        ([line()], "AP", False, OrderStatus.ACCEPTED),
        ([line(confirmed="8")], "CA", False, OrderStatus.ACCEPTED_WITH_CHANGES),
        ([line()], "RE", False, OrderStatus.REJECTED),
        ([line(despatched="4")], "AP", False, OrderStatus.PARTIALLY_DELIVERED),
        ([line(despatched="10")], "AP", False, OrderStatus.FULLY_DELIVERED),
        # a confirmed reduction makes a smaller delivery complete
        ([line(confirmed="6", despatched="6")], "CA", False, OrderStatus.FULLY_DELIVERED),
        # a line the supplier did not accept does not hold the order back
        ([line(despatched="10"), line(confirmed="0")], "CA", False, OrderStatus.FULLY_DELIVERED),
        ([line(despatched="10", invoiced="5")], "AP", False, OrderStatus.PARTIALLY_INVOICED),
        ([line(despatched="10", invoiced="10")], "AP", False, OrderStatus.FULLY_INVOICED),
        # a credit settles what it credits: billing is not reopened (ADR 0024)
        (
            [line(despatched="10", invoiced="10", credited="2")],
            "AP",
            False,
            OrderStatus.FULLY_INVOICED,
        ),
        (
            [line(despatched="10", invoiced="10", received="10")],
            "AP",
            False,
            OrderStatus.CLOSED,
        ),
        ([line(despatched="10")], "AP", True, OrderStatus.CANCELLED),
        ([line(despatched="3"), line(ordered="5")], None, False, OrderStatus.PARTIALLY_DELIVERED),
    ],
)
def test_derive_status(
    lines: list[LineQuantities], code: str | None, cancelled: bool, expected: OrderStatus
) -> None:
    assert derive_status(lines, response_code=code, cancelled=cancelled) is expected


def test_effective_quantity_prefers_confirmation() -> None:
    assert line("10", confirmed="7").effective == D("7")
    assert line("10").effective == D("10")
    assert line("10", invoiced="5", credited="2").net_invoiced == D("3")


@pytest.mark.parametrize(
    ("lines", "code", "tracked", "expected"),
    [
        # the supplier says everything follows later: nothing has left yet
        ([line(backordered="10")], "AP", False, OrderStatus.BACKORDERED),
        ([line(backordered="4"), line()], "AP", False, OrderStatus.BACKORDERED),
        # part left, the rest follows later
        ([line(despatched="6", backordered="4")], "AP", False, OrderStatus.PARTIALLY_BACKORDERED),
        # part left, nothing announced for the rest
        ([line(despatched="6")], "AP", False, OrderStatus.PARTIALLY_DELIVERED),
        # all left with track & trace: Shipped until received in full
        ([line(despatched="10")], "AP", True, OrderStatus.SHIPPED),
        ([line(despatched="10", received="4")], "AP", True, OrderStatus.SHIPPED),
        ([line(despatched="10", received="10")], "AP", True, OrderStatus.FULLY_DELIVERED),
        ([line(despatched="10")], "AP", False, OrderStatus.FULLY_DELIVERED),
        # tracking on a partial despatch does not make the order shipped
        ([line(despatched="6")], "AP", True, OrderStatus.PARTIALLY_DELIVERED),
        # invoicing outranks delivery
        ([line(despatched="10", invoiced="10")], "AP", True, OrderStatus.FULLY_INVOICED),
        # a CA that refuses every line is a rejection; one that keeps a line is not
        ([line(confirmed="0"), line(confirmed="0")], "CA", False, OrderStatus.REJECTED),
        (
            [line(confirmed="0"), line(confirmed="2")],
            "CA",
            False,
            OrderStatus.ACCEPTED_WITH_CHANGES,
        ),
        # the buyer deleted every line after the CA (its confirmations taken back): the
        # supplier refused nothing
        ([line("0"), line("0")], "CA", False, OrderStatus.ACCEPTED_WITH_CHANGES),
        # a credit does not reopen billing: each unit is billed once
        (
            [line(despatched="10", invoiced="10", credited="10")],
            "AP",
            False,
            OrderStatus.FULLY_INVOICED,
        ),
        (
            [line(despatched="10", invoiced="6", credited="1")],
            "AP",
            False,
            OrderStatus.PARTIALLY_INVOICED,
        ),
    ],
)
def test_backorders_track_and_trace_and_refusals(
    lines: list[LineQuantities], code: str | None, tracked: bool, expected: OrderStatus
) -> None:
    assert derive_status(lines, response_code=code, tracked=tracked) is expected


def test_no_lines_and_a_ca_is_not_a_rejection() -> None:
    assert derive_status([], response_code="CA") is OrderStatus.ACCEPTED_WITH_CHANGES


def test_cancelled_outranks_everything() -> None:
    assert derive_status([line(confirmed="0")], response_code="CA", cancelled=True) is (
        OrderStatus.CANCELLED
    )
