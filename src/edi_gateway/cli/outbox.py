"""``edi-gateway outbox list|show|flush|retry``: outbound documents and their delivery."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from edi_gateway.cli.common import (
    Sub,
    emit,
    json_option,
    list_options,
    listing_of,
    with_configured,
    with_gateway,
    with_store,
)

if TYPE_CHECKING:
    from edi_gateway.app import Gateway
    from edi_gateway.cli.common import Opened

STATES = ["pending", "awaiting_receipt", "sent", "failed", "withdrawn"]


def add_commands(sub: Sub) -> None:
    """The ``outbox`` command group."""
    outbox = sub.add_parser("outbox", help="outbound documents waiting for or done with delivery")
    osub = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = osub.add_parser("list", help="outbox rows, newest first")
    listing.add_argument("--state", choices=STATES, help="only rows in this state")
    list_options(listing, "queued", "rows")
    listing.set_defaults(handler=listing_of("page_outbox", "outbox_table"))
    show = osub.add_parser("show", help="one row: where it goes, its state and its findings")
    show.add_argument("id", type=int, help="the outbox row's ID")
    json_option(show)
    show.set_defaults(handler=with_store(_show))
    flush = osub.add_parser("flush", help="deliver what is due now")
    flush.add_argument("--partner", help="only what goes to this partner")
    json_option(flush)
    flush.set_defaults(handler=with_configured(_flush))
    again = osub.add_parser(
        "retry",
        help="deliver again now: failed rows get a new round, retrying ones skip their wait",
        description=(
            "After fixing what made deliveries fail (a path, rights, a full disk, a partner's "
            "server): rows go back to pending, due at once. Name rows by ID, or every row of "
            "--state; --now delivers them in this command (without --state or IDs: every "
            "pending and failed row) and says how each went."
        ),
    )
    again.add_argument("ids", nargs="*", type=int, metavar="ID", help="outbox row IDs")
    again.add_argument("--state", choices=["failed", "pending"], help="every row in this state")
    again.add_argument(
        "--now", action="store_true", help="deliver them now, in this command, and report"
    )
    again.add_argument(
        "--dry-run", action="store_true", help="only list the rows that would be retried"
    )
    json_option(again)
    again.set_defaults(handler=with_gateway(_retry))
    give_up = osub.add_parser(
        "withdraw", help="give up on pending or failed rows for good (never sent)"
    )
    give_up.add_argument("ids", nargs="+", type=int, metavar="ID", help="outbox row IDs")
    give_up.add_argument("--reason", required=True, help="why (kept in the order's history)")
    json_option(give_up)
    give_up.set_defaults(handler=with_gateway(_withdraw))


def _show(gateway: Opened, args: argparse.Namespace) -> int:
    from edi_gateway import views
    from edi_gateway.store.queries import outbox_detail

    with gateway.store.looking() as conn:
        data = outbox_detail(conn, args.id)
    return emit(data, args.json, views.outbox_text(data))


def _flush(opened: Opened, args: argparse.Namespace) -> int:
    from edi_gateway.outbound.forward import flush_all

    done = flush_all(opened.store, opened.settings, partner=args.partner)
    counts = {state: sum(1 for s in done.values() if s == state) for state in set(done.values())}
    text = f"delivered {counts.get('sent', 0)}, to retry {counts.get('pending', 0)}, " + (
        f"failed {counts.get('failed', 0)}"
    )
    return emit({"flushed": {str(k): v for k, v in done.items()}}, args.json, text)


def _retry(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.app import operator_name
    from edi_gateway.errors import ErrorCode, GatewayError
    from edi_gateway.outbound.forward import note_deliveries
    from edi_gateway.outbound.outbox import RETRYABLE, flush, retry

    if args.ids and args.state:
        raise GatewayError(ErrorCode.USAGE, "outbox retry takes outbox IDs or --state, not both")
    if not (args.ids or args.state or args.now):
        raise GatewayError(
            ErrorCode.USAGE, "outbox retry needs outbox IDs, --state failed|pending, or --now"
        )
    states = (args.state,) if args.state else RETRYABLE
    every = not args.ids
    ids = retry(
        gateway.store,
        args.ids,
        actor=operator_name(),
        states=states,
        every=every,
        dry_run=args.dry_run,
    )
    rows = ", ".join(f"#{i}" for i in ids)
    if args.dry_run:
        return emit(
            {"would_retry": ids}, args.json, f"would retry {len(ids)} outbox row(s): {rows or '-'}"
        )
    if not args.now:
        text = (
            f"retrying {len(ids)} outbox row(s): {rows}; they go with the next `outbox flush` "
            "(or `run` cycle)"
            if ids
            else f"no {' or '.join(states)} outbox rows"
        )
        return emit({"retried": ids}, args.json, text)
    done = flush(gateway.store, gateway.settings, only=ids) if ids else {}
    note_deliveries(gateway.store)  # forwards whose files are now all delivered move on
    return _delivered(gateway, ids, done, args.json)


def _delivered(gateway: Gateway, ids: list[int], done: dict[int, str], as_json: bool) -> int:
    """What became of rows delivered now: each row's state and, unless sent, its error."""
    from sqlalchemy import select

    from edi_gateway.cli.common import EXIT_FAILED, EXIT_OK
    from edi_gateway.store.tables import OutboxRow

    with gateway.store.session() as session:
        rows = list(session.scalars(select(OutboxRow).where(OutboxRow.id.in_(ids))))
        results = [
            {
                "id": row.id,
                "partner": row.partner,
                "connector": row.connector,
                "state": done.get(row.id, row.state),
                "error": None if row.state in ("sent", "awaiting_receipt") else row.last_error,
            }
            for row in sorted(rows, key=lambda r: r.id)
        ]
    lines = [f"delivered now: {sum(r['state'] == 'sent' for r in results)} of {len(results)}"]
    lines += [
        f"  #{r['id']} {r['partner']} via {r['connector']}: {r['state']}"
        + (f" ({r['error']})" if r["error"] else "")
        for r in results
    ]
    emit({"retried": results}, as_json, "\n".join(lines))
    stuck = [r for r in results if r["state"] not in ("sent", "awaiting_receipt")]
    return EXIT_FAILED if stuck else EXIT_OK


def _withdraw(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.app import operator_name
    from edi_gateway.outbound.outbox import withdraw

    ids = withdraw(gateway.store, args.ids, actor=operator_name(), reason=args.reason)
    text = f"withdrew {len(ids)} outbox row(s): {', '.join(f'#{i}' for i in ids)}"
    return emit({"withdrawn": ids}, args.json, text)
