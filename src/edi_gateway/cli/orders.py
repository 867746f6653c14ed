"""``edi-gateway orders list|show|note|release|cancel|clear-attention``. No logic here.

``orders cancel``: see docs/adr/0008-cancellations.md and :mod:`edi_gateway.outbound.cancel`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from edi_gateway.cli.common import (
    ORDER_REF,
    Sub,
    choice_of,
    emit,
    json_option,
    list_filters,
    listing_of,
    paging,
    with_gateway,
    with_store,
)
from edi_gateway.domain.status import NEEDS, OrderStatus

if TYPE_CHECKING:
    from edi_gateway.app import Gateway
    from edi_gateway.cli.common import Opened

STATUSES = [s.value for s in OrderStatus]


def add_commands(sub: Sub) -> None:
    """The ``orders`` command group."""
    orders = sub.add_parser(
        "orders", help="list and inspect orders; add notes, release held orders, cancellations"
    )
    osub = orders.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = osub.add_parser("list", help="orders, newest first")
    list_filters(listing, "received")
    order_filters(listing)
    paging(listing)
    json_option(listing)
    listing.set_defaults(handler=listing_of("page_orders", "orders_table"))

    show = osub.add_parser("show", help="an order: lines and quantities, documents, history")
    show.add_argument("ref", help=ORDER_REF)
    json_option(show)
    show.set_defaults(handler=with_store(_show))

    note = osub.add_parser("note", help="add an operator's note to an order's history")
    note.add_argument("ref", help=ORDER_REF)
    note.add_argument("text", help="the note")
    json_option(note)
    note.set_defaults(handler=with_gateway(_note))

    clear = osub.add_parser(
        "clear-attention", help="clear an order's attention flag once its discrepancies are settled"
    )
    clear.add_argument("ref", help=ORDER_REF)
    clear.add_argument("--reason", required=True, help="how they were settled (kept in history)")
    json_option(clear)
    clear.set_defaults(handler=with_gateway(_clear_attention))

    release = osub.add_parser("release", help="let a held order go to its supplier")
    release.add_argument("ref", help=ORDER_REF)
    json_option(release)
    release.set_defaults(handler=with_gateway(_release))
    _add_cancel(osub)


def order_filters(group: argparse._ActionsContainer) -> None:
    """The filters only ``orders list`` has (besides those of every list): ``--status``,
    ``--search``, ``--type``, ``--overdue``, ``--attention`` and ``--needs``. The bulk
    ``respond``/``despatch``/``invoice`` select their orders with the same."""
    group.add_argument(
        "--status",
        type=choice_of(STATUSES),
        choices=STATUSES,
        metavar="STATUS",
        help=f"only orders in this status (any case, '-' for a space): {', '.join(STATUSES)}",
    )
    group.add_argument("--search", help="order IDs, party names, item names and IDs")
    group.add_argument(
        "--type",
        dest="order_type",
        metavar="TYPE",
        help="only orders of this type: purchase, blanket (framework), call-off, consignment, "
        "cross-docking, internal, express, or an OrderTypeCode such as 221",
    )
    group.add_argument(
        "--overdue",
        action="store_true",
        help="only orders whose response or despatch is overdue now (partners' sla: terms)",
    )
    group.add_argument(
        "--attention",
        action="store_true",
        help="only orders whose documents exceed what was ordered, despatched or invoiced",
    )
    group.add_argument(
        "--needs",
        choices=NEEDS,
        help="only orders that still need a response (none yet), a despatch (accepted, "
        "nothing despatched) or an invoice (despatched beyond what was invoiced)",
    )


def _add_cancel(osub: Sub) -> None:
    cancel = osub.add_parser(
        "cancel", help="answer a buyer's cancellation that waits for the supplier's answer"
    )
    cancel.add_argument("ref", help=ORDER_REF)
    outcome = cancel.add_mutually_exclusive_group(required=True)
    outcome.add_argument(
        "--accepted", action="store_true", help="the supplier accepts: the order is cancelled"
    )
    outcome.add_argument(
        "--refused", action="store_true", help="the supplier refuses: the order goes on"
    )
    cancel.add_argument("--reason", help="why (a refusal's reason is shown to the buyer)")
    json_option(cancel)
    cancel.set_defaults(handler=with_gateway(_cancel))


def _show(gateway: Opened, args: argparse.Namespace) -> int:
    from edi_gateway import views
    from edi_gateway.store.queries import find_order, order_detail

    with gateway.store.looking() as conn:
        detail = order_detail(conn, find_order(conn, args.ref))
    return emit(detail, args.json, views.order_text(detail))


def _clear_attention(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.app import operator_name
    from edi_gateway.pipeline.discrepancies import clear_attention
    from edi_gateway.store.queries import locked_order

    with gateway.store.session() as session:
        order = locked_order(session, args.ref)
        count = clear_attention(session, order, args.reason, actor=operator_name())
        data = {"order_id": order.id, "number": order.order_number, "discrepancies": count}
    text = f"attention cleared on {data['number']} ({count} discrepancies stay in its record)"
    return emit(data, args.json, text)


def _note(gateway: Gateway, args: argparse.Namespace) -> int:
    order_id = gateway.note(args.ref, args.text)
    return emit({"order_id": order_id, "note": args.text}, args.json, "noted")


def _release(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.app import operator_name
    from edi_gateway.outbound.forward import release

    done = release(gateway.store, gateway.settings, args.ref, actor=operator_name())
    states = ", ".join(f"{k}: {v}" for k, v in done.states.items())
    data = {
        "order_id": done.order_id,
        "order": done.order_number,
        "number": done.order_number,
        "forwards": done.states,
    }
    return emit(data, args.json, f"released {done.order_number} ({states})")


def _cancel(gateway: Gateway, args: argparse.Namespace) -> int:
    """``orders cancel``: decide the order's pending cancellation, recorded as the operator."""
    from edi_gateway.app import operator_name
    from edi_gateway.outbound.cancel import answer

    done = answer(
        gateway.store,
        gateway.settings,
        args.ref,
        accepted=args.accepted,
        reason=args.reason,
        actor=operator_name(),
    )
    data = {
        "order_id": done.order_id,
        "order": done.order_number,
        "number": done.order_number,
        "cancellations": done.cancellations,
        "outcome": done.outcome,
        "order_status": done.status,
        "outbox_ids": done.outbox_ids,
    }
    told = f"; the buyer is told (outbox #{', #'.join(map(str, done.outbox_ids))})"
    text = (
        f"cancellation {', '.join(done.cancellations)} of {done.order_number} {done.outcome}; "
        f"order is {done.status}" + (told if done.outbox_ids else "")
    )
    return emit(data, args.json, text)
