"""The outbound commands of the CLI: ``respond``, ``despatch``, ``invoice``, ``documents
show|attachments|attachment``. No logic here."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edi_gateway.cli.common import (
    ORDER_REF,
    Sub,
    emit,
    filters_of,
    json_option,
    with_gateway,
)

DEFAULT_BATCH = 200  # = edi_gateway.outbound.bulk.DEFAULT_BATCH (not imported: start-up)

if TYPE_CHECKING:
    from edi_gateway.app import Gateway
    from edi_gateway.outbound.charges import Charge, Discount
    from edi_gateway.outbound.issuing import Issued
    from edi_gateway.outbound.respond import LineChange


def add_commands(sub: Sub) -> None:
    """Add ``respond``, ``despatch``, ``invoice`` and ``documents`` to the CLI's commands."""
    respond = sub.add_parser("respond", help="send the buyer an Order Response (Peppol T76)")
    _order_or_bulk(respond, "respond")
    what = respond.add_mutually_exclusive_group()
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
    respond.add_argument(
        "--item-id",
        action="append",
        type=line_item_id,
        metavar="LINE:ID",
        help="state the seller's item ID of this order line, for a line the order named without "
        "one (a despatch needs one or a GTIN); the line goes as changed (3), --accept as a CA; "
        "kept on the line (repeatable)",
    )
    respond.add_argument("--reason", help="why (shown to the buyer)")
    respond.add_argument("--force", action="store_true", help="respond despite the order state")
    json_option(respond)
    respond.set_defaults(handler=with_gateway(_respond), bulk_of=_respond_request)
    _despatch_command(sub)
    _invoice_command(sub)
    _documents_commands(sub)


def _despatch_command(sub: Sub) -> None:
    despatch = sub.add_parser("despatch", help="send the buyer a Despatch Advice (Peppol T16)")
    _order_or_bulk(despatch, "despatch")
    despatch.add_argument(
        "--line",
        action="append",
        type=line_quantity,
        metavar="LINE:QTY",
        help="despatch this quantity of this order line (repeatable; none = all that is open)",
    )
    despatch.add_argument(
        "--item-id",
        action="append",
        type=line_item_id,
        metavar="LINE:ID",
        help="the seller's item ID of this order line, for a line the order named without one "
        "or a GTIN (a Despatch Advice needs one: PEPPOL-T16-R003); kept on the line "
        "(repeatable)",
    )
    despatch.add_argument("--carrier", help="the carrier's name")
    despatch.add_argument("--tracking", help="the carrier's tracking ID")
    despatch.add_argument("--date", type=date.fromisoformat, help="despatch date (default today)")
    despatch.add_argument("--eta", type=date.fromisoformat, help="estimated delivery date")
    despatch.add_argument(
        "--boxes",
        type=int,
        metavar="N",
        help="pack in N boxes, each line spread over them in whole units; every box gets an "
        "SSCC (from gs1_company_prefix) in the advice and a GS1-128 label",
    )
    despatch.add_argument(
        "--box",
        action="append",
        type=box_contents,
        metavar="LINE:QTY[,LINE:QTY...]",
        help="what one box holds (repeatable, one per box); the despatched quantities are "
        "their sums (instead of --line)",
    )
    despatch.add_argument(
        "--slip",
        type=Path,
        metavar="FILE",
        help="write the packing slip and box labels (PDF) to FILE; later: `documents show ID "
        "--format pdf`",
    )
    despatch.add_argument("--force", action="store_true", help="despatch more than is open")
    json_option(despatch)
    despatch.set_defaults(handler=with_gateway(_despatch), bulk_of=_despatch_request)


def _invoice_command(sub: Sub) -> None:
    invoice = sub.add_parser(
        "invoice",
        help="send the buyer an invoice, credit note or debit note (Billing 3.0; Self-Billing "
        "3.0 to a supplier with self_billing: true)",
    )
    _order_or_bulk(invoice, "invoice")
    invoice.add_argument(
        "--line",
        action="append",
        type=line_billing,
        metavar="LINE:QTY[:PRICE]",
        help="bill this quantity of this order line, at PRICE when given (an order without "
        "prices); repeatable; none = all despatched, unbilled",
    )
    kind = invoice.add_mutually_exclusive_group()
    kind.add_argument("--credit", metavar="INVOICE_ID", help="a credit note for this invoice")
    kind.add_argument("--debit", metavar="INVOICE_ID", help="a debit note for this invoice")
    invoice.add_argument(
        "--amount",
        type=amount,
        metavar="AMOUNT",
        help="with --debit: an amount-only debit note (a fee, a price correction) of this net "
        "amount, named by --reason; bills no order quantity",
    )
    invoice.add_argument(
        "--tax-category",
        metavar="CAT",
        help="VAT category of --amount (UNCL 5305: S, Z, E, AE, G, L, M; not K or O); default: "
        "as the order lines, else the supplier's default",
    )
    invoice.add_argument(
        "--tax-rate", type=amount, metavar="PCT", help="VAT rate of --amount in percent, e.g. 25"
    )
    invoice.add_argument("--reason", help="why (shown on the document)")
    invoice.add_argument("--force", action="store_true", help="bill beyond what the order allows")
    invoice.add_argument(
        "--rebill-credited",
        action="store_true",
        help="an invoice may bill credited quantities again (recorded in the history)",
    )
    json_option(invoice)
    invoice.set_defaults(handler=with_gateway(_invoice), bulk_of=_invoice_request)


def _documents_commands(sub: Sub) -> None:
    documents = sub.add_parser("documents", help="show a stored document")
    dsub = documents.add_subparsers(dest="action", required=True, metavar="ACTION")
    dshow = dsub.add_parser("show", help="a document (ID from `orders show`) as UBL, PDF or Excel")
    dshow.add_argument("id", type=int, help="the document's store ID")
    dshow.add_argument(
        "--format", choices=["ubl", "pdf", "xlsx"], default="ubl", help="default: ubl"
    )
    dshow.add_argument("--output", type=Path, help="write to this file (PDF and Excel need one)")
    dshow.set_defaults(handler=with_gateway(_show_document))
    _add_attachments(dsub)


def _add_attachments(dsub: Sub) -> None:
    """``documents attachments ORDER`` and ``documents attachment ID``: an order's attached
    files (docs/adr/0029)."""
    listing = dsub.add_parser("attachments", help="the documents an order has attached")
    listing.add_argument("order", help=ORDER_REF)
    json_option(listing)
    listing.set_defaults(handler=with_gateway(_list_attachments))
    one = dsub.add_parser("attachment", help="an order's attached file, as it was embedded")
    one.add_argument("id", type=int, help="the attachment's ID (from `orders show`)")
    one.add_argument("--output", type=Path, help="write to this file (else to standard output)")
    one.set_defaults(handler=with_gateway(_attachment))


CHOICES = {
    "respond": (
        "ack", "accept", "reject", "change", "note", "substitute", "charge", "discount",
        "item_id", "reason", "force",
    ),
    "despatch": (
        "line", "item_id", "carrier", "tracking", "date", "eta", "boxes", "box", "force",
    ),
    "invoice": (
        "line", "credit", "debit", "amount", "tax_category", "tax_rate", "reason", "force",
        "rebill_credited",
    ),
}  # fmt: skip
"""Per command: the options that say what to issue (a --csv file says it per order instead)."""
FILTERS = ("status", "partner", "since", "until", "search", "order_type", "needs", "attention")
"""The ``orders list`` filters a bulk command takes (``--overdue`` too)."""


def _order_or_bulk(parser: argparse.ArgumentParser, command: str) -> None:
    """The ORDER argument of the single-order command, or the orders of a bulk run: those a
    filter of ``orders list`` selects, or those of a CSV of decisions (docs/adr/0038)."""
    from edi_gateway.cli.common import time_filters
    from edi_gateway.cli.orders import order_filters

    parser.add_argument("order", nargs="?", help=ORDER_REF + "; or give --csv or a filter")
    bulk = parser.add_argument_group(
        "bulk", "many orders at once, the same choices for each (or per order from --csv)"
    )
    bulk.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help=f"a CSV of {command} decisions, one row per order or per line (columns: README, "
        "'Many orders at once'); any bad row refuses the whole file before anything is issued",
    )
    bulk.add_argument("--partner", help="orders of this partner (id or party key)")
    time_filters(parser, "orders received")
    order_filters(bulk)
    bulk.add_argument(
        "--batch-size",
        type=_batch_size,
        metavar="N",
        help=f"orders per transaction (default {DEFAULT_BATCH})",
    )
    bulk.add_argument(
        "--dry-run",
        action="store_true",
        help="check and compose every document as for real, issue nothing: what would be "
        "issued, skipped and refused",
    )


def _batch_size(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of orders above 0, found {text!r}")
    return int(text)


def _usage(message: str) -> Exception:
    from edi_gateway.errors import ErrorCode, GatewayError

    return GatewayError(ErrorCode.USAGE, message)


def _filters_given(args: argparse.Namespace) -> list[str]:
    given = [name for name in FILTERS if getattr(args, name) not in (None, False)]
    return given + (["overdue"] if args.overdue else [])


def _bulk_wanted(args: argparse.Namespace) -> bool:
    """Whether the command runs in bulk; USAGE for a mix of ORDER, --csv and filters."""
    filters = _filters_given(args)
    if args.order is not None and (filters or args.csv is not None):
        raise _usage("give an ORDER, or --csv FILE, or filters: not an ORDER with them")
    if args.csv is not None and filters:
        raise _usage("--csv names its orders: drop --" + filters[0].replace("_", "-"))
    if args.order is not None and (args.dry_run or args.batch_size is not None):
        raise _usage("--dry-run and --batch-size go with --csv or filters, not with an ORDER")
    if args.order is None and not filters and args.csv is None:
        raise _usage("give an ORDER, --csv FILE or filters (--status, --partner ...)")
    return args.order is None


def _bulk(gateway: Gateway, args: argparse.Namespace, command: str) -> int:
    """The bulk run of ``command``: its orders, one transaction per ``--batch-size``."""
    from edi_gateway import views
    from edi_gateway.app import operator_name
    from edi_gateway.outbound import bulk

    chosen = [n for n in CHOICES[command] if getattr(args, n) not in (None, False, [])]
    if args.csv is not None:
        from edi_gateway.outbound.bulk_csv import read

        if chosen:
            option = "--" + chosen[0].replace("_", "-")
            raise _usage(f"with --csv the file holds each order's choices: drop {option}")
        with gateway.store.reading() as session:
            items = read(session, command, args.csv)
    else:
        from edi_gateway.outbound.bulk_csv import precheck

        request = args.bulk_of(args)
        precheck(command, request)  # a request no order can take: refused before any is read
        ids = bulk.filtered(gateway.store, filters_of(args))
        items = [bulk.Item(order_id, request, args.force) for order_id in ids]
    outcomes = bulk.run(
        gateway.store,
        gateway.settings,
        command,
        items,
        actor=operator_name(),
        batch_size=args.batch_size or DEFAULT_BATCH,
        dry_run=args.dry_run,
    )
    tally = bulk.counts(outcomes)
    data = {**tally, "dry_run": args.dry_run, "orders": [o.as_json() for o in outcomes]}
    summary = (
        f"{command}: {tally['issued']} issued, {tally['skipped']} skipped (issued before by "
        f"the same command), {tally['refused']} refused, of {len(outcomes)} order(s)"
    )
    if args.dry_run:
        summary = (
            f"dry run, nothing was issued; {summary.replace(' issued,', ' would be issued,', 1)}"
        )
    elif tally["issued"]:
        summary += ". Deliver with `edi-gateway outbox flush` (or let `run` do it)."
    rows = data["orders"]
    columns = ["order_ref", "state", "doc_number", "status", "code", "message", "where"]
    text = (views.table(rows, columns) + "\n" if rows else "") + summary
    emit(data, args.json, text)
    return 1 if tally["refused"] else 0


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


def amount(text: str) -> Decimal:
    """A decimal number such as ``25.00`` (an argparse type)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"expected a number such as 25.00, found {text!r}")
    return value


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


def box_contents(text: str) -> tuple[tuple[str, Decimal], ...]:
    """``LINE:QTY[,LINE:QTY...]`` -> the (line id, quantity) pairs of one box (argparse type)."""
    pairs = tuple(line_quantity(part.strip()) for part in text.split(","))
    for line_id, quantity in pairs:
        if quantity <= 0:
            raise argparse.ArgumentTypeError(f"line {line_id}: a box holds more than 0")
    return pairs


def line_quantity(text: str) -> tuple[str, Decimal]:
    """``LINE:QTY`` -> (line id, quantity) (an argparse type)."""
    change = line_change(text)
    if change.delivery_date is not None:
        raise argparse.ArgumentTypeError(f"expected LINE:QTY, found {text!r}")
    return change.line_id, change.quantity


def line_item_id(text: str) -> tuple[str, str]:
    """``LINE:ID`` -> (line id, item ID) (an argparse type); the ID may hold colons."""
    line_id, _, item_id = text.partition(":")
    if not line_id.strip() or not item_id.strip():
        raise argparse.ArgumentTypeError(f"expected LINE:ID, found {text!r}")
    return line_id.strip(), item_id.strip()


def line_billing(text: str) -> tuple[str, Decimal, Decimal | None]:
    """``LINE:QTY[:PRICE]`` -> (line id, quantity, price or None) (an argparse type): an order
    may give no prices (Peppol T01 makes them optional), and an invoice line needs one."""
    parts = text.split(":")
    if len(parts) != 3:
        return (*line_quantity(text), None)
    line_id, quantity = line_quantity(":".join(parts[:2]))
    try:
        price = Decimal(parts[2])
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"expected LINE:QTY[:PRICE], found {text!r}") from exc
    if not price.is_finite():
        raise argparse.ArgumentTypeError(f"not a price: {parts[2]!r}")
    return line_id, quantity, price


def _respond(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.outbound.respond import respond

    if _bulk_wanted(args):
        _one_order_item_ids(args)
        return _bulk(gateway, args, "respond")
    decision = _respond_request(args)
    return _issue(gateway, args, respond, decision, what=f"Order Response ({decision.code})")


def _respond_request(args: argparse.Namespace) -> Any:
    from edi_gateway.outbound.respond import Decision, promoted

    if not (args.ack or args.accept or args.reject or args.change):
        raise _usage("give one of --ack, --accept, --reject or --change")
    code = "AB" if args.ack else "AP" if args.accept else "RE" if args.reject else "CA"
    return promoted(  # lines (the added charges) go on a CA only
        Decision(
            code,
            args.reason,
            tuple(args.change or ()),
            tuple(args.note or ()),
            tuple(args.substitute or ()),
            tuple(args.charge or ()),
            args.discount,
            tuple(args.item_id or ()),
        )
    )


def _one_order_item_ids(args: argparse.Namespace) -> None:
    """USAGE for ``--item-id`` with a filter: one ID for line 1 of every selected order is
    nobody's (a --csv with it is refused with the other choices)."""
    if args.item_id and args.csv is None:
        raise _usage(
            "--item-id names one order's lines: in bulk give them per order in a --csv "
            "file (column item_id)"
        )


def _despatch(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.errors import ErrorCode, GatewayError
    from edi_gateway.outbound.despatch import despatch
    from edi_gateway.outbound.packing import slip

    if _bulk_wanted(args):
        if args.slip is not None:
            raise _usage("--slip prints one despatch: in bulk, print each with `documents show`")
        _one_order_item_ids(args)
        return _bulk(gateway, args, "despatch")
    request = _despatch_request(args)
    packing = request.packing
    if args.slip is not None and not packing.wanted:
        raise GatewayError(ErrorCode.USAGE, "--slip prints the boxes: give --boxes N or --box")
    if args.slip is not None and (args.slip.is_dir() or not args.slip.parent.is_dir()):
        raise GatewayError(  # refused before the advice is sent, so a retry sends it once
            ErrorCode.USAGE, f"--slip {args.slip}: not a file in an existing folder"
        )
    issued = _run(gateway, args, despatch, request)
    data, text = _issued_data(issued), _issued_text(issued, "Despatch Advice")
    if packing.wanted:
        printed = slip(gateway.store, gateway.settings, issued.document_id)
        data["sscc"] = printed.ssccs
        text += f"\n{len(printed.ssccs)} box(es), SSCC " + ", ".join(printed.ssccs)
        if args.slip is not None:
            try:
                args.slip.write_bytes(printed.pdf)
            except OSError as exc:
                raise GatewayError(
                    ErrorCode.TARGET_UNWRITABLE,
                    f"despatch advice {issued.doc_number} was issued and queued, but its slip "
                    f"could not be written to {args.slip} ({exc.strerror}): print it with "
                    f"`edi-gateway documents show {issued.document_id} --format pdf --output FILE`",
                ) from exc
            data["slip"] = str(args.slip)
            text += f"\npacking slip and labels: {args.slip} ({len(printed.pdf)} bytes)"
    return emit(data, args.json, text)


def _despatch_request(args: argparse.Namespace) -> Any:
    from edi_gateway.outbound.despatch import DespatchRequest
    from edi_gateway.outbound.packing import Packing

    packing = Packing(args.boxes, tuple(args.box or ()))
    return DespatchRequest(
        tuple(args.line or ()),
        args.carrier,
        args.tracking,
        args.date,
        args.eta,
        packing,
        tuple(args.item_id or ()),
    )


def _invoice(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.outbound.invoice import invoice

    if _bulk_wanted(args):
        return _bulk(gateway, args, "invoice")
    request = _invoice_request(args)
    what = "Credit note" if args.credit else "Debit note" if args.debit else "Invoice"
    return _issue(gateway, args, invoice, request, what=what)


def _invoice_request(args: argparse.Namespace) -> Any:
    from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest
    from edi_gateway.outbound.invoice_amount import fee_vat

    return InvoiceRequest(
        lines=tuple(LineRequest(*line) for line in args.line or ()),
        amount=args.amount,
        vat=fee_vat(args.tax_category, args.tax_rate),
        credit_of=args.credit,
        debit_of=args.debit,
        reason=args.reason,
        rebill_credited=args.rebill_credited,
    )


def _issue(
    gateway: Gateway,
    args: argparse.Namespace,
    command: Callable[..., Issued],
    request: Any,
    *,
    what: str,
) -> int:
    """Run an issuing command for the operator at the keyboard and print what it queued."""
    issued = _run(gateway, args, command, request)
    return emit(_issued_data(issued), args.json, _issued_text(issued, what))


def _run(
    gateway: Gateway, args: argparse.Namespace, command: Callable[..., Issued], request: Any
) -> Issued:
    """Run an issuing command on ``args.order`` for the operator at the keyboard."""
    from edi_gateway.app import operator_name

    return command(
        gateway.store,
        gateway.settings,
        args.order,
        request,
        actor=operator_name(),
        force=args.force,
    )


def _write(path: Path, content: bytes) -> None:
    """Write ``content`` to the operator's ``--output``; a path that cannot be written is a
    coded error naming it."""
    from edi_gateway.errors import ErrorCode, GatewayError

    try:
        path.write_bytes(content)
    except OSError as exc:
        raise GatewayError(
            ErrorCode.TARGET_UNWRITABLE, f"cannot write {path}: {exc.strerror}"
        ) from exc


def _show_document(gateway: Gateway, args: argparse.Namespace) -> int:
    import sys

    from edi_gateway.errors import ConfigError
    from edi_gateway.outbound.documents import show

    shown = show(gateway.store, gateway.settings, args.id, args.format)
    if args.output is not None:
        _write(args.output, shown.payload)
        print(f"wrote {args.output} ({len(shown.payload)} bytes, {shown.media_type})")
        return 0
    if args.format != "ubl":
        raise ConfigError(f"--format {args.format} is binary: give --output FILE")
    sys.stdout.buffer.write(shown.payload)
    return 0


def _list_attachments(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway import views
    from edi_gateway.store.order_data import attachments_of
    from edi_gateway.store.queries import resolve_order

    with gateway.store.session() as session:
        rows = attachments_of(session, resolve_order(session, args.order).id)
    columns = ["id", "ref", "document_type", "filename", "uri", "mime_code", "size", "problem"]
    return emit(rows, args.json, views.table(rows, columns))


def _attachment(gateway: Gateway, args: argparse.Namespace) -> int:
    """The bytes go only where the operator says: the sender's file name is never a path."""
    import sys

    from edi_gateway.store.order_data import attachment_content

    with gateway.store.session() as session:
        shown, content = attachment_content(session, args.id)
    if args.output is None:
        sys.stdout.buffer.write(content)
        return 0
    _write(args.output, content)
    named = f", sent as {shown['filename']!r}" if shown["filename"] else ""
    print(f"wrote {args.output} ({len(content)} bytes, {shown['mime_code']}{named})")
    return 0


def _issued_data(issued: Issued) -> dict[str, Any]:
    return {
        "order_id": issued.order_id,
        "document_id": issued.document_id,
        "document_number": issued.doc_number,
        "number": issued.doc_number,
        "outbox_id": issued.outbox_id,
        "order_status": issued.status,
    }


def _issued_text(issued: Issued, what: str) -> str:
    return (
        f"{what} {issued.doc_number} queued as outbox #{issued.outbox_id}; order is now "
        f"{issued.status}. Deliver with `edi-gateway outbox flush` (or let `run` do it)."
    )
