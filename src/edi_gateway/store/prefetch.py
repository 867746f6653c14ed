"""What a bulk batch reads for all its orders at once (docs/adr/0038-outbound-in-bulk.md).

Issuing a document on an order reads the order's lines, the bytes of the Order that created it
and the lines a buyer's Order Change deleted: three selects an order, each paying SQLAlchemy's
per-statement cost. A bulk batch reads them for its 200 orders in three selects in all
(:func:`prefetched`); inside the block, :func:`edi_gateway.store.queries.order_lines`,
``order_payload`` and ``deleted_lines`` answer from memory for those orders and read the store
for any other. The single-order commands run the very same functions without the block.

What is kept cannot go stale inside the block: an issued document changes its order's line
quantities, which are the same ORM objects (the session's identity map), and never adds or
deletes a line or changes the Order's bytes; the block spans one batch, in which every order is
issued at most once, and ends before the batch's transaction does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.store.tables import OrderLine

_KEY = "edi_gateway.prefetched"


@dataclass(frozen=True, slots=True)
class Prefetched:
    """Per order ID: its lines (in position order), its Order's bytes, its deleted lines."""

    lines: dict[int, list[OrderLine]]
    payloads: dict[int, bytes]
    deleted: dict[int, set[int]]


@contextmanager
def prefetched(session: Session, order_ids: Sequence[int]) -> Iterator[Prefetched]:
    """Read the lines, Order bytes and deleted lines of ``order_ids`` in three selects; the
    queries named in the module docstring answer from them inside the block."""
    from sqlalchemy import select

    from edi_gateway.store.queries import deleted_lines_of, order_payloads
    from edi_gateway.store.tables import OrderLine

    ids = sorted(set(order_ids))
    lines: dict[int, list[OrderLine]] = {order_id: [] for order_id in ids}
    found = Prefetched(lines, {}, {})
    if ids:
        query = select(OrderLine).where(OrderLine.order_id.in_(ids))
        for line in session.scalars(query.order_by(OrderLine.order_id, OrderLine.position)):
            lines[line.order_id].append(line)
        found = Prefetched(lines, order_payloads(session, ids), deleted_lines_of(session, ids))
    session.info[_KEY] = found
    try:
        yield found
    finally:
        session.info.pop(_KEY, None)


def of(reader: object) -> Prefetched | None:
    """What the enclosing :func:`prefetched` block read on ``reader``, if any (a Core
    connection, as the read-only commands use, never has one)."""
    from sqlalchemy import Connection

    if isinstance(reader, Connection):
        return None
    found = getattr(reader, "info", {}).get(_KEY)
    return found if isinstance(found, Prefetched) else None
