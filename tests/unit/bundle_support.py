"""A varied bundle for the workbook / CSV comparisons of tests/unit/test_bundles.py.

``varied_orders()`` is deterministic: the golden workbooks in tests/data/bundles/ were written
from it by the renderers before they moved to openpyxl's write-only mode (see the README there).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

from edi_gateway.domain.documents import DocumentKind, Line, Order, Quantity
from edi_gateway.ubl.parse import parse
from edi_gateway.ubl.read import interpret
from tests import factory

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "bundles"


def _read(payload: bytes) -> Order:
    order = interpret(parse(payload, max_size=50_000_000))
    assert isinstance(order, Order)
    return order


def varied_orders() -> list[Order]:
    """CJK text, diacritics, decimals, an order without lines, twin and unsafe sheet titles,
    notes, leading-zero line ids, and a 1,003-line order (widths look at the first 1,001)."""
    chinese = _read((ROOT / "samples" / "order-rijnoever-4500012901.xml").read_bytes())
    swedish = _read(
        factory.order(
            "VS-2026-7001",
            [
                factory.Item("1", "12", "89.50", "Sjukvårdsartiklar", seller_item="NV-1"),
                factory.Item("2", "2.500", "4.10", "Kompresser 10×10 cm, blå", unit="KGM"),
            ],
            buyer_name="Region Västra Sjukvård",
        )
    )
    swedish.currency = "SEK"
    swedish.notes = ["Leverans via port 4", "Ring före leverans"]
    empty = Order(DocumentKind.ORDER, "PO-EMPTY")
    odd = Order(
        DocumentKind.ORDER,
        "A/B:C*" + "x" * 40,
        issue_date=date(2026, 1, 31),
        currency="EUR",
        total_amount=Decimal("1234567.891"),
        lines=[
            Line("007", Quantity(Decimal("0.125"), "KGM"), item_name="x" * 90, price=Decimal("3")),
            Line("0", Quantity(Decimal(3), "C62"), seller_item_id="0001", line_amount=Decimal(0)),
            Line("2", delivery_date=date(2026, 2, 2), note="handle with care; fragile"),
        ],
    )
    big = Order(
        DocumentKind.ORDER,
        "BIG-1",
        issue_date=date(2026, 3, 1),
        currency="EUR",
        lines=[
            Line(
                str(n),
                Quantity(Decimal(n), "C62"),
                item_name=("w" * 50 if n == 1001 else "y" * 58 if n == 1002 else f"item {n}"),
                price=Decimal("1.5"),
                line_amount=Decimal(n) * Decimal("1.5"),
            )
            for n in range(1, 1004)
        ],
    )
    return [chinese, swedish, empty, odd, replace(odd), big]
