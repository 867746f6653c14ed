"""A CSV of decisions for ``respond``, ``despatch`` or ``invoice --csv FILE`` (ADR 0038).

UTF-8 (a BOM is allowed), comma-separated, a header row naming the columns (any order, any
case; unknown names are refused). One row per order, or several rows per order, one per line:
the rows of one order are those with the same ``order`` value, wherever they are. The order's
columns (its decision, carrier, reason, ``force`` ...) may be repeated on its later rows or left
blank there, never given differently. A blank cell is "not given", as an option left out.

=========  ===================================================================================
respond    ``order``, ``decision`` (``ack``, ``accept``, ``reject``, ``change``; or ``AB``,
           ``AP``, ``RE``, ``CA``), ``reason``, ``discount``, ``force``; per line ``line``,
           ``quantity``, ``date`` (a changed quantity and date), ``note``, ``substitute_item``,
           ``substitute_name``, ``item_id`` (the seller's item ID, for a line the order named
           without one); ``charge`` (``KIND:AMOUNT[:VATCAT:RATE]``) adds a charge on any row
despatch   ``order``, ``carrier``, ``tracking``, ``date``, ``eta``, ``boxes``, ``force``; per
           line ``line``, ``quantity``, ``item_id`` (the seller's item ID, for a line the
           order named without one; a row may give it without a quantity)
invoice    ``order``, ``credit``, ``debit``, ``amount``, ``tax_category``, ``tax_rate``,
           ``reason``, ``force``, ``rebill_credited``; per line ``line``, ``quantity``
=========  ===================================================================================

``force`` and ``rebill_credited`` take ``yes``/``no`` (``true``/``false``, ``1``/``0``).
Quantities and amounts are decimal numbers with a point; dates are ``YYYY-MM-DD``.

Every problem of the file is found before anything is issued, and any one refuses the whole
file (``BAD_CSV``): the message names the file, each bad row and its column. Rows are numbered
as a spreadsheet shows them (the header is row 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.bulk import Item

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ORDER_COLUMNS = {
    "respond": ("decision", "reason", "discount", "force"),
    "despatch": ("carrier", "tracking", "date", "eta", "boxes", "force"),
    "invoice": (
        "credit",
        "debit",
        "amount",
        "tax_category",
        "tax_rate",
        "reason",
        "force",
        "rebill_credited",
    ),
}
"""Per command: the columns that hold one value per order."""
LINE_COLUMNS = {
    "respond": (
        "line",
        "quantity",
        "date",
        "note",
        "substitute_item",
        "substitute_name",
        "item_id",
        "charge",
    ),
    "despatch": ("line", "quantity", "item_id"),
    "invoice": ("line", "quantity"),
}
"""Per command: the columns of one row (a line, or a charge)."""
CHECKED = {"respond": "decision", "despatch": "line", "invoice": "line"}
"""The column a refusal of the whole request names (a rejection without a reason ...)."""
DECISIONS = {"ack": "AB", "accept": "AP", "reject": "RE", "change": "CA"}
YES, NO = {"yes", "true", "1", "y"}, {"no", "false", "0", "n", ""}
MAX_ERRORS = 50


class Problem(ValueError):
    """A cell that is not what its column takes."""


@dataclass
class _Order:
    """The rows of one order, as read."""

    ref: str
    rows: list[int] = field(default_factory=list)
    values: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Order column -> (value, row it was given on)."""
    lines: list[tuple[int, dict[str, str]]] = field(default_factory=list)


class CsvRefused(GatewayError):
    """The CSV has bad rows; nothing was issued."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        shown = problems[:MAX_ERRORS]
        more = len(problems) - len(shown)
        super().__init__(
            ErrorCode.BAD_CSV,
            f"{path}: {len(problems)} problem(s), nothing was issued: "
            + "; ".join(shown)
            + (f"; and {more} more" if more else ""),
        )
        self.problems = problems


def read(session: Session, command: str, path: Path) -> list[Item]:
    """The items of the CSV ``path`` for ``command``, or :class:`CsvRefused` listing every
    problem (file, row, column)."""
    from edi_gateway.store.queries import find_order

    problems: list[str] = []
    orders = _rows(command, path, problems)
    items: list[Item] = []
    seen: dict[int, int] = {}
    for order in orders:
        first = order.rows[0]
        try:
            order_id = find_order(session, order.ref).id
        except GatewayError as exc:
            problems.append(f"row {first} column order: {exc.code}: {exc.message}")
            continue
        if order_id in seen:
            problems.append(
                f"row {first} column order: {order.ref!r} is the order of row {seen[order_id]} "
                "again; give each order once (one document per order and file)"
            )
            continue
        seen[order_id] = first
        try:
            request, force = BUILDERS[command](order)
        except Problem as exc:
            problems.append(str(exc))
            continue
        try:
            precheck(command, request)
        except GatewayError as exc:
            column = CHECKED[command]
            problems.append(f"{_where(order)} column {column}: {exc.code}: {exc.message}")
            continue
        items.append(Item(order_id, request, force, f"{path.name} {_where(order)}"))
    if problems:
        raise CsvRefused(path, problems)
    return items


def _where(order: _Order) -> str:
    rows = order.rows
    return f"row {rows[0]}" if len(rows) == 1 else f"rows {rows[0]}-{rows[-1]}"


def _rows(command: str, path: Path, problems: list[str]) -> list[_Order]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise GatewayError(
            ErrorCode.SOURCE_UNREADABLE, f"cannot read {path}: {exc.strerror}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise CsvRefused(path, [f"not UTF-8 text (byte {exc.start})"]) from exc
    # newline="": a quoted cell keeps its line breaks (a note over two lines), as csv wants
    reader = csv.reader(io.StringIO(text, newline=""))
    header = _header(command, path, next(reader, []))
    orders: dict[str, _Order] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) != len(header):
            problems.append(f"row {number}: {len(cells)} cells, the header has {len(header)}")
            continue
        row = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
        if not row["order"]:
            problems.append(f"row {number} column order: empty")
            continue
        order = orders.setdefault(row["order"], _Order(row["order"]))
        order.rows.append(number)
        _add_row(command, order, number, row, problems)
    if not orders and not problems:
        problems.append("no rows under the header")
    return list(orders.values())


def _header(command: str, path: Path, cells: list[str]) -> list[str]:
    header = [name.strip().lower() for name in cells]
    problems = []
    allowed = {"order", *ORDER_COLUMNS[command], *LINE_COLUMNS[command]}
    for name in header:
        if name not in allowed:
            problems.append(
                f"row 1 column {name!r}: not a column of {command} "
                f"(expected: {', '.join(sorted(allowed))})"
            )
    if len(set(header)) != len(header):
        problems.append("row 1: a column is named twice")
    if "order" not in header:
        problems.append("row 1: no 'order' column")
    if problems:
        raise CsvRefused(path, problems)
    return header


def _add_row(
    command: str, order: _Order, number: int, row: dict[str, str], problems: list[str]
) -> None:
    """Add a row's values to its order's; a value the order's earlier rows gave differently is
    a problem."""
    for name in ORDER_COLUMNS[command]:
        value = row.get(name, "")
        if not value:
            continue
        given = order.values.setdefault(name, (value, number))
        if given[0] != value:
            problems.append(
                f"row {number} column {name}: {value!r}, but row {given[1]} gave "
                f"{given[0]!r} for the same order"
            )
    line = {name: row.get(name, "") for name in LINE_COLUMNS[command]}
    if any(line.values()):
        order.lines.append((number, line))


def _cell(order: _Order, name: str) -> str | None:
    value = order.values.get(name)
    return value[0] if value else None


def _parsed(where: str, name: str, text: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(text)
    except (Problem, ValueError, InvalidOperation) as exc:
        raise Problem(f"{where} column {name}: {exc}") from exc


def _order_value(order: _Order, name: str, parse: Callable[[str], Any]) -> Any:
    text = _cell(order, name)
    if text is None:
        return None
    return _parsed(f"row {order.values[name][1]}", name, text, parse)


def number(text: str) -> Decimal:
    """A finite decimal number such as ``12.50``."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise Problem(f"{text!r} is not a number such as 12.50")
    return value


def day(text: str) -> date:
    """A ``YYYY-MM-DD`` date."""
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise Problem(f"{text!r} is not a date YYYY-MM-DD") from exc


def yes_no(text: str) -> bool:
    """``yes``/``no`` and their spellings."""
    if text.lower() in YES:
        return True
    if text.lower() in NO:
        return False
    raise Problem(f"{text!r}: expected yes or no")


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise Problem(f"{text!r}: expected a whole number of boxes, 1 or more")
    return int(text)


def _decision(text: str) -> str:
    code = DECISIONS.get(text.lower(), text.upper())
    if code not in DECISIONS.values():
        raise Problem(f"{text!r}: expected ack, accept, reject or change (or AB, AP, RE, CA)")
    return code


def _line_id(number_: int, line: dict[str, str], *, needed: bool = True) -> str:
    if not line["line"] and needed:
        raise Problem(f"row {number_} column line: empty, but the row gives a line's values")
    return line["line"]


def _quantities(
    order: _Order, rows: list[tuple[int, dict[str, str]]] | None = None
) -> tuple[tuple[str, Decimal], ...]:
    out = []
    for at, line in order.lines if rows is None else rows:
        line_id = _line_id(at, line)
        if not line["quantity"]:
            raise Problem(f"row {at} column quantity: empty; give the line's quantity")
        out.append((line_id, _parsed(f"row {at}", "quantity", line["quantity"], number)))
    return tuple(out)


def _respond(order: _Order) -> tuple[Any, bool]:
    from edi_gateway.outbound.charges import parse_charge, parse_discount
    from edi_gateway.outbound.respond import Decision, LineChange, promoted

    code = _order_value(order, "decision", _decision)
    if code is None:
        raise Problem(f"row {order.rows[0]} column decision: empty; give the order's decision")
    changes, notes, substitutes, charges, item_ids = [], [], [], [], []
    for at, line in order.lines:
        where = f"row {at}"
        if line["charge"]:
            charges.append(_parsed(where, "charge", line["charge"], parse_charge))
        if not any(v for k, v in line.items() if k != "charge"):
            continue
        line_id = _line_id(at, line)
        if line["quantity"]:
            quantity = _parsed(where, "quantity", line["quantity"], number)
            when = _parsed(where, "date", line["date"], day) if line["date"] else None
            changes.append(LineChange(line_id, quantity, when))
        elif line["date"]:
            raise Problem(f"{where} column quantity: empty; a changed date goes with a quantity")
        if line["note"]:
            notes.append((line_id, line["note"]))
        if line["substitute_item"] or line["substitute_name"]:
            substitutes.append((line_id, line["substitute_item"], line["substitute_name"]))
        if line["item_id"].strip():
            item_ids.append((line_id, line["item_id"].strip()))
    decision = promoted(  # as the single-order command: lines (the charges) go on a CA only
        Decision(
            code,
            _cell(order, "reason"),
            tuple(changes),
            tuple(notes),
            tuple(substitutes),
            tuple(charges),
            _order_value(order, "discount", parse_discount),
            tuple(item_ids),
        )
    )
    return decision, bool(_order_value(order, "force", yes_no))


def _despatch(order: _Order) -> tuple[Any, bool]:
    from edi_gateway.outbound.despatch import DespatchRequest
    from edi_gateway.outbound.packing import Packing

    # a row with an item ID and no quantity gives the ID only
    counted = [(at, line) for at, line in order.lines if line["quantity"] or not line["item_id"]]
    request = DespatchRequest(
        _quantities(order, counted),
        _cell(order, "carrier"),
        _cell(order, "tracking"),
        _order_value(order, "date", day),
        _order_value(order, "eta", day),
        Packing(_order_value(order, "boxes", _count)),
        tuple(
            (_line_id(at, line), line["item_id"].strip())
            for at, line in order.lines
            if line["item_id"].strip()
        ),
    )
    return request, bool(_order_value(order, "force", yes_no))


def _invoice(order: _Order) -> tuple[Any, bool]:
    from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest
    from edi_gateway.outbound.invoice_amount import fee_vat

    request = InvoiceRequest(
        lines=tuple(LineRequest(line_id, quantity) for line_id, quantity in _quantities(order)),
        amount=_order_value(order, "amount", number),
        vat=fee_vat(_cell(order, "tax_category"), _order_value(order, "tax_rate", number)),
        credit_of=_cell(order, "credit"),
        debit_of=_cell(order, "debit"),
        reason=_cell(order, "reason"),
        rebill_credited=bool(_order_value(order, "rebill_credited", yes_no)),
    )
    return request, bool(_order_value(order, "force", yes_no))


BUILDERS: dict[str, Callable[[_Order], tuple[Any, bool]]] = {
    "respond": _respond,
    "despatch": _despatch,
    "invoice": _invoice,
}


def precheck(command: str, request: Any) -> None:
    """What the single-order command refuses before it reads the store: a request that can
    never be issued, whatever the order's state (a rejection without a reason ...)."""
    if command == "respond":
        from edi_gateway.outbound.respond import check_decision

        check_decision(request)
    elif command == "invoice":
        from edi_gateway.outbound.invoice import check_request

        check_request(request)
    else:
        from edi_gateway.outbound.despatch import check_request as check_despatch

        check_despatch(request)
