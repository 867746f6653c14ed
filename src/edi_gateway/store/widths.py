"""How the store keeps a document's values, without importing SQLAlchemy: the widths of the
columns they go into and a number's exact text.

``store/schema.py`` defines those columns with these widths, and ``pipeline/limits.py`` measures
every document against them before anything is written. The measuring also runs in the
read-ahead worker (``pipeline/readahead.py``), which is forked before SQLAlchemy is imported
and must stay light, so neither the widths nor :func:`decimal_text` may live beside the tables.
"""

from __future__ import annotations

from decimal import Decimal

DOCUMENT_ID = 200
"""A document's ID and the references to other documents (``documents.doc_number``)."""
NAME = 300
"""A party's name (``orders.buyer_name``)."""
PARTY_KEY = 200
"""A party identifier as ``scheme:value`` (``order_keys.party_key``)."""
CURRENCY = 3
LINE_ID = 100
ITEM_NAME = 500
ITEM_ID = 200
"""The seller's, buyer's and standard item identifiers of an order line."""
UNIT = 10
NUMBER = 48
"""The exact text of a quantity or amount (``ExactDecimal``)."""


def decimal_text(value: Decimal | int | str | None) -> str | None:
    """Exact, exponent-free text of a number (``Decimal("1E+2")`` -> ``"100"``)."""
    if value is None:
        return None
    number = value if type(value) is Decimal else Decimal(value)
    text = str(number)  # 4x faster than format(); the same text unless it has an exponent
    return text if "E" not in text else format(number, "f")
