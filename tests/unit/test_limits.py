"""What the store keeps is measured when a document is read: ``check_lengths`` names the first
value its column cannot hold (``VALUE_TOO_LONG``), column by column, whatever the line count."""

from __future__ import annotations

import pickle
from decimal import Decimal

import pytest

from edi_gateway.domain.documents import DocumentKind, Line, Order, Party, PartyId, Quantity
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.pipeline.limits import FEW, LINE_TEXT, NUMBER, UNIT, check_lengths
from edi_gateway.ubl.read import interpret
from edi_gateway.ubl.validate import validate_document
from tests import factory as f


def _order(lines: list[Line]) -> Order:
    buyer = Party(endpoint=PartyId(f.BUYER_GLN, "0088"), name="Buyer")
    return Order(DocumentKind.ORDER, "PO-1", buyer=buyer, lines=lines)


def _lines(count: int) -> list[Line]:
    ten = Quantity(Decimal(10), "C62")  # shared, as read_lines shares equal values
    price = Decimal("2.25")
    return [
        Line(str(n), ten, item_name=f"Item {n}", price=price, line_amount=Decimal("22.50"))
        for n in range(1, count + 1)
    ]


def _refusal(order: Order) -> str:
    with pytest.raises(DocumentError) as caught:
        check_lengths(order)
    assert caught.value.code is ErrorCode.VALUE_TOO_LONG
    return caught.value.message


def test_a_large_order_within_the_limits_passes() -> None:
    check_lengths(_order(_lines(5000)))
    payload = f.order("PO-2", f.items(300), detailed=True)
    document = interpret(validate_document(payload, max_size=1 << 20).root)
    check_lengths(pickle.loads(pickle.dumps(document)))  # as read-ahead hands it over


@pytest.mark.parametrize("attribute", sorted(LINE_TEXT))
def test_each_line_text_column_is_measured(attribute: str) -> None:
    lines = _lines(3000)
    limit = LINE_TEXT[attribute]
    setattr(lines[1500], attribute, "x" * limit)  # exactly the limit: kept
    check_lengths(_order(lines))
    setattr(lines[2500], attribute, "z" * (limit + 1))
    assert f"is {limit + 1:,} characters long" in _refusal(_order(lines))
    setattr(lines[2000], attribute, "y" * (limit + 1))
    setattr(lines[2500], attribute, "z" * (limit + 50))
    message = _refusal(_order(lines))
    # the first offender in line order is the one named
    assert f"the line {attribute.replace('_', ' ')} is {limit + 1:,} characters long" in message
    assert "'yyyy" in message and f"keeps at most {limit}" in message


def test_a_unit_code_too_long_is_named() -> None:
    lines = _lines(100)
    lines[50].quantity = Quantity(Decimal(1), "U" * (UNIT + 1))
    assert f"the unit code is {UNIT + 1} characters long" in _refusal(_order(lines))


@pytest.mark.parametrize("count", [FEW, 200], ids=["one-by-one", "all-at-once"])
@pytest.mark.parametrize("attribute", ["price", "line_amount"])
def test_a_number_equal_to_a_short_one_but_written_longer_is_refused(
    attribute: str, count: int
) -> None:
    """1 and 1.000...0 are equal numbers with texts of different lengths: each text counts."""
    lines = _lines(count)
    setattr(lines[10], attribute, Decimal(1))
    long_one = Decimal("1." + "0" * NUMBER)
    setattr(lines[-1], attribute, long_one)
    message = _refusal(_order(lines))
    assert f"the {attribute.replace('_', ' ')} is {NUMBER + 2} characters long" in message


@pytest.mark.parametrize("count", [FEW, 200], ids=["one-by-one", "all-at-once"])
def test_a_long_number_hidden_by_an_exponent_is_refused(count: int) -> None:
    lines = _lines(count)
    lines[-1].quantity = Quantity(Decimal(f"1E+{NUMBER + 5}"), "C62")  # str() is "1E+53"
    assert f"the quantity is {NUMBER + 6} characters long" in _refusal(_order(lines))
    lines[-1].quantity = Quantity(Decimal(f"1E-{NUMBER + 5}"), "C62")  # 0.000...1
    assert "the quantity is" in _refusal(_order(lines))


def test_numbers_at_the_limit_and_zero_with_a_large_exponent_are_kept() -> None:
    lines = _lines(10)
    lines[0].price = Decimal("9" * NUMBER)
    lines[1].line_amount = Decimal("0E+100")  # stored as "0"
    lines[2].quantity = Quantity(Decimal("-" + "9" * (NUMBER - 1)), "C62")
    check_lengths(_order(lines))


def test_a_signalling_nan_is_measured_like_any_number() -> None:
    lines = _lines(10)
    lines[3].price = Decimal("sNaN")  # cannot be hashed: the column must not need it to be
    check_lengths(_order(lines))
