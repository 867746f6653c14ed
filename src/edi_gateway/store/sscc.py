"""SSCC serial references handed out from the store, never twice.

The counter row of an extension digit + company prefix is created once (a concurrent second
creator fails on the primary key inside a savepoint and goes on) and then moved forward with
one ``UPDATE ... SET next_serial = next_serial + n RETURNING next_serial``: PostgreSQL holds
the row lock until the issuing transaction commits, so a second gateway's allocation waits
and then reads the moved counter; SQLite has one writer at a time. A transaction that rolls
back gives its serials back, and nothing else ever held them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from edi_gateway.domain.sscc import capacity
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.store.schema import sscc_counters

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def allocate_serials(session: Session, extension: int, prefix: str, count: int) -> range:
    """``count`` serial references for ``extension`` + ``prefix`` no one else ever gets.

    Runs in the caller's transaction: the serials are the caller's once it commits.

    Raises:
        GatewayError: NOT_ALLOWED when the company prefix has run out of serial references.
    """
    if count < 1:
        raise ValueError("allocate at least one serial")
    key = f"{extension}{prefix}"
    c = sscc_counters.c
    try:
        with session.begin_nested():
            session.execute(insert(sscc_counters).values(prefix=key, next_serial=1))
    except IntegrityError:
        pass  # the row exists (or another gateway made it just now): count on from it
    moved = session.execute(
        update(sscc_counters)
        .where(c.prefix == key)
        .values(next_serial=c.next_serial + count)
        .returning(c.next_serial)
    ).scalar_one()
    first = int(moved) - count
    if int(moved) > capacity(prefix):
        raise GatewayError(
            ErrorCode.NOT_ALLOWED,
            f"GS1 company prefix {prefix} (extension digit {extension}) has no serial "
            f"references left for {count} more SSCC(s): use another extension digit or prefix",
        )
    return range(first, first + count)
