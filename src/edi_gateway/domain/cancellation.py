"""What becomes of a buyer's cancellation: the rules of docs/adr/0008-cancellations.md, pure.

A cancellation is **accepted** at once while the supplier's copy of the order is not confirmed
(no accepting Order Response, AP or CA, and nothing despatched); once it is confirmed the
cancellation is a request, **pending** until the supplier (or an operator) answers; an order
whose every line has been despatched cannot be cancelled any more: **refused** at once.

A supplier's Order Response that arrives while a cancellation is pending answers the
cancellation, not the order: AP, or a CA that leaves every order line at 0 (status 7), accepts
it; RE, or a CA that keeps some line, refuses it; AB only acknowledges it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from edi_gateway.domain.status import ZERO, LineQuantities

CONFIRMING = frozenset({"AP", "CA"})
"""Response codes by which a supplier (or the gateway for it) confirms an order."""
FULLY_DESPATCHED = "everything ordered has been despatched; nothing is left to cancel"


class CancellationState(StrEnum):
    """The state of a cancellation document (``documents.state``)."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A cancellation's state and why, in words for the order's history."""

    state: CancellationState
    why: str


def on_arrival(
    lines: Iterable[LineQuantities], *, response_code: str | None, cancelled: bool = False
) -> Verdict:
    """The state of a cancellation arriving for an order with these lines and response code."""
    every = list(lines)
    if cancelled:
        return Verdict(CancellationState.ACCEPTED, "the order was already cancelled")
    open_lines = [line for line in every if line.effective > ZERO]
    if open_lines and all(line.despatched >= line.effective for line in open_lines):
        return Verdict(CancellationState.REFUSED, FULLY_DESPATCHED)
    if any(line.despatched > ZERO for line in every):
        return Verdict(CancellationState.PENDING, "part of the order has been despatched")
    if response_code in CONFIRMING:
        return Verdict(CancellationState.PENDING, f"the order was confirmed ({response_code})")
    return Verdict(CancellationState.ACCEPTED, "the order was not confirmed yet")


def answer(response_code: str | None, *, every_line_zero: bool) -> CancellationState | None:
    """What a supplier's Order Response says to a pending cancellation (None: not decided)."""
    if response_code == "AP" or (response_code == "CA" and every_line_zero):
        return CancellationState.ACCEPTED
    if response_code in ("RE", "CA"):
        return CancellationState.REFUSED
    return None
