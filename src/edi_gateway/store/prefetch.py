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

Two more things a batch reads for all its orders change with every document issued, so they
are **taken once**: each order's documents as the batch began (those the ledger recompute
reads, with their ledger rows: :func:`documents_before`) and how many documents of each kind
the gateway had issued on it (the document number: :func:`issued_before`). The first item on an
order may use them, and only before it writes anything; when that item ends, issued or refused
(its savepoint rolled back), :func:`forget` drops what it left, so any later item on the same
order in the batch reads the store, which then holds exactly what the earlier items left.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.pipeline.ledger_rows import Documents
    from edi_gateway.store.tables import OrderLine

_KEY = "edi_gateway.prefetched"


@dataclass(frozen=True, slots=True)
class Prefetched:
    """Per order ID: its lines (in position order), its Order's bytes, its deleted lines;
    taken once (see the module): its documents and their ledger rows, the number of documents
    of each kind the gateway issued on it."""

    lines: dict[int, list[OrderLine]]
    payloads: dict[int, bytes]
    deleted: dict[int, set[int]]
    documents: dict[int, Documents] = field(default_factory=dict)
    issued: dict[int, dict[str, int]] = field(default_factory=dict)


@contextmanager
def prefetched(session: Session, order_ids: Sequence[int]) -> Iterator[Prefetched]:
    """Read the lines, Order bytes, deleted lines, documents with their ledger rows and counts
    of issued documents of ``order_ids`` in six selects; the queries named in the module
    docstring answer from them inside the block."""
    from sqlalchemy import select

    from edi_gateway.pipeline.ledger import attached_of
    from edi_gateway.store.queries import deleted_lines_of, issued_counts, order_payloads
    from edi_gateway.store.tables import OrderLine

    ids = sorted(set(order_ids))
    lines: dict[int, list[OrderLine]] = {order_id: [] for order_id in ids}
    found = Prefetched(lines, {}, {})
    if ids:
        query = select(OrderLine).where(OrderLine.order_id.in_(ids))
        for line in session.scalars(query.order_by(OrderLine.order_id, OrderLine.position)):
            lines[line.order_id].append(line)
        found = Prefetched(
            lines,
            order_payloads(session, ids),
            deleted_lines_of(session, ids),
            attached_of(session, ids),
            issued_counts(session, ids),
        )
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


def documents_before(session: Session, order_id: int) -> Documents | None:
    """The order's attached documents and their ledger rows as the batch began, taken: once,
    by the first document issued on the order in the batch, before it writes anything (None:
    read the store)."""
    found = of(session)
    return None if found is None else found.documents.pop(order_id, None)


def documents_now(session: Session, order_id: int) -> Documents | None:
    """What :func:`documents_before` would take, left in place: for a read before the item
    writes anything (None: read the store)."""
    found = of(session)
    return None if found is None else found.documents.get(order_id)


def issued_before(session: Session, order_id: int, kind: str) -> int | None:
    """How many documents of ``kind`` the gateway had issued on the order as the batch began,
    taken like :func:`documents_before` (None: read the store)."""
    found = of(session)
    counts = None if found is None else found.issued.pop(order_id, None)
    return None if counts is None else counts.get(kind, 0)


def forget(session: Session, order_id: int) -> None:
    """Drop what :func:`documents_before` and :func:`issued_before` kept for the order (a bulk
    item on it ends): a later item on the same order reads the store."""
    found = of(session)
    if found is not None:
        found.documents.pop(order_id, None)
        found.issued.pop(order_id, None)
