"""``edi-gateway messages list|show|redrive|dismiss|attach``. No logic here."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from edi_gateway.cli.common import (
    ORDER_REF,
    Sub,
    emit,
    json_option,
    list_options,
    listing_of,
    with_gateway,
    with_store,
)

if TYPE_CHECKING:
    from edi_gateway.app import Gateway
    from edi_gateway.cli.common import Opened

STATES = ["received", "processed", "orphan", "duplicate", "failed", "dismissed"]
REDRIVE_STATES = ["failed", "orphan", "received"]


def add_commands(sub: Sub) -> None:
    """The ``messages`` command group."""
    messages = sub.add_parser(
        "messages", help="list, inspect, redrive, dismiss and attach received messages"
    )
    msub = messages.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = msub.add_parser("list", help="messages, newest first")
    listing.add_argument("--state", choices=STATES, help="only messages in this state")
    list_options(listing, "received", "messages")
    listing.set_defaults(handler=listing_of("page_messages", "messages_table"))

    show = msub.add_parser("show", help="one message: error, findings and history")
    show.add_argument("id", type=int, help="the message's store ID")
    show.add_argument(
        "--raw", action="store_true", help="the bytes as received, to stdout, nothing else"
    )
    json_option(show)
    show.set_defaults(handler=with_store(_show))

    redrive = msub.add_parser(
        "redrive", help="process failed, orphaned or unprocessed messages again"
    )
    redrive.add_argument("ids", nargs="*", type=int, metavar="ID", help="message store IDs")
    redrive.add_argument("--state", choices=REDRIVE_STATES, help="every message in this state")
    redrive.add_argument("--dry-run", action="store_true", help="list them, change nothing")
    json_option(redrive)
    redrive.set_defaults(handler=with_gateway(_redrive))

    dismiss = msub.add_parser(
        "dismiss", help="mark a failed message dismissed (nothing more to do about it)"
    )
    dismiss.add_argument("id", type=int, help="the failed message's store ID")
    dismiss.add_argument("--reason", required=True, help="why (kept in the message's history)")
    json_option(dismiss)
    dismiss.set_defaults(handler=with_gateway(_dismiss))

    attach = msub.add_parser("attach", help="attach an orphan to its order by hand")
    attach.add_argument("id", type=int, help="the orphan message's store ID")
    attach.add_argument("order", help=ORDER_REF)
    json_option(attach)
    attach.set_defaults(handler=with_gateway(_attach))


def _show(opened: Opened, args: argparse.Namespace) -> int:
    from edi_gateway import views

    if args.raw:
        from edi_gateway.app import Gateway

        gateway = Gateway(opened.settings, opened.store)
        sys.stdout.buffer.write(gateway.raw_payload(args.id))
        sys.stdout.buffer.flush()
        return 0
    from edi_gateway.store.queries import message_detail

    with opened.store.looking() as conn:
        detail = message_detail(conn, args.id)
    return emit(detail, args.json, views.message_text(detail))


def _redrive(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway import views
    from edi_gateway.errors import ConfigError

    if not args.ids and not args.state:
        raise ConfigError("messages redrive needs message IDs or --state failed|orphan|received")
    ids = gateway.redrive(args.ids, state=args.state, dry_run=args.dry_run)
    data: dict[str, object] = {"redriven" if not args.dry_run else "would_redrive": ids}
    if not args.dry_run:
        data["messages"] = views.message_rows(gateway, ids)
    return emit(data, args.json, views.redrive_text(data))


def _dismiss(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.app import operator_name

    done = gateway.dismiss(args.id, args.reason, actor=operator_name())
    text = f"dismissed message #{done['id']} ({done['was']}): {done['reason']}"
    return emit(done, args.json, text)


def _attach(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.app import operator_name

    done = gateway.attach(args.id, args.order, actor=operator_name())
    text = f"attached message #{done['id']} to order {done['order']} (#{done['order_id']})"
    return emit(done, args.json, text)
