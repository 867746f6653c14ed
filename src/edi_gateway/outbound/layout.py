"""Supplier layouts: data in ``mappings/<supplier id>/``, rendered from the domain Order.

Two kinds, chosen by the file name of layout ``NAME``:

- ``NAME.<ext>.j2``: a Jinja2 template (XML, CSV, fixed-width text...) whose output is a
  ``.<ext>`` file. It runs in a sandbox (``SandboxedEnvironment``) with ``StrictUndefined``
  (a misspelt field is an error, never an empty string) and, for ``.xml``, autoescaping.
  The template sees ``order`` (a :class:`~edi_gateway.domain.documents.Order`), ``lines``,
  ``buyer``, ``seller``, ``supplier`` (the partner id), ``sent_on`` (a date), ``cancelled``
  (true when the file tells the supplier the order is cancelled) and ``cancellation`` (then
  the cancellation's ID and reason, else none), ``delivery`` (``order.delivery``, never none:
  empty fields when the order says nothing, with ``address`` and ``contact`` always there),
  ``order_type`` (the type's name and code, ``blanket order (221)``), plus the filters
  ``fixed(width, align='<')``, ``num(places=2, point='.')``, ``day(fmt)`` and
  ``csv(delimiter=';')``.
- ``NAME.columns.yaml``: an Excel column map: ``sheet`` (title, ``{order}`` allowed),
  ``header_row``, optional ``labels`` (fixed text) and ``cells`` (fields) above the table,
  ``columns``: ``title`` -> ``field`` path such as ``line.quantity.value`` or
  ``order.buyer.name`` or ``order.delivery.address.city``, optional ``number_format``. One
  sheet per order; a cancelled order's sheet is titled ``CANCELLED <title>`` and says
  CANCELLED and why right of the table's header.

Layouts are checked when gateway.yaml is loaded (:func:`layout_problem`), so a typo in a
template or a column map stops start-up rather than a forward.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edi_gateway.domain.documents import DocumentKind, Line, Order, Party, PartyId, Quantity
from edi_gateway.domain.order_data import Address, Contact, Delivery, order_type_name
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.render import XLSX_MEDIA_TYPE

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.sandbox import SandboxedEnvironment

CANCELLED = "CANCELLED"
"""The mark of a cancelled order in a column-map workbook (layouts are not translated)."""
TEMPLATE_SUFFIX = ".j2"
COLUMNS_SUFFIX = ".columns.yaml"
MEDIA_TYPES = {
    "xml": "application/xml",
    "csv": "text/csv",
    "txt": "text/plain",
    "xlsx": XLSX_MEDIA_TYPE,
}


class LayoutError(GatewayError):
    """A layout is missing, malformed, or failed to render an order."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.CONFIG_INVALID, message)


@dataclass(frozen=True, slots=True)
class Layout:
    """A supplier layout found on disk: a template or an Excel column map."""

    supplier: str
    name: str
    path: Path
    kind: Literal["template", "columns"]
    extension: str

    @property
    def media_type(self) -> str:
        """The media type of the files this layout writes."""
        return MEDIA_TYPES.get(self.extension, "application/octet-stream")


class _Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str
    field: str
    number_format: str | None = None


class ColumnMap(BaseModel):
    """An Excel column map: where the table goes and which field fills each column."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sheet: str = "{order}"
    header_row: int = Field(default=1, ge=1, le=1000)
    labels: dict[str, str] = Field(default_factory=dict)
    cells: dict[str, str] = Field(default_factory=dict)
    columns: list[_Column] = Field(min_length=1)


def find_layout(mappings: Path, supplier: str, name: str) -> Layout:
    """The layout ``name`` of ``supplier``; LayoutError naming the ones there are if none."""
    folder = mappings / supplier
    found = sorted(folder.glob(f"{name}.*{TEMPLATE_SUFFIX}")) + sorted(
        folder.glob(f"{name}{COLUMNS_SUFFIX}")
    )
    found = [p for p in found if _layout_name(p) == name]
    if len(found) != 1:
        known = ", ".join(sorted({n for p in _files(folder) if (n := _layout_name(p))}))
        what = "no layout" if not found else "more than one layout"
        raise LayoutError(
            f"{what} {name!r} in {folder}, expected one file {name}.<ext>{TEMPLATE_SUFFIX} or "
            f"{name}{COLUMNS_SUFFIX}; layouts there: {known or 'none'}"
        )
    path = found[0]
    if path.name.endswith(COLUMNS_SUFFIX):
        return Layout(supplier, name, path, "columns", "xlsx")
    extension = path.name.removesuffix(TEMPLATE_SUFFIX).rsplit(".", 1)[1].lower()
    return Layout(supplier, name, path, "template", extension)


def layout_problem(
    mappings: Path, supplier: str, name: str, *, workbook: bool = False
) -> str | None:
    """Why layout ``name`` cannot be used (missing, bad syntax, unknown field), else None."""
    try:
        layout = find_layout(mappings, supplier, name)
        if workbook and layout.kind != "columns":
            return (
                f"found template {layout.path.name}, expected an Excel column map "
                f"({name}{COLUMNS_SUFFIX}) for bundle: workbook"
            )
        if layout.kind == "columns":
            load_columns(layout)
        else:
            _template(layout)
    except LayoutError as exc:
        return exc.message
    return None


def render_template(
    layout: Layout, order: Order, *, supplier: str, sent_on: date, cancelled: str | None = None
) -> bytes:
    """The template's output for ``order``, UTF-8 encoded (``cancelled``: see the module)."""
    template = _template(layout)
    context = {
        "order": order,
        "delivery": _delivery(order),
        "order_type": order_type_name(order.order_type),
        "lines": order.lines,
        "buyer": order.buyer or Party(),
        "seller": order.seller or Party(),
        "supplier": supplier,
        "sent_on": sent_on,
        "cancelled": cancelled is not None,
        "cancellation": cancelled,
    }
    try:
        return template.render(context).encode("utf-8")
    except Exception as exc:  # any template fault is the layout's, never the gateway's
        raise LayoutError(
            f"layout {layout.path} failed on order {order.document_id}: "
            f"{type(exc).__name__}: {exc}"
            + (
                " (a number too large or too precise to format)"
                if isinstance(exc, ArithmeticError)
                else ""
            )
        ) from exc


def _delivery(order: Order) -> Delivery:
    """The order's delivery with every nested part present (a template reads, never tests)."""
    found = dataclasses.replace(order.delivery) if order.delivery else Delivery()
    found.address = found.address or Address()
    found.contact = found.contact or Contact()
    return found


def columns_workbook(layout: Layout, orders: list[Order], *, cancelled: str | None = None) -> bytes:
    """An .xlsx of ``orders`` by the column map: one sheet per order (``cancelled``: see the
    module docstring). Written in openpyxl's write-only mode, row by row (docs/adr/0039)."""
    from edi_gateway.outbound.render.xlsx import Book, Grid, styled, write_rows

    spec = load_columns(layout)
    labels = [(_coordinate(layout, cell), text) for cell, text in spec.labels.items()]
    fields = [(_coordinate(layout, cell), path) for cell, path in spec.cells.items()]
    book = Book()
    used: set[str] = set()
    for order in orders:
        wanted = spec.sheet.format(order=order.document_id)
        title = _sheet_title(f"{CANCELLED} {wanted}" if cancelled is not None else wanted, used)
        sheet = book.sheet(title)
        grid: Grid = {}  # later entries win, as later writes to a cell would
        if cancelled is not None:
            mark = len(spec.columns) + 2
            grid.setdefault(spec.header_row, {})[mark] = CANCELLED
            grid.setdefault(spec.header_row + 1, {})[mark] = cancelled
        for (row, col), text in labels:
            grid.setdefault(row, {})[col] = text
        for (row, col), path in fields:
            grid.setdefault(row, {})[col] = _cell(resolve(path, order, None))
        for col, column in enumerate(spec.columns, start=1):
            grid.setdefault(spec.header_row, {})[col] = column.title
        for row, line in enumerate(order.lines, start=spec.header_row + 1):
            cells = grid.setdefault(row, {})
            for col, column in enumerate(spec.columns, start=1):
                value = _cell(resolve(column.field, order, line))
                if column.number_format:
                    value = styled(sheet, value, number_format=column.number_format)
                cells[col] = value
        write_rows(sheet, grid)
        book.done(sheet)
    if not used:
        book.done(book.sheet("orders"))
    return book.save()


MAX_ROW, MAX_COLUMN = 1_048_576, 16_384
"""A worksheet's last row and column (XFD) in Excel and LibreOffice."""
_CELL = re.compile(r"([A-Za-z]{1,3})([0-9]{1,7})")


def _coordinate(layout: Layout, cell: str) -> tuple[int, int]:
    """``B3`` as (row 3, column 2); LayoutError for anything else (a range, a typo, a cell
    outside the sheet). Parsed here, not by openpyxl, whose import was most of what
    validating a config costs (a command after each change of it, docs/adr/0041)."""
    found = _CELL.fullmatch(cell) if isinstance(cell, str) else None
    if found is not None:
        letters, digits = found.groups()
        column = 0
        for letter in letters.upper():
            column = column * 26 + ord(letter) - ord("A") + 1
        row = int(digits)
        if 1 <= row <= MAX_ROW and column <= MAX_COLUMN:
            return row, column
    raise LayoutError(
        f"{layout.path}: cell {cell!r}, expected a cell such as B3 (A1 to XFD1048576)"
    )


def load_columns(layout: Layout) -> ColumnMap:
    """The column map of ``layout``, with every field path checked."""
    import yaml

    from edi_gateway.config.yamlsafe import safe_loader

    try:
        text = layout.path.read_text(encoding="utf-8")
        spec = ColumnMap.model_validate(yaml.load(text, Loader=safe_loader()))  # noqa: S506
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise LayoutError(f"{layout.path}: not a column map ({exc})") from exc
    for cell in (*spec.labels, *spec.cells):
        _coordinate(layout, cell)
    sample = _sample_order()
    paths = [*(c.field for c in spec.columns), *spec.cells.values()]
    for path in paths:
        try:
            resolve(path, sample, sample.lines[0], strict=True)
        except LayoutError as exc:
            raise LayoutError(f"{layout.path}: {exc.message}") from exc
    if "{" in spec.sheet.replace("{order}", ""):
        raise LayoutError(f"{layout.path}: sheet {spec.sheet!r}, expected only {{order}} in it")
    return spec


def resolve(path: str, order: Order, line: Line | None, *, strict: bool = False) -> object:
    """The value at ``order.a.b`` / ``line.a.b`` (None when a step is empty)."""
    root, *steps = path.split(".")
    value: object = {"order": order, "line": line}.get(root, ...)
    if value is ... or (root == "line" and line is None and strict):
        raise LayoutError(f"field {path!r}, expected it to start with order. or line.")
    for step in steps:
        if value is None:
            return None
        names = {f.name for f in dataclasses.fields(cast(Any, value))} if _is_data(value) else set()
        if step not in names:
            raise LayoutError(f"field {path!r}: {step!r} is not a field here")
        value = getattr(value, step)
    if strict and (isinstance(value, list | dict) or _is_data(value)):
        raise LayoutError(f"field {path!r} is not a single value; name one of its fields")
    return value


def _is_data(value: object) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _cell(value: object) -> object:
    if value is None or isinstance(value, str | int | Decimal | date | bool):
        return value
    return str(value)


def _sample_order() -> Order:
    party = Party(endpoint=PartyId("x", "0088"), ids=[], name="x", company_id=PartyId("x"))
    qty = Quantity(Decimal(1), "C62")
    line = Line("1", quantity=qty, backorder_quantity=qty)
    delivery = Delivery(address=Address(), contact=Contact())
    return Order(
        DocumentKind.ORDER,
        "x",
        buyer=party,
        seller=party,
        lines=[line],
        delivery=delivery,
        buyer_contact=Contact(),
        seller_contact=Contact(),
    )


def _template(layout: Layout) -> Template:
    from jinja2 import TemplateError

    env = _environment(autoescape=layout.extension == "xml")
    try:
        return env.from_string(layout.path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TemplateError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" line {line}" if line else ""
        raise LayoutError(f"{layout.path}{where}: not a usable template ({exc})") from exc


def _environment(*, autoescape: bool) -> SandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fixed=_fixed, num=_num, day=_day, csv=_csv)
    return env


def _fixed(value: object, width: int, align: str = "<") -> str:
    text = "" if value is None else str(value)
    text = text[:width]
    return text.rjust(width) if align == ">" else text.ljust(width)


def _num(value: object, places: int = 2, point: str = ".") -> str:
    if value is None:
        return ""
    number = Decimal(str(value)).quantize(Decimal(1).scaleb(-places))
    return f"{number:f}".replace(".", point)


def _day(value: date | None, fmt: str = "%Y-%m-%d") -> str:
    return value.strftime(fmt) if value else ""


def _csv(value: object, delimiter: str = ";") -> str:
    text = "" if value is None else str(value)
    if any(c in text for c in (delimiter, '"', "\n", "\r")):
        return '"' + text.replace('"', '""') + '"'
    return text


def _sheet_title(wanted: str, used: set[str]) -> str:
    base = "".join("_" if c in "[]:*?/\\" else c for c in wanted)[:31] or "order"
    title, n = base, 1
    while title.lower() in used:
        n += 1
        title = f"{base[: 31 - len(str(n)) - 1]}-{n}"
    used.add(title.lower())
    return title


def _files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _layout_name(path: Path) -> str | None:
    if path.name.endswith(COLUMNS_SUFFIX):
        return path.name.removesuffix(COLUMNS_SUFFIX)
    stem = path.name.removesuffix(TEMPLATE_SUFFIX)
    if path.name.endswith(TEMPLATE_SUFFIX) and "." in stem:
        return stem.rsplit(".", 1)[0]
    return None
