"""A Core-only look-up for the react step: do these messages concern a cancellation?

Kept apart from the ORM so that ``ingest`` and ``run`` over plain orders never import it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, or_, select

from edi_gateway.domain.cancellation import CancellationState
from edi_gateway.domain.documents import DocumentKind
from edi_gateway.store.schema import documents, messages

CANCELLATION = DocumentKind.ORDER_CANCELLATION.value
OPEN = tuple(state.value for state in CancellationState)


def concern_cancellations(conn: Connection, message_ids: Sequence[int]) -> bool:
    """Whether a cancellation (pending or decided) came in, or belongs to an order that one of
    these messages created or attached to."""
    ids = list(message_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        touched = select(messages.c.order_id).where(
            messages.c.id.in_(chunk), messages.c.order_id.is_not(None)
        )
        found = conn.scalar(
            select(documents.c.id)
            .where(
                documents.c.kind == CANCELLATION,
                documents.c.state.in_(OPEN),
                or_(documents.c.message_id.in_(chunk), documents.c.order_id.in_(touched)),
            )
            .limit(1)
        )
        if found is not None:
            return True
    return False
