"""Rows of a supplier's reply -> domain documents: one document per order (and despatch/invoice).

Grouping: a confirmation makes one :class:`OrderResponse` per order ID; a despatch file one
:class:`DespatchAdvice` per (order ID, despatch ID); an invoice file one :class:`Invoice` per
invoice number (an invoice number spanning two orders is refused: the gateway ties an invoice to
one order). Groups keep the order in which they first appear in the file.

Document IDs: the file's despatch ID / invoice number; a despatch ID shared by several orders
becomes ``<despatch id>-<order id>`` (one advice per order, each ID unique). Without such a
column the ID is ``<file name without extension>-<order id>`` (whitespace as ``_``), so a
re-sent file yields the same IDs and the gateway's duplicate detection applies.

Line status of a confirmation (UNCL 1229 as Peppol T76 uses it):

* with a ``status`` column, its text decides through ``status_values`` (``accepted`` -> 5,
  ``changed`` -> 3, ``rejected`` -> 7; the codes ``5`` / ``3`` / ``7`` and the English words
  are always understood); an accepted line with an empty quantity takes the
  ``ordered_quantity`` when mapped, else it has no quantity (accepted as ordered, as in
  Peppol's examples); a changed line needs a quantity;
* without one (or with the cell empty), the quantities decide: confirmed 0 -> 7; confirmed
  differing from the ``ordered_quantity`` column -> 3; otherwise 5 (accepted with the confirmed
  quantity as given);
* a rejected line carries no quantity (as in Peppol's examples).

Response code: ``AP`` (accepted as ordered, no lines, as T76 wants) when every line is 5, each
one's acceptance is known from a status or an ordered quantity, and no line states a delivery
date, price or note; otherwise ``CA`` with every line of the file. Issue date and currency are
left for the caller; an invoice's issue date is its ``invoice_date``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from edi_gateway.domain.billing import InvoiceLine, compute
from edi_gateway.domain.documents import (
    DespatchAdvice,
    Document,
    DocumentKind,
    Invoice,
    Line,
    OrderResponse,
    Party,
)
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.replies.columns import ReplyKind, ReplyMap
from edi_gateway.replies.lines import PARSERS, Parsed
from edi_gateway.replies.rows import Fields, Problems, RowError
from edi_gateway.replies.tabular import read_table

__all__ = ["read_reply"]

INVOICE_TYPE = "380"
_BLANKS = re.compile(r"\s+")


def read_reply(
    payload: bytes,
    filename: str,
    mapping: ReplyMap,
    *,
    supplier: Party,
    buyer: Party | None = None,
) -> list[Document]:
    """Read a supplier's CSV / XLSX reply as OrderResponses, DespatchAdvices or Invoices.

    ``supplier`` becomes each document's seller, ``buyer`` (when known) its buyer; every
    document references the one order its rows name. See the module docstring for grouping,
    document IDs and the confirmation rules.

    Raises:
        DocumentError: EMPTY, BAD_ENCODING or NOT_WELL_FORMED for unreadable bytes;
            INTERPRETATION_FAILED for missing columns (naming expected and found titles), a file
            without data rows, or bad rows (each named by file, row and column; ``line`` is the
            first bad row).
    """
    name = filename.replace("\\", "/").rsplit("/", 1)[-1] or filename
    table = read_table(payload, name, mapping)
    fields = Fields(table, name, mapping)
    if not table.rows:
        raise DocumentError(
            ErrorCode.INTERPRETATION_FAILED,
            f"{name}: no data rows below header row {table.header_row}",
            line=table.header_row,
        )
    problems = Problems(name)
    parse = PARSERS[mapping.kind]
    parsed: list[Parsed] = []
    for row in table.rows:
        try:
            parsed.append(parse(fields, row))
        except RowError as exc:
            problems.add(exc)
    groups = _group(parsed, fields, problems)
    problems.raise_any()
    build = _BUILDERS[mapping.kind]
    shared = _shared_keys(groups)
    documents = [
        build(rows, _document_id(name, key, shared), supplier, buyer)
        for key, rows in groups.items()
    ]
    if mapping.kind is ReplyKind.INVOICE:
        _check_totals(fields, groups, documents)
    return documents


# --- groups -----------------------------------------------------------------------------------

_GroupKey = tuple[str, str | None]


def _group(
    parsed: list[Parsed], fields: Fields, problems: Problems
) -> dict[_GroupKey, list[Parsed]]:
    """Rows per document; rows that contradict their group's earlier rows become problems."""
    groups: dict[_GroupKey, list[Parsed]] = {}
    invoice_orders: dict[str, Parsed] = {}
    for item in parsed:
        if fields.mapping.kind is ReplyKind.INVOICE:
            assert item.key is not None
            first = invoice_orders.setdefault(item.key, item)
            if first.order_id != item.order_id:
                problems.add(
                    fields.error(
                        item.row,
                        "order_id",
                        f"invoice {item.key} is for order {first.order_id} (row "
                        f"{first.row.number}); one invoice must answer one order",
                    )
                )
                continue
        key = (item.order_id, item.key)
        group = groups.setdefault(key, [])
        try:
            _check_fits(fields, group, item)
        except RowError as exc:
            problems.add(exc)
            continue
        group.append(item)
    return groups


def _check_fits(fields: Fields, group: list[Parsed], item: Parsed) -> None:
    for name, value in item.header.items():
        if value is None:
            continue
        for other in group:
            theirs = other.header.get(name)
            if theirs is not None and theirs != value:
                raise fields.error(
                    item.row,
                    name,
                    f"{value} differs from {theirs} on row {other.row.number} of the same document",
                )
    if fields.mapping.kind is ReplyKind.CONFIRMATION:
        for other in group:
            if other.line.line_id == item.line.line_id:
                raise fields.error(
                    item.row,
                    "line_id",
                    f"line {item.line.line_id} of order {item.order_id} is already confirmed "
                    f"on row {other.row.number}",
                )


def _shared_keys(groups: dict[_GroupKey, list[Parsed]]) -> set[str]:
    """Despatch IDs used by more than one order (their advices get the order ID appended)."""
    seen: dict[str, int] = {}
    for _, key in groups:
        if key is not None:
            seen[key] = seen.get(key, 0) + 1
    return {key for key, count in seen.items() if count > 1}


def _document_id(filename: str, key: _GroupKey, shared: set[str]) -> str:
    """The despatch ID / invoice number, else one derived from the file name and order."""
    order_id, own = key
    if own is not None:
        return f"{own}-{order_id}" if own in shared else own
    stem = filename.rsplit(".", 1)[0] if "." in filename.lstrip(".") else filename
    return _BLANKS.sub("_", f"{stem}-{order_id}")


def _header(rows: list[Parsed], name: str) -> Any:
    return next((r.header[name] for r in rows if r.header.get(name) is not None), None)


def _numbered(rows: list[Parsed]) -> list[Line]:
    lines = [r.line for r in rows]
    for position, line in enumerate(lines, start=1):
        line.line_id = str(position)
    return lines


# --- documents --------------------------------------------------------------------------------


def _order_response(
    rows: list[Parsed], document_id: str, supplier: Party, buyer: Party | None
) -> Document:
    lines = [r.line for r in rows]
    plain = all(
        r.known and r.line.delivery_date is None and r.line.price is None and r.line.note is None
        for r in rows
    )
    return OrderResponse(
        kind=DocumentKind.ORDER_RESPONSE,
        document_id=document_id,
        seller=copy.deepcopy(supplier),
        buyer=copy.deepcopy(buyer),
        order_refs=[rows[0].order_id],
        response_code="AP" if plain else "CA",
        lines=[] if plain else lines,
    )


def _despatch_advice(
    rows: list[Parsed], document_id: str, supplier: Party, buyer: Party | None
) -> Document:
    return DespatchAdvice(
        kind=DocumentKind.DESPATCH_ADVICE,
        document_id=document_id,
        seller=copy.deepcopy(supplier),
        buyer=copy.deepcopy(buyer),
        order_refs=[rows[0].order_id],
        lines=_numbered(rows),
        carrier=_header(rows, "carrier"),
        tracking_id=_header(rows, "tracking_id"),
        despatch_date=_header(rows, "despatch_date"),
        estimated_delivery_date=_header(rows, "estimated_delivery_date"),
    )


def _invoice(
    rows: list[Parsed], document_id: str, supplier: Party, buyer: Party | None
) -> Document:
    """The supplier's invoice as its rows say it: every amount, the account, the payment
    reference and the note; the totals computed from its lines (checked against the ones the
    file states by :func:`_check_totals`)."""
    lines = _numbered(rows)
    invoice = Invoice(
        kind=DocumentKind.INVOICE,
        document_id=document_id,
        issue_date=_header(rows, "invoice_date"),
        currency=_header(rows, "currency"),
        seller=copy.deepcopy(supplier),
        buyer=copy.deepcopy(buyer),
        order_refs=[rows[0].order_id],
        lines=lines,
        type_code=INVOICE_TYPE,
        due_date=_header(rows, "due_date"),
        payment_means_code=_header(rows, "payment_means_code"),
        iban=_header(rows, "payment_account"),
        bic=_header(rows, "payment_account_branch"),
        payment_id=_header(rows, "payment_reference"),
        payment_terms=_header(rows, "payment_terms"),
    )
    note = _header(rows, "invoice_note")
    if note is not None:
        invoice.notes = [note]
    try:
        totals = compute([line for line in lines if isinstance(line, InvoiceLine)])
    except ValueError as exc:
        raise DocumentError(
            ErrorCode.INTERPRETATION_FAILED,
            f"invoice {document_id}: {exc}",
            line=rows[0].row.number,
        ) from exc
    invoice.tax_exclusive_amount = totals.tax_exclusive
    invoice.tax_amount = totals.tax_total
    invoice.payable_amount = totals.payable
    return invoice


def _check_totals(
    fields: Fields, groups: dict[_GroupKey, list[Parsed]], documents: list[Document]
) -> None:
    """The payable amount (and tax total) the file states must be what its lines make."""
    problems = Problems(fields.filename)
    for rows, document in zip(groups.values(), documents, strict=True):
        assert isinstance(document, Invoice)
        for name, computed in (
            ("payable_amount", document.payable_amount),
            ("tax_amount", document.tax_amount),
        ):
            stated = _header(rows, name)
            if stated is not None and stated != computed:
                problems.add(
                    fields.error(
                        rows[0].row,
                        name,
                        f"invoice {document.document_id} states {stated}, but its lines make "
                        f"{computed}: nothing is billed other than the supplier's lines say",
                    )
                )
    problems.raise_any()


_Builder = Callable[[list[Parsed], str, Party, Party | None], Document]
_BUILDERS: MappingProxyType[ReplyKind, _Builder] = MappingProxyType(
    {
        ReplyKind.CONFIRMATION: _order_response,
        ReplyKind.DESPATCH: _despatch_advice,
        ReplyKind.INVOICE: _invoice,
    }
)
