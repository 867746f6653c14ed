"""When a document takes an order line beyond what the ledger allows (docs/adr/0024).

Pure arithmetic over the quantities each document of an order states per order line, in the
order the documents were recorded. A line of a document is a *discrepancy* when, counting it:

* ``negative``: what it states for the order line (its lines for it summed) is below 0
  (counted as stated, but never silently);
* ``over_confirmed``: a response confirms more than was ordered;
* ``over_despatched``: the despatched total exceeds the effective quantity (confirmed, else
  ordered);
* ``over_received``: the received total exceeds what was effective or despatched, whichever
  is more;
* ``over_invoiced``: the invoiced total less the credits so far exceeds what was effective or
  despatched, whichever is more (a second invoice for the same goods lands here);
* ``over_credited``: the credited total exceeds what was invoiced.

On an order that ended (cancelled, or rejected by the supplier's RE) a line's effective
quantity is what had been despatched before it ended, never more than ordered or confirmed:
goods sent after, and bills for goods that never left, are over.

Bounds use the order's final state (its effective and despatched quantities, all invoices),
so documents arriving out of order (an invoice before its despatch advice) are judged on what
the order holds, and the same documents always give the same discrepancies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

ZERO = Decimal(0)

CONFIRMED, DESPATCHED, RECEIVED = "confirmed", "despatched", "received"
INVOICED, CREDITED = "invoiced", "credited"
MOVES = (CONFIRMED, DESPATCHED, RECEIVED, INVOICED, CREDITED)


class Move(NamedTuple):
    """What one document says about one order line: ``what`` (one of :data:`MOVES`). A named
    tuple: an order's every document line becomes one after each attached document."""

    document: int
    label: str
    """How an operator knows the document: ``Invoice INV-7``."""
    line: int
    what: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class LineBounds:
    """One order line: its ID, ordered and effective (confirmed, else ordered) quantities;
    ``ended``: how the order ended (``cancelled``, ``rejected``), ``effective`` then being
    what was despatched before."""

    line_id: str
    ordered: Decimal
    effective: Decimal
    ended: str | None = None


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One document line beyond what the ledger allows: the total it made and the bound."""

    document: int
    line: int
    kind: str
    quantity: Decimal
    bound: Decimal
    detail: str


def _totals(moves: Iterable[Move]) -> dict[tuple[int, str], Decimal]:
    totals: dict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    for move in moves:
        totals[move.line, move.what] += move.quantity
    return totals


def find(moves: list[Move], lines: Mapping[int, LineBounds]) -> list[Discrepancy]:
    """Every discrepancy ``moves`` (oldest document first) make on ``lines``."""
    final = _totals(moves)
    running: dict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    found: list[Discrepancy] = []
    for (document, label), per_line in _by_document(moves).items():
        for (line_key, what), quantity in per_line.items():
            bounds = lines.get(line_key)
            if bounds is None:
                continue
            running[line_key, what] += quantity
            where = f"{label} line {bounds.line_id}"
            if quantity < ZERO:
                found.append(
                    Discrepancy(
                        document,
                        line_key,
                        "negative",
                        quantity,
                        ZERO,
                        f"{where}: {what} quantity {quantity} is below 0",
                    )
                )
            over = _over((line_key, what), quantity, bounds, running, final)
            if over is not None and quantity > ZERO:
                total, bound, kind, basis = over
                detail = f"{where}: {what} {total}, more than {bound} {basis}"
                if bounds.ended and what in (RECEIVED, INVOICED):
                    detail += f" (the order is {bounds.ended})"
                found.append(Discrepancy(document, line_key, kind, total, bound, detail))
    return found


def _by_document(
    moves: list[Move],
) -> dict[tuple[int, str], dict[tuple[int, str], Decimal]]:
    grouped: dict[tuple[int, str], dict[tuple[int, str], Decimal]] = {}
    for move in moves:
        per_line = grouped.setdefault((move.document, move.label), defaultdict(lambda: ZERO))
        per_line[move.line, move.what] += move.quantity
    return grouped


def _over(
    key: tuple[int, str],
    quantity: Decimal,
    bounds: LineBounds,
    running: Mapping[tuple[int, str], Decimal],
    final: Mapping[tuple[int, str], Decimal],
) -> tuple[Decimal, Decimal, str, str] | None:
    """(total, bound, kind, what the bound is) when the ``(line, what)`` total is over its
    bound, else None; ``quantity`` is what the document itself states."""
    line, what = key
    total = running[line, what]
    delivered = max(bounds.effective, final.get((line, DESPATCHED), ZERO))
    if what == CONFIRMED:  # each response states the whole confirmation: not a running sum
        check = (quantity, bounds.ordered, "over_confirmed", "ordered")
    elif what == DESPATCHED:
        basis = f"despatched before the order was {bounds.ended}" if bounds.ended else ""
        check = (total, bounds.effective, "over_despatched", basis or "ordered or confirmed")
    elif what == RECEIVED:
        check = (total, delivered, "over_received", "confirmed or despatched")
    elif what == INVOICED:
        total -= running.get((line, CREDITED), ZERO)
        check = (total, delivered, "over_invoiced", "confirmed or despatched (net of credits)")
    else:
        check = (total, final.get((line, INVOICED), ZERO), "over_credited", "invoiced")
    return check if check[0] > check[1] else None
