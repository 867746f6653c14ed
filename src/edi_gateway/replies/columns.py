"""The column map of a supplier's CSV / Excel reply: model, loader and validation.

A column map is data (YAML in ``mappings/<supplier>/replies/<name>.yaml``). It names the kind of
document the file answers with, how the file is encoded, and which of the supplier's column
titles holds each of our fields. Everything wrong with a map is a :class:`ConfigError` whose
message names the file and the key.

Keys (unknown keys are refused):

``kind``
    ``confirmation`` (-> OrderResponse), ``despatch`` (-> DespatchAdvice) or ``invoice``
    (-> Invoice 380).
``format``
    ``csv`` or ``xlsx``. CSV only: ``encoding`` (a Python codec, default ``utf-8-sig``) and
    ``delimiter`` (one character, default ``,``). XLSX only: ``sheet`` (a name, or a position
    where 1 is the first sheet; default the first sheet).
``header_row``
    The 1-based row (CSV: line) with the column titles, default 1; rows above it are ignored.
``columns``
    Our field -> the supplier's column title (matched ignoring case and spacing). Every title
    named must be in the file unless ``defaults`` covers the field. Fields per kind are in
    :data:`FIELDS`, the required ones in :data:`REQUIRED`: ``order_id``, ``line_id`` (the
    order line), ``quantity`` (confirmed / delivered / invoiced) always; ``price`` and
    ``invoice_number``, ``invoice_date``, ``payment_reference`` and ``payable_amount`` (the
    total the supplier bills, checked against its lines) for invoices, which may also give
    ``payment_means_code`` (UNCL 4461), ``payment_account`` (IBAN, Bankgiro ...),
    ``payment_account_branch`` (BIC, ``SE:BANKGIRO`` ...), ``payment_terms``,
    ``invoice_note`` and ``tax_amount`` (checked too).
``date_format``
    ``strptime`` format of dates written as text, default ``%Y-%m-%d`` (Excel date cells
    need none).
``decimal_comma``
    ``true`` for numbers written ``1.234,50``; default ``false`` (``1,234.50``). Number cells of
    a workbook are exact either way.
``status_values``
    Confirmation with a ``status`` column: the supplier's text -> ``accepted`` / ``changed`` /
    ``rejected``.
``defaults``
    Field -> value used when the column is absent or the cell empty (e.g. ``unit: C62``,
    ``currency: EUR``, ``vat_category: S``); never for an identifier, an amount billed, an
    account or a payment reference (:data:`NO_DEFAULT`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edi_gateway.config.yamlsafe import safe_loader
from edi_gateway.errors import ConfigError

__all__ = [
    "FIELDS",
    "REQUIRED",
    "ReplyKind",
    "ReplyMap",
    "load_map",
    "normalize_title",
    "parse_map",
]


class ReplyKind(StrEnum):
    """What a reply file says: confirmed lines, a shipment, or invoice lines."""

    CONFIRMATION = "confirmation"
    DESPATCH = "despatch"
    INVOICE = "invoice"


INVOICE_HEADER = (
    "payment_means_code",
    "payment_account",
    "payment_account_branch",
    "payment_reference",
    "payment_terms",
    "invoice_note",
    "payable_amount",
    "tax_amount",
)
"""An invoice's fields beyond its lines: how and where to pay, the note, the totals stated."""

_LINE_FIELDS = frozenset(
    {
        "order_id",
        "line_id",
        "quantity",
        "unit",
        "item_name",
        "seller_item_id",
        "buyer_item_id",
        "standard_item_id",
        "note",
    }
)

FIELDS: MappingProxyType[ReplyKind, frozenset[str]] = MappingProxyType(
    {
        ReplyKind.CONFIRMATION: _LINE_FIELDS
        | {"status", "ordered_quantity", "delivery_date", "price"},
        ReplyKind.DESPATCH: _LINE_FIELDS
        | {
            "despatch_id",
            "despatch_date",
            "estimated_delivery_date",
            "carrier",
            "tracking_id",
            "backorder_quantity",
        },
        ReplyKind.INVOICE: _LINE_FIELDS
        | {
            "invoice_number",
            "invoice_date",
            "due_date",
            "currency",
            "price",
            "line_amount",
            "vat_rate",
            "vat_category",
            *INVOICE_HEADER,
        },
    }
)
"""Our fields a map of each kind may name in ``columns`` (or give in ``defaults``)."""

REQUIRED: MappingProxyType[ReplyKind, frozenset[str]] = MappingProxyType(
    {
        ReplyKind.CONFIRMATION: frozenset({"order_id", "line_id", "quantity"}),
        ReplyKind.DESPATCH: frozenset({"order_id", "line_id", "quantity"}),
        ReplyKind.INVOICE: frozenset(
            {
                "order_id",
                "line_id",
                "quantity",
                "price",
                "invoice_number",
                "invoice_date",
                "payment_reference",
                "payable_amount",
            }
        ),
    }
)
"""Fields every map of the kind must map to a column. An invoice row must also give (from a
column or the map's ``defaults``) ``currency``, ``vat_category``, ``vat_rate`` (unless the
category is rated 0), ``payment_means_code`` and, for a credit transfer (30, 58),
``payment_account``: nothing of an invoice is made up (docs/adr/0026-faithful-relays.md)."""

IDENTITY_FIELDS = frozenset({"order_id", "line_id", "despatch_id", "invoice_number"})
"""Fields that identify something and so can never have a default."""

NO_DEFAULT = IDENTITY_FIELDS | {
    "payment_account",
    "payment_account_branch",
    "payment_reference",
    "payable_amount",
    "tax_amount",
}
"""Fields that can never have a default: identifiers, and what an invoice bills and where it
is paid (they differ from one invoice to the next, or must be the supplier's own)."""

STATUS_WORDS = ("accepted", "changed", "rejected")
"""What ``status_values`` may translate a supplier's status text into."""

_DATE_DIRECTIVES = re.compile(r"%[dmyYbB]")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplyMap(_Model):
    """One supplier reply layout: what the file is and where each of our fields lives.

    ``sheet`` is a worksheet name or its position (1 = the first sheet); ``header_row`` the
    1-based row (CSV: line) holding the column titles. ``status_values`` translates the
    supplier's status texts (compared case-insensitively) into ``accepted`` / ``changed`` /
    ``rejected``. ``defaults`` gives a value for a field whose column is absent or empty.
    """

    kind: ReplyKind
    format: Literal["csv", "xlsx"]
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    sheet: str | int | None = None
    header_row: int = Field(default=1, ge=1, le=1000)
    date_format: str = "%Y-%m-%d"
    decimal_comma: bool = False
    columns: dict[str, str]
    status_values: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, str] = Field(default_factory=dict)
    source: str = Field(default="", exclude=True)
    """The file the map was loaded from (for messages); not a YAML key."""

    def title(self, field: str) -> str | None:
        """The supplier's column title of ``field``, or None when the map does not name it."""
        return self.columns.get(field)


def load_map(path: Path) -> ReplyMap:
    """Read and validate the column map at ``path``.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or breaks a rule of the map schema;
            the message names the file and the offending key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the column map: {exc}") from exc
    try:
        data = yaml.load(text, Loader=safe_loader())  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_map(data, str(path))


def parse_map(data: Any, source: str) -> ReplyMap:
    """Validate ``data`` (the parsed YAML) as a column map; ``source`` names it in messages."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a column map must be a mapping of keys, not {data!r}")
    if "source" in data:
        raise ConfigError(f"{source}: source: is not a key of a column map")
    try:
        mapping = ReplyMap.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc
    _check(mapping)
    return mapping


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = "" if err["type"] == "missing" else f" (found {value!r})"
        parts.append(f"{where}: {err['msg']}{shown}")
    return "; ".join(parts)


def _check(mapping: ReplyMap) -> None:
    """The rules pydantic cannot say: fields per kind, required columns, sensible values."""
    src, kind = mapping.source, mapping.kind
    allowed = FIELDS[kind]
    for section, names in (("columns", mapping.columns), ("defaults", mapping.defaults)):
        for name in names:
            if name not in allowed:
                raise ConfigError(
                    f"{src}: {section}.{name} is not a field of a {kind} map; "
                    f"allowed: {', '.join(sorted(allowed))}"
                )
    for name, title in mapping.columns.items():
        if not title.strip():
            raise ConfigError(f"{src}: columns.{name}: the column title is empty")
    missing = sorted(REQUIRED[kind] - set(mapping.columns))
    if missing:
        raise ConfigError(
            f"{src}: columns: a {kind} map must name the column of {', '.join(missing)}"
        )
    titles = [normalize_title(t) for t in mapping.columns.values()]
    twice = sorted({t for t in titles if titles.count(t) > 1})
    if twice:
        raise ConfigError(f"{src}: columns: the title(s) {twice} are mapped to two fields")
    for name in mapping.defaults:
        if name in IDENTITY_FIELDS:
            raise ConfigError(f"{src}: defaults.{name}: an identifier cannot have a default")
        if name in NO_DEFAULT:
            raise ConfigError(
                f"{src}: defaults.{name}: what an invoice bills, and its account and payment "
                "reference, come from the supplier's file, never from a default"
            )
    _check_format(mapping)
    _check_status(mapping)


def _check_format(mapping: ReplyMap) -> None:
    src = mapping.source
    if mapping.format == "csv":
        if len(mapping.delimiter) != 1 or mapping.delimiter in '"\r\n':
            raise ConfigError(
                f"{src}: delimiter: must be one character other than a quote or a line break, "
                f"not {mapping.delimiter!r}"
            )
        if mapping.sheet is not None:
            raise ConfigError(f"{src}: sheet: only an xlsx map has a sheet")
        try:
            "".encode(mapping.encoding)
        except LookupError:
            raise ConfigError(
                f"{src}: encoding: {mapping.encoding!r} is not an encoding Python knows"
            ) from None
    else:
        for key in ("encoding", "delimiter"):
            if key in mapping.model_fields_set:
                raise ConfigError(f"{src}: {key}: only a csv map sets {key}")
        if isinstance(mapping.sheet, int) and mapping.sheet < 1:
            raise ConfigError(f"{src}: sheet: a sheet position starts at 1, not {mapping.sheet}")
    if not _DATE_DIRECTIVES.search(mapping.date_format):
        raise ConfigError(
            f"{src}: date_format: {mapping.date_format!r} has no day, month or year directive "
            "(e.g. %Y-%m-%d or %d.%m.%Y)"
        )


def _check_status(mapping: ReplyMap) -> None:
    src = mapping.source
    if mapping.status_values and "status" not in mapping.columns:
        raise ConfigError(f"{src}: status_values: given, but columns has no status column")
    for text, meaning in mapping.status_values.items():
        if meaning not in STATUS_WORDS:
            raise ConfigError(
                f"{src}: status_values.{text}: {meaning!r} is not one of {', '.join(STATUS_WORDS)}"
            )


def normalize_title(title: str) -> str:
    """A column title as compared with the file's: case-folded, inner whitespace collapsed."""
    return " ".join(title.split()).casefold()
