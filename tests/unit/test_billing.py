"""EN 16931 arithmetic: worked examples and the BR-CO identities over many random invoices."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal

import pytest

from edi_gateway.domain.billing import (
    AllowanceCharge,
    InvoiceLine,
    Totals,
    compute,
    line_net,
    money,
    vat_key,
)
from edi_gateway.domain.documents import Quantity

D = Decimal


def line(
    quantity: str,
    price: str,
    *,
    base: str | None = None,
    category: str = "S",
    rate: str | None = "25",
    extras: tuple[AllowanceCharge, ...] = (),
    line_id: str = "1",
) -> InvoiceLine:
    built = InvoiceLine(line_id=line_id, quantity=Quantity(D(quantity), "C62"), price=D(price))
    built.base_quantity = D(base) if base else None
    built.vat_category = category
    built.vat_rate = D(rate) if rate is not None else None
    built.allowances_charges = list(extras)
    return built


def test_worked_example_with_allowances_charges_and_two_rates() -> None:
    lines = [
        line("3", "10.25"),  # 30.75
        line(
            "4",
            "7.333",
            base="2",
            extras=(AllowanceCharge(False, D("1.50"), "Rabatt"),),
            line_id="2",
        ),  # 4 x 3.6665 = 14.666 -> 14.67 - 1.50 = 13.17
        line("1", "20", category="Z", rate="0", line_id="3"),  # 20.00
    ]
    totals = compute(
        lines,
        [
            AllowanceCharge(True, D("5"), "Freight", "FC", "S", D("25")),
            AllowanceCharge(False, D("2.10"), "Discount", "95", "Z", D("0")),
        ],
        prepaid=D("10"),
    )
    assert totals.line_nets == (D("30.75"), D("13.17"), D("20.00"))
    assert totals.line_extension == D("63.92")
    assert (totals.allowance_total, totals.charge_total) == (D("2.10"), D("5.00"))
    assert totals.tax_exclusive == D("66.82")
    breakdown = {(b.category, b.rate): (b.taxable, b.tax) for b in totals.breakdown}
    assert breakdown == {
        ("S", D("25")): (D("48.92"), D("12.23")),
        ("Z", D("0")): (D("17.90"), D("0.00")),
    }
    assert totals.tax_total == D("12.23")
    assert totals.tax_inclusive == D("79.05")
    assert (totals.prepaid, totals.payable) == (D("10.00"), D("69.05"))


def test_tax_is_rounded_half_up_per_breakdown_not_per_line() -> None:
    # each line's VAT would be 0.625 -> 0.63, twice 1.26; per breakdown: 5.00 x 25 % = 1.25
    totals = compute([line("1", "2.50"), line("1", "2.50", line_id="2")])
    assert [b.tax for b in totals.breakdown] == [D("1.25")]
    # 2.835 -> 2.84 (half up, not half even)
    assert compute([line("6", "2.25", rate="21")]).tax_total == D("2.84")


def test_rates_written_differently_share_one_breakdown() -> None:
    totals = compute([line("1", "10", rate="25"), line("1", "10", rate="25.00", line_id="2")])
    assert len(totals.breakdown) == 1
    assert vat_key("S", D("10")) == ("S", D("10"))
    assert str(vat_key("S", D("10.0"))[1]) == "10"
    assert str(vat_key("S", D("12.50"))[1]) == "12.5"
    assert vat_key("O", None) == ("O", None)


def test_rounding_and_negative_lines() -> None:
    totals = compute([line("-2", "3.333")], rounding=D("0.01"))
    assert totals.line_nets == (D("-6.67"),)
    assert totals.tax_total == D("-1.67")  # -1.6675 rounds half up (away from zero)
    assert totals.payable == D("-8.33")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (line("1", "1", rate=None), "needs a rate"),
        (line("1", "1", category="Z", rate="5"), "must have rate 0"),
        (line("1", "1", base="0"), "base quantity"),
    ],
)
def test_impossible_lines_are_refused(bad: InvoiceLine, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute([bad])


def test_a_line_without_price_is_refused() -> None:
    bare = InvoiceLine(line_id="1", quantity=Quantity(D(1), "C62"))
    with pytest.raises(ValueError, match="quantity and a price"):
        line_net(bare)


CATEGORIES = [("S", "25"), ("S", "12"), ("S", "6"), ("S", "21"), ("Z", "0"), ("E", "0")]


def random_invoice(rng: random.Random) -> tuple[list[InvoiceLine], list[AllowanceCharge]]:
    lines = []
    for n in range(rng.randint(1, 12)):
        category, rate = rng.choice(CATEGORIES)
        extras = tuple(
            AllowanceCharge(rng.random() < 0.5, D(rng.randint(0, 500)) / 100, "x")
            for _ in range(rng.randint(0, 2))
        )
        lines.append(
            line(
                str(D(rng.randint(1, 5000)) / rng.choice([1, 10, 100, 1000])),
                str(D(rng.randint(0, 100000)) / rng.choice([100, 1000, 10000])),
                base=rng.choice([None, "1", "2", "10", "12"]),
                category=category,
                rate=rate,
                extras=extras,
                line_id=str(n + 1),
            )
        )
    document_level = []
    for _ in range(rng.randint(0, 3)):
        category, rate = rng.choice(CATEGORIES)
        amount = D(rng.randint(0, 10000)) / 100
        document_level.append(
            AllowanceCharge(rng.random() < 0.5, amount, "y", None, category, D(rate))
        )
    return lines, document_level


def assert_identities(
    lines: list[InvoiceLine], document_level: list[AllowanceCharge], totals: Totals
) -> None:
    every = [
        totals.line_extension,
        totals.allowance_total,
        totals.charge_total,
        totals.tax_exclusive,
        totals.tax_total,
        totals.tax_inclusive,
        totals.payable,
        *totals.line_nets,
        *(b.taxable for b in totals.breakdown),
        *(b.tax for b in totals.breakdown),
    ]
    assert all(amount == amount.quantize(D("0.01")) for amount in every)
    for item, net in zip(lines, totals.line_nets, strict=True):  # PEPPOL-EN16931-R120
        assert item.quantity is not None and item.price is not None
        exact = item.quantity.value * item.price / (item.base_quantity or 1)
        signed = sum(((a.amount if a.charge else -a.amount) for a in item.allowances_charges), D(0))
        assert abs(net - (exact + signed)) <= D("0.005")
    assert totals.line_extension == sum(totals.line_nets, D(0))  # BR-CO-10
    allowances = sum((a.amount for a in document_level if not a.charge), D(0))
    charges = sum((a.amount for a in document_level if a.charge), D(0))
    assert (totals.allowance_total, totals.charge_total) == (allowances, charges)  # BR-CO-11/12
    assert totals.tax_exclusive == totals.line_extension - allowances + charges  # BR-CO-13
    assert totals.tax_total == sum((b.tax for b in totals.breakdown), D(0))  # BR-CO-14
    assert totals.tax_inclusive == totals.tax_exclusive + totals.tax_total  # BR-CO-15
    assert totals.payable == totals.tax_inclusive - totals.prepaid + totals.rounding  # BR-CO-16
    keys = [(b.category, b.rate) for b in totals.breakdown]
    assert len(keys) == len(set(keys))  # one breakdown per category + rate
    assert sum((b.taxable for b in totals.breakdown), D(0)) == totals.tax_exclusive
    for part in totals.breakdown:  # BR-S-08 / BR-S-09 and their Z, E twins
        expected = sum(
            (
                net
                for item, net in zip(lines, totals.line_nets, strict=True)
                if vat_key(item.vat_category, item.vat_rate) == (part.category, part.rate)
            ),
            D(0),
        ) + sum(
            (
                (a.amount if a.charge else -a.amount)
                for a in document_level
                if vat_key(a.vat_category, a.vat_rate) == (part.category, part.rate)
            ),
            D(0),
        )
        assert part.taxable == expected
        rate = part.rate or D(0)
        assert part.tax == (part.taxable * rate / 100).quantize(D("0.01"), ROUND_HALF_UP)


@pytest.mark.parametrize("seed", range(400))
def test_br_co_identities_hold_for_random_invoices(seed: int) -> None:
    rng = random.Random(seed)
    lines, document_level = random_invoice(rng)
    prepaid = D(rng.randint(0, 2000)) / 100
    rounding = D(rng.randint(-2, 2)) / 100
    totals = compute(lines, document_level, prepaid=prepaid, rounding=rounding)
    assert (totals.prepaid, totals.rounding) == (prepaid, rounding)
    assert_identities(lines, document_level, totals)


def test_money_rounds_half_up() -> None:
    assert [money(D(x)) for x in ("0.005", "0.015", "-0.005", "2.345")] == [
        D("0.01"),
        D("0.02"),
        D("-0.01"),
        D("2.35"),
    ]
