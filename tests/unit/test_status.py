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
