"""What the ledger recompute reads of an order's documents (``pipeline.ledger``,
``pipeline.discrepancies``): each attached document with its ledger rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from edi_gateway.store.tables import DocumentLine, DocumentRow


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A ledger row just written, as reading it back gives it (``correlate.attach`` in a bulk
    batch): a plain object, not an ORM one (making one of those for each row cost more than
    reading them back)."""

    document_id: int
    order_line_id: int | None
    line_ref: str
    quantity: Decimal | None
    unit: str | None
    status_code: str | None
    price: Decimal | None
    amount: Decimal | None
    backorder: Decimal | None


Ledger: TypeAlias = "Mapping[int, Sequence[DocumentLine | LedgerRow]]"
"""Document ID -> its ledger rows."""
Documents: TypeAlias = "tuple[list[DocumentRow], Ledger]"
"""An order's attached documents, oldest first, and each one's ledger rows."""
