"""What a buyer's Order Change (Peppol T114) does to an order's lines: the rules, pure.

docs/adr/0025-advanced-ordering.md. Every line of a T114 carries ``cbc:LineStatusCode`` from
the Peppol subset of UNCL 1229 (``UNCL1229_CHANGE``, rule PEPPOL-T114-B23301):
``1`` added, ``2`` deleted, ``3`` changed, ``4`` no action, ``74`` reopened. :func:`plan`
turns the change's lines into :class:`Step` s against the order's current lines, converting
the change's quantities into the order line's unit, or refuses the whole change
(:class:`ChangeRefused`) when one line cannot be applied. :func:`check_sequence` decides the
change's ``cbc:SequenceNumberID`` against those applied before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from edi_gateway.domain.documents import Line
from edi_gateway.domain.status import EXACT, ZERO


class LineAction(StrEnum):
    """UNCL 1229 action codes of an Order Change line (Peppol subset ``UNCL1229_CHANGE``)."""

    ADDED = "1"
    DELETED = "2"
    CHANGED = "3"
    NO_ACTION = "4"
    REOPENED = "74"


UBL_LINE_STATUS: Mapping[str, LineAction] = MappingProxyType(
    {
        "Revised": LineAction.CHANGED,
        "Cancelled": LineAction.DELETED,
        "NoStatus": LineAction.NO_ACTION,
    }
)
"""The names of UBL's own "Line Status" code list (``listAgencyID="UBL"``, the OASIS
examples) for the same actions; its ``Disputed`` has no meaning on a change."""


class ChangeRefused(ValueError):
    """The change cannot be applied as a whole; the message says which line and why."""


MAX_DIGITS = 10
"""The longest sequence number kept (``documents.code``)."""


class SequenceRefused(ValueError):
    """The change's sequence number is repeated, out of order or not a number."""


# Factors to a base unit per dimension (UN/ECE Recommendation 20 codes). Counts: C62 "one",
# H87 "piece", EA "each" and NAR "number of articles" all count single units.
_FACTORS: Mapping[str, tuple[str, Decimal]] = MappingProxyType(
    {
        "KGM": ("mass", Decimal(1)),
        "GRM": ("mass", Decimal("0.001")),
        "MGM": ("mass", Decimal("0.000001")),
        "TNE": ("mass", Decimal(1000)),
        "MTR": ("length", Decimal(1)),
        "KMT": ("length", Decimal(1000)),
        "CMT": ("length", Decimal("0.01")),
        "MMT": ("length", Decimal("0.001")),
        "LTR": ("volume", Decimal(1)),
        "DLT": ("volume", Decimal("0.1")),
        "CLT": ("volume", Decimal("0.01")),
        "MLT": ("volume", Decimal("0.001")),
        "MTQ": ("volume", Decimal(1000)),
        "C62": ("count", Decimal(1)),
        "H87": ("count", Decimal(1)),
        "EA": ("count", Decimal(1)),
        "NAR": ("count", Decimal(1)),
        "DZN": ("count", Decimal(12)),
        "GRO": ("count", Decimal(144)),
    }
)


def convert(value: Decimal, unit: str | None, to_unit: str | None) -> Decimal | None:
    """``value`` in ``unit`` expressed in ``to_unit``; None when the units do not convert.

    A missing unit on either side is taken as the other's (nothing to convert). Worked out in
    the exact context (``EXACT``), whoever calls: the default context rounded to 28 digits, so
    12.000000000000000000000000000001 DZN became an ordered 144 C62. A ratio that does not end
    runs to 100 digits; the caller rounds it to what its column keeps (``limits.kept``).
    """
    if unit is None or to_unit is None or unit == to_unit:
        return value
    source, target = _FACTORS.get(unit), _FACTORS.get(to_unit)
    if source is None or target is None or source[0] != target[0]:
        return None
    converted = EXACT.divide(EXACT.multiply(value, source[1]), target[1])
    return EXACT.add(converted.normalize(EXACT), ZERO)


@dataclass(frozen=True, slots=True)
class CurrentLine:
    """An order line as it stands before the change."""

    line_id: str
    quantity: Decimal
    unit: str | None
    despatched: Decimal = ZERO
    deleted: bool = False
    price: Decimal | None = None
    delivery_date: date | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One line action of a change: the line's quantity before and after, in the line's unit.

    ``given`` is the quantity and unit as the change states them, when they differ from
    ``after`` (a converted unit).
    """

    action: LineAction
    line_id: str
    unit: str | None
    before: Decimal | None
    after: Decimal | None
    given: str | None = None
    price: Decimal | None = None
    delivery_date: date | None = None
    line: Line | None = None

    def describe(self) -> str:
        """The history text of this step, e.g. ``line 1 quantity changed from 10 to 5 NAR``."""
        unit = f" {self.unit}" if self.unit else ""
        given = f" (given as {self.given})" if self.given else ""
        if self.action is LineAction.ADDED:
            name = f" {self.line.item_name}" if self.line and self.line.item_name else ""
            return f"line {self.line_id} added: {self.after}{unit}{name}{given}"
        if self.action is LineAction.DELETED:
            return f"line {self.line_id} deleted (was {self.before}{unit})"
        if self.action is LineAction.REOPENED:
            return f"line {self.line_id} reopened: {self.after}{unit}{given}"
        if self.before == self.after:
            return f"line {self.line_id} changed, quantity {self.after}{unit} as before{given}"
        return (
            f"line {self.line_id} quantity changed from {self.before} to {self.after}{unit}{given}"
        )


def plan(current: Mapping[str, CurrentLine], lines: Iterable[Line]) -> list[Step]:
    """The steps of a change with these ``lines`` on an order with the ``current`` lines.

    Raises:
        ChangeRefused: naming every line that cannot be applied (an unknown, missing or
            deleted line for its action, a line added twice, no or an unknown action code,
            a quantity missing, negative, in a unit that does not convert, or below what has
            been despatched).
    """
    steps: list[Step] = []
    problems: list[str] = []
    for line in lines:
        try:
            step = _step(current, line)
        except ChangeRefused as exc:
            problems.append(str(exc))
            continue
        if step is not None:
            steps.append(step)
    if problems:
        raise ChangeRefused("; ".join(problems))
    return steps


def _step(current: Mapping[str, CurrentLine], line: Line) -> Step | None:
    where = f"line {line.line_id}"
    code = (line.status_code or "").strip()
    try:
        action = UBL_LINE_STATUS.get(code) or LineAction(code)
    except ValueError:
        codes = ", ".join(f"{a.value} {a.name.lower().replace('_', ' ')}" for a in LineAction)
        said = f"LineStatusCode {code!r}" if code else "no LineStatusCode"
        raise ChangeRefused(
            f"{where} has {said}; an Order Change line needs one of {codes} (PEPPOL-T114-B23102)"
        ) from None
    known = current.get(line.line_id)
    if action is LineAction.NO_ACTION:
        if known is None:
            raise ChangeRefused(f"{where} (no action) is no line of the order")
        return None
    if action is LineAction.ADDED:
        if known is not None:
            raise ChangeRefused(
                f"{where} is added (1) but the order has it already; change it with 3"
            )
        after, unit, given = _quantity(line, None, where)
        return Step(action, line.line_id, unit, None, after, given, line.price, None, line)
    if known is None:
        raise ChangeRefused(
            f"{where} is {action.name.lower()} ({action.value}) but no line of the order"
        )
    if action is LineAction.DELETED:
        if known.deleted:
            raise ChangeRefused(f"{where} is deleted already")
        if known.despatched > ZERO:
            raise ChangeRefused(
                f"{where} cannot be deleted: {known.despatched} {known.unit or ''} of it "
                "have been despatched".replace("  ", " ")
            )
        return Step(action, line.line_id, known.unit, known.quantity, ZERO)
    if action is LineAction.CHANGED and known.deleted:
        raise ChangeRefused(f"{where} was deleted; reopen it with 74 to order it again")
    if action is LineAction.REOPENED and not known.deleted:
        raise ChangeRefused(f"{where} is reopened (74) but it was not deleted; change it with 3")
    after, unit, given = _quantity(line, known.unit, where)
    if after < known.despatched:
        raise ChangeRefused(
            f"{where} cannot go down to {after} {unit or ''}: {known.despatched} have been "
            "despatched already".replace("  ", " ")
        )
    return Step(
        action,
        line.line_id,
        unit,
        known.quantity,
        after,
        given,
        line.price,
        line.delivery_date,
        line,
    )


def _quantity(line: Line, unit: str | None, where: str) -> tuple[Decimal, str | None, str | None]:
    """The line's new quantity in ``unit`` (the order line's), that unit, and what was given."""
    if line.quantity is None:
        raise ChangeRefused(f"{where} has no quantity")
    value, given_unit = line.quantity.value, line.quantity.unit
    if value < ZERO:
        raise ChangeRefused(f"{where} has a negative quantity {value}")
    converted = convert(value, given_unit, unit)
    if converted is None:
        raise ChangeRefused(
            f"{where}: the change's unit {given_unit} does not convert to the order line's "
            f"unit {unit}"
        )
    target = unit or given_unit
    given = None if converted == value and given_unit == target else f"{value} {given_unit}"
    return converted, target, given


def check_sequence(sequence: str | None, applied: Sequence[tuple[str, str]]) -> str:
    """Decide a change's ``SequenceNumberID`` against ``applied`` ((change ID, sequence) pairs of
    the changes applied to the order before); return what the history says of it.

    The Peppol T114 syntax gives the sequence number "to ensure the proper sequencing of
    changes": a change must come with a number above every one applied before. Gaps are
    allowed (noted). A change without a number is applied in arrival order.

    Raises:
        SequenceRefused: a number that is not a non-negative integer, that repeats one applied
            before, or that is below the highest one applied (a late change).
    """
    if sequence is None:
        return "no sequence number: applied in arrival order"
    text = sequence.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_DIGITS:
        raise SequenceRefused(
            f"sequence number {sequence!r} is not a whole number of at most {MAX_DIGITS} "
            "digits; the order's changes are sequenced by such numbers"
        )
    number = int(text)
    numbered = [(doc, int(seq)) for doc, seq in applied if seq.isascii() and seq.isdigit()]
    for doc, seq in numbered:
        if seq == number:
            raise SequenceRefused(
                f"sequence number {number} repeats that of change {doc}, applied already"
            )
    if numbered:
        last_doc, last = max(numbered, key=lambda pair: pair[1])
        if number < last:
            raise SequenceRefused(
                f"sequence number {number} comes after change {last_doc} with {last} was "
                "applied: it is out of order"
            )
        if number > last + 1:
            return f"sequence {number} follows {last} ({last_doc}): {number - last - 1} missing"
        return f"sequence {number} follows {last} ({last_doc})"
    return f"sequence {number}, the order's first numbered change"
