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
    with_gateway,
)

if TYPE_CHECKING:
    from edi_gateway.app import Gateway

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
    show.set_defaults(handler=with_gateway(_show))
    flush = osub.add_parser("flush", help="deliver what is due now")
    flush.add_argument("--partner", help="only what goes to this partner")
    json_option(flush)
    flush.set_defaults(handler=with_gateway(_flush))
    again = osub.add_parser("retry", help="a new round of delivery for failed rows")
    again.add_argument("ids", nargs="*", type=int, metavar="ID", help="outbox row IDs")
    again.add_argument("--state", choices=["failed"], help="every failed row")
    json_option(again)
    again.set_defaults(handler=with_gateway(_retry))


def _show(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway import views
    from edi_gateway.store.queries import outbox_detail

    with gateway.store.session() as session:
        data = outbox_detail(session, args.id)
    return emit(data, args.json, views.outbox_text(data))


def _flush(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.outbound.forward import flush_all

    done = flush_all(gateway.store, gateway.settings, partner=args.partner)
    counts = {state: sum(1 for s in done.values() if s == state) for state in set(done.values())}
    text = f"delivered {counts.get('sent', 0)}, to retry {counts.get('pending', 0)}, " + (
        f"failed {counts.get('failed', 0)}"
    )
    return emit({"flushed": {str(k): v for k, v in done.items()}}, args.json, text)


def _retry(gateway: Gateway, args: argparse.Namespace) -> int:
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
