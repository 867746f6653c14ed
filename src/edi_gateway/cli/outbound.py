"""The outbound commands of the CLI: ``respond``, ``despatch``, ``invoice``, ``documents``,
``outbox list|flush`` (and, through :mod:`.cancel`, ``orders cancel``). No logic here."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edi_gateway.app import Gateway
    from edi_gateway.outbound.charges import Charge, Discount
    from edi_gateway.outbound.issuing import Issued
    from edi_gateway.outbound.respond import LineChange

COMMANDS = frozenset({"respond", "despatch", "invoice", "outbox", "documents"})
Printer = Callable[[Any, bool, str], int]


def add_commands(
    sub: Any, json_flag: Callable[[argparse.ArgumentParser], None], *, orders: Any = None
) -> None:
    """Add ``respond``, ``despatch``, ``invoice``, ``documents`` and ``outbox`` to the CLI's
    subcommands, and ``cancel`` to the ``orders`` actions (``orders``) when given."""
    _orders_actions(orders, json_flag)
    respond = sub.add_parser("respond", help="send the buyer an Order Response (Peppol T76)")
    respond.add_argument("order", help="store ID, BUYER:ORDER_ID or an unambiguous order ID")
    what = respond.add_mutually_exclusive_group(required=True)
    what.add_argument("--ack", action="store_true", help="acknowledge receipt (AB)")
    what.add_argument("--accept", action="store_true", help="accept as ordered (AP)")
    what.add_argument("--reject", action="store_true", help="reject (RE); needs --reason")
    what.add_argument(
        "--change",
        action="append",
        type=line_change,
        metavar="LINE:QTY[:DATE]",
        help="accept with this line changed (CA); QTY 0 = line not accepted; repeatable",
    )
    respond.add_argument(
        "--note",
        action="append",
        type=line_note,
        metavar="LINE:TEXT",
        help="a note on a line of a CA response, e.g. 3:'temporarily out of stock'; repeatable",
    )
    respond.add_argument(
        "--substitute",
        action="append",
        type=line_substitute,
        metavar="LINE:ITEM:NAME",
        help="on a CA response, deliver the seller's item ITEM (named NAME) instead of what the "
        "line ordered; the line goes as changed (3); repeatable",
    )
    respond.add_argument(
        "--charge",
        action="append",
        type=charge,
        metavar="KIND:AMOUNT[:VATCAT:RATE]",
        help="a charge on the order (freight, packing, handling ...), sent as an added line; "
        "VAT as the order lines when omitted; makes --accept a CA; repeatable",
    )
    respond.add_argument(
        "--discount",
        type=discount,
        metavar="PCT%|AMOUNT[:VATCAT:RATE]",
        help="5%%: every accepted line's price less 5 %% (lines go as changed); 20.00: an added "
        "line of -20.00; makes --accept a CA",
    )
    respond.add_argument("--reason", help="why (shown to the buyer)")
    respond.add_argument("--force", action="store_true", help="respond despite the order state")
    json_flag(respond)

    despatch = sub.add_parser("despatch", help="send the buyer a Despatch Advice (Peppol T16)")
    despatch.add_argument("order", help="store ID, BUYER:ORDER_ID or an unambiguous order ID")
    despatch.add_argument(
        "--line",
        action="append",
        type=line_quantity,
        metavar="LINE:QTY",
        help="despatch this quantity of this order line (repeatable; none = all that is open)",
    )
    despatch.add_argument("--carrier")
    despatch.add_argument("--tracking", help="the carrier's tracking ID")
    despatch.add_argument("--date", type=date.fromisoformat, help="despatch date (default today)")
    despatch.add_argument("--eta", type=date.fromisoformat, help="estimated delivery date")
    despatch.add_argument("--force", action="store_true", help="despatch more than is open")
    json_flag(despatch)

    invoice = sub.add_parser(
        "invoice", help="send the buyer an invoice, credit note or debit note (Billing 3.0)"
    )
    invoice.add_argument("order", help="store ID, BUYER:ORDER_ID or an unambiguous order ID")
    invoice.add_argument(
        "--line",
        action="append",
        type=line_quantity,
        metavar="LINE:QTY",
        help="bill this quantity of this order line (repeatable; none = all despatched, unbilled)",
    )
    kind = invoice.add_mutually_exclusive_group()
    kind.add_argument("--credit", metavar="INVOICE_ID", help="a credit note for this invoice")
    kind.add_argument("--debit", metavar="INVOICE_ID", help="a debit note for this invoice")
    invoice.add_argument("--reason", help="why (shown on the document)")
    invoice.add_argument("--force", action="store_true", help="bill beyond what the order allows")
    json_flag(invoice)

    documents = sub.add_parser("documents", help="show a stored document")
    dsub = documents.add_subparsers(dest="action", required=True, metavar="ACTION")
    dshow = dsub.add_parser("show", help="a document (ID from `orders show`) as UBL, PDF or Excel")
    dshow.add_argument("id", type=int)
    dshow.add_argument("--format", choices=["ubl", "pdf", "xlsx"], default="ubl")
    dshow.add_argument("--output", type=Path, help="write to this file (PDF and Excel need one)")

    _outbox_commands(sub, json_flag)


def _outbox_commands(sub: Any, json_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    outbox = sub.add_parser("outbox", help="outbound documents waiting for or done with delivery")
    osub = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    olist = osub.add_parser("list")
    olist.add_argument(
        "--state", choices=["pending", "awaiting_receipt", "sent", "failed", "withdrawn"]
    )
    olist.add_argument("--partner")
    json_flag(olist)
    oshow = osub.add_parser("show", help="one row: where it goes, its state and its findings")
    oshow.add_argument("id", type=int)
    json_flag(oshow)
    flush = osub.add_parser("flush", help="deliver what is due now")
    flush.add_argument("--partner")
    json_flag(flush)
    again = osub.add_parser("retry", help="a new round of delivery for failed rows")
    again.add_argument("ids", nargs="*", type=int, metavar="ID")
    again.add_argument("--state", choices=["failed"], help="every failed row")
    json_flag(again)


def _orders_actions(orders: Any, json_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    if orders is not None:
        from edi_gateway.cli.cancel import add_cancel

        add_cancel(orders, json_flag)


def line_change(text: str) -> LineChange:
    """``LINE:QTY[:DATE]`` -> LineChange (an argparse type)."""
    from edi_gateway.outbound.respond import LineChange

    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected LINE:QTY[:DATE], found {text!r}")
    try:
        quantity = Decimal(parts[1])
        when = date.fromisoformat(parts[2]) if len(parts) == 3 else None
    except (InvalidOperation, ValueError) as exc:
        raise argparse.ArgumentTypeError(
            f"expected LINE:QTY[:DATE] with a number and a YYYY-MM-DD date, found {text!r}"
        ) from exc
    if not quantity.is_finite():
        raise argparse.ArgumentTypeError(f"not a quantity: {parts[1]!r}")
    return LineChange(parts[0], quantity, when)


def charge(text: str) -> Charge:
    """``KIND:AMOUNT[:VATCAT:RATE]`` -> Charge (an argparse type)."""
    from edi_gateway.outbound.charges import parse_charge

    try:
        return parse_charge(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def discount(text: str) -> Discount:
    """``PCT%`` or ``AMOUNT[:VATCAT:RATE]`` -> Discount (an argparse type)."""
    from edi_gateway.outbound.charges import parse_discount

    try:
        return parse_discount(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def line_note(text: str) -> tuple[str, str]:
    """``LINE:TEXT`` -> (line id, note) (an argparse type)."""
    line_id, sep, note = text.partition(":")
    if not sep or not line_id or not note.strip():
        raise argparse.ArgumentTypeError(f"expected LINE:TEXT, found {text!r}")
    return line_id, note.strip()


def line_substitute(text: str) -> tuple[str, str, str]:
    """``LINE:ITEM:NAME`` -> (line id, seller item ID, name) (an argparse type)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(part.strip() for part in parts):
        raise argparse.ArgumentTypeError(f"expected LINE:ITEM:NAME, found {text!r}")
    line_id, item, name = (part.strip() for part in parts)
    return line_id, item, name


def line_quantity(text: str) -> tuple[str, Decimal]:
    """``LINE:QTY`` -> (line id, quantity) (an argparse type)."""
    change = line_change(text)
    if change.delivery_date is not None:
        raise argparse.ArgumentTypeError(f"expected LINE:QTY, found {text!r}")
    return change.line_id, change.quantity


def handle(gateway: Gateway, args: argparse.Namespace, emit: Printer) -> int:
    """Run an outbound command."""
    if args.command == "respond":
        return _respond(gateway, args, emit)
    if args.command == "despatch":
        return _despatch(gateway, args, emit)
    if args.command == "documents":
        return _show_document(gateway, args)
    if args.command == "invoice":
        return _invoice(gateway, args, emit)
    return _outbox(gateway, args, emit)


def _outbox(gateway: Gateway, args: argparse.Namespace, emit: Printer) -> int:
    if args.action == "retry":
        return _retry(gateway, args, emit)
    if args.action == "list":
        rows = _outbox_rows(gateway, args.state, args.partner)
        return emit(rows, args.json, _table(rows))
    if args.action == "show":
        return _show(gateway, args, emit)
    from edi_gateway.outbound.forward import flush_all

    done = flush_all(gateway.store, gateway.settings, partner=args.partner)
    counts = {state: sum(1 for s in done.values() if s == state) for state in set(done.values())}
    text = f"delivered {counts.get('sent', 0)}, to retry {counts.get('pending', 0)}, " + (
        f"failed {counts.get('failed', 0)}"
    )
    return emit({"flushed": {str(k): v for k, v in done.items()}}, args.json, text)


def _retry(gateway: Gateway, args: argparse.Namespace, emit: Printer) -> int:
    from edi_gateway.app import operator_name
    from edi_gateway.errors import ConfigError
    from edi_gateway.outbound.outbox import retry

    if bool(args.ids) == bool(args.state):
        raise ConfigError("outbox retry needs outbox IDs or --state failed (not both)")
    ids = retry(gateway.store, args.ids, actor=operator_name(), every_failed=bool(args.state))
    text = (
        f"retrying {len(ids)} outbox row(s): {', '.join(f'#{i}' for i in ids)}; "
        "they go with the next `outbox flush` (or `run` cycle)"
        if ids
        else "no failed outbox rows"
    )
    return emit({"retried": ids}, args.json, text)


def _respond(gateway: Gateway, args: argparse.Namespace, emit: Printer) -> int:
    from edi_gateway.outbound.respond import Decision, respond

    code = "AB" if args.ack else "AP" if args.accept else "RE" if args.reject else "CA"
    if code == "AP" and (args.charge or args.discount):
        code = "CA"  # lines (the added charges) go on a CA only
    decision = Decision(
        code,
        args.reason,
        tuple(args.change or ()),
        tuple(args.note or ()),
        tuple(args.substitute or ()),
        tuple(args.charge or ()),
        args.discount,
    )
    return _issue(gateway, args, emit, respond, decision, what=f"Order Response ({code})")


def _despatch(gateway: Gateway, args: argparse.Namespace, emit: Printer) -> int:
    from edi_gateway.outbound.despatch import DespatchRequest, despatch

    request = DespatchRequest(
        tuple(args.line or ()), args.carrier, args.tracking, args.date, args.eta
    )
    return _issue(gateway, args, emit, despatch, request, what="Despatch Advice")


def _invoice(gateway: Gateway, args: argparse.Namespace, emit: Printer) -> int:
    from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest, invoice

    request = InvoiceRequest(
        lines=tuple(LineRequest(line_id, quantity) for line_id, quantity in args.line or ()),
        credit_of=args.credit,
        debit_of=args.debit,
        reason=args.reason,
    )
    what = "Credit note" if args.credit else "Debit note" if args.debit else "Invoice"
    return _issue(gateway, args, emit, invoice, request, what=what)


def _issue(
    gateway: Gateway,
    args: argparse.Namespace,
    emit: Printer,
    command: Callable[..., Issued],
    request: Any,
    *,
    what: str,
) -> int:
    """Run an issuing command for the operator at the keyboard and print what it queued."""
    from edi_gateway.app import operator_name

    issued = command(
        gateway.store,
        gateway.settings,
        args.order,
        request,
        actor=operator_name(),
        force=args.force,
    )
    return emit(_issued_data(issued), args.json, _issued_text(issued, what))


def _show_document(gateway: Gateway, args: argparse.Namespace) -> int:
    import sys

    from edi_gateway.errors import ConfigError
    from edi_gateway.outbound.documents import show

    shown = show(gateway.store, gateway.settings, args.id, args.format)
    if args.output is not None:
        args.output.write_bytes(shown.payload)
        print(f"wrote {args.output} ({len(shown.payload)} bytes, {shown.media_type})")
        return 0
    if args.format != "ubl":
        raise ConfigError(f"--format {args.format} is binary: give --output FILE")
    sys.stdout.buffer.write(shown.payload)
    return 0


def _issued_data(issued: Issued) -> dict[str, Any]:
    return {
        "order_id": issued.order_id,
        "document_id": issued.document_id,
        "document_number": issued.doc_number,
        "outbox_id": issued.outbox_id,
        "order_status": issued.status,
    }


def _issued_text(issued: Issued, what: str) -> str:
    return (
        f"{what} {issued.doc_number} queued as outbox #{issued.outbox_id}; order is now "
        f"{issued.status}. Deliver with `edi-gateway outbox flush` (or let `run` do it)."
    )


def _show(gateway: Gateway, args: argparse.Namespace, emit: Printer) -> int:
    from edi_gateway.errors import ErrorCode, LookupFailed
    from edi_gateway.store.queries import findings_of
    from edi_gateway.store.tables import OutboxRow
    from edi_gateway.views import findings_text

    with gateway.store.session() as session:
        row = session.get(OutboxRow, args.id)
        if row is None:
            raise LookupFailed(ErrorCode.NOT_FOUND, f"no outbox row #{args.id}")
        data = _row_data(row) | {"findings": findings_of(session, outbox_id=row.id)}
    lines = [
        f"Outbox #{data['id']}  {data['state']}  {data['type']} {data['document_id']} "
        f"for {data['partner']} via {data['connector']} as {data['filename']}",
        f"  attempts {data['attempts']}, next {data['next_attempt_at']}",
    ]
    if data["last_error"]:
        lines.append(f"  last error: {data['last_error']}")
    if data["delivered_to"]:
        lines.append(f"  delivered to {data['delivered_to']}")
    return emit(data, args.json, "\n".join(lines + findings_text(data["findings"])))


def _outbox_rows(gateway: Gateway, state: str | None, partner: str | None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from edi_gateway.store.tables import OutboxRow

    with gateway.store.session() as session:
        query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(500)
        if state:
            query = query.where(OutboxRow.state == state)
        if partner:
            query = query.where(OutboxRow.partner == partner)
        return [_row_data(row) for row in session.scalars(query)]


def _row_data(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "partner": row.partner,
        "connector": row.connector,
        "type": row.kind,
        "document_id": row.doc_number,
        "filename": row.filename,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.isoformat(),
        "last_error": row.last_error,
        "delivered_to": row.delivered_to,
        "order_id": row.order_id,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    from edi_gateway.views import table

    return table(
        rows,
        ["id", "state", "partner", "type", "document_id", "filename", "attempts", "last_error"],
    )
