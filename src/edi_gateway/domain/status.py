"""Order status, derived from line quantities and the order's documents; never typed by hand.

The rules, in order of precedence (docs/adr/0024-ledger-discrepancies-and-statuses.md, which
supersedes the status part of docs/adr/0003):

1. an accepted OrderCancellation -> Cancelled (a pending or refused one changes nothing: see
   domain/cancellation.py and docs/adr/0008-cancellations.md)
2. the latest Order Response says RE, or is a CA that accepts no line (confirms each 0) ->
   Rejected
3. something invoiced: every line billed in full (each unit once: a credit settles what it
   credits, it does not reopen billing) -> Fully invoiced, or Closed once every line has also
   been received in full; otherwise Partially invoiced
4. something despatched: every line despatched in full -> Shipped when a received despatch
   advice carries track & trace and not every line is received yet, else Fully delivered;
   otherwise Partially backordered when the supplier says an open quantity will follow, else
   Partially delivered
5. nothing despatched but the supplier says quantities will follow -> Backordered
6. the latest Order Response: CA -> Accepted with changes, AP -> Accepted, AB -> Acknowledged
7. otherwise Received

"Fully" compares with the line's *effective* quantity: the confirmed quantity when the supplier
has confirmed the line (0 when it rejected the line), else the ordered quantity. A confirmation
that a later Order Change of the buyer lowered (a line deleted or reduced) no longer counts:
the line expects what is still ordered (pipeline/ledger.py, docs/adr/0025).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Context, Decimal
from enum import StrEnum

ZERO = Decimal(0)
EXACT = Context(prec=100)
"""The context quantities are summed and compared in (``pipeline.ledger.recompute``). Python's
default rounds every result to 28 significant digits, and the store keeps numbers of up to 48
characters: 40 ordered and 40.00000000000000000000000000001 despatched summed to 40, so the
line read "despatched 40", Fully delivered, with no over-despatch. 100 digits hold the exact
sum of any storable numbers (each under 10**48 and over 10**-48); a sum too long for its
column is refused (``VALUE_TOO_LONG``), never rounded."""


class OrderStatus(StrEnum):
    """The statuses an order moves through."""

    RECEIVED = "Received"
    ACKNOWLEDGED = "Acknowledged"
    ACCEPTED = "Accepted"
    ACCEPTED_WITH_CHANGES = "Accepted with changes"
    REJECTED = "Rejected"
    BACKORDERED = "Backordered"
    PARTIALLY_BACKORDERED = "Partially backordered"
    PARTIALLY_DELIVERED = "Partially delivered"
    SHIPPED = "Shipped"
    FULLY_DELIVERED = "Fully delivered"
    PARTIALLY_INVOICED = "Partially invoiced"
    FULLY_INVOICED = "Fully invoiced"
    CANCELLED = "Cancelled"
    CLOSED = "Closed"


NEEDS = ("response", "despatch", "invoice")
"""What an order may still need from its supplier: the ``needs`` filter of the orders lists
(``orders list --needs``, the console), defined in store/queries.py ``needs_condition``."""

RESPONSE_STATUS = {
    "AB": OrderStatus.ACKNOWLEDGED,
    "AP": OrderStatus.ACCEPTED,
    "CA": OrderStatus.ACCEPTED_WITH_CHANGES,
    "RE": OrderStatus.REJECTED,
}


@dataclass(frozen=True, slots=True)
class LineQuantities:
    """Per order line: what was ordered, confirmed, despatched, received, invoiced and credited,
    and what the supplier said is backordered (will follow in a later shipment)."""

    ordered: Decimal
    confirmed: Decimal | None = None
    despatched: Decimal = ZERO
    received: Decimal = ZERO
    invoiced: Decimal = ZERO
    credited: Decimal = ZERO
    backordered: Decimal = ZERO

    @property
    def effective(self) -> Decimal:
        """The quantity the order is expected to deliver for this line."""
        return self.ordered if self.confirmed is None else self.confirmed

    @property
    def net_invoiced(self) -> Decimal:
        """Invoiced minus credited."""
        return self.invoiced - self.credited


def derive_status(  # noqa: PLR0911 - one return per rule, in order of precedence
    lines: Iterable[LineQuantities],
    *,
    response_code: str | None = None,
    cancelled: bool = False,
    tracked: bool = False,
) -> OrderStatus:
    """Return the order's status from its lines, its latest response code, cancellation and
    whether a received despatch advice carries track & trace (``tracked``)."""
    if cancelled:
        return OrderStatus.CANCELLED
    every = list(lines)
    # confirmed, not effective: a line the buyer's change deleted after the CA (confirmation
    # taken back, ordered 0) was not refused by the supplier (pipeline/ledger._taken_back)
    refused_all = response_code == "CA" and bool(every) and all(x.confirmed == 0 for x in every)
    if response_code == "RE" or refused_all:
        return OrderStatus.REJECTED
    rows = [line for line in every if line.effective > ZERO]
    if any(line.invoiced > ZERO for line in rows):
        if all(line.invoiced >= line.effective for line in rows):
            if all(line.received >= line.effective for line in rows):
                return OrderStatus.CLOSED
            return OrderStatus.FULLY_INVOICED
        return OrderStatus.PARTIALLY_INVOICED
    backordered = any(line.backordered > ZERO for line in rows)
    if any(line.despatched > ZERO for line in rows):
        if all(line.despatched >= line.effective for line in rows):
            if tracked and not all(line.received >= line.effective for line in rows):
                return OrderStatus.SHIPPED
            return OrderStatus.FULLY_DELIVERED
        if backordered:
            return OrderStatus.PARTIALLY_BACKORDERED
        return OrderStatus.PARTIALLY_DELIVERED
    if backordered:
        return OrderStatus.BACKORDERED
    if response_code in RESPONSE_STATUS:
        return RESPONSE_STATUS[response_code]
    return OrderStatus.RECEIVED
