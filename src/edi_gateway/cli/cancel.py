"""``edi-gateway orders cancel``: an operator answers a buyer's pending cancellation. No logic.

See docs/adr/0008-cancellations.md and :mod:`edi_gateway.outbound.cancel`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edi_gateway.app import Gateway

Printer = Callable[[Any, bool, str], int]


def add_cancel(orders: Any, json_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``orders cancel`` (answer a buyer's pending cancellation for the supplier)."""
    cancel = orders.add_parser(
        "cancel", help="answer a buyer's cancellation that waits for the supplier's answer"
    )
    cancel.add_argument("ref", help="store ID, BUYER:ORDER_ID or an unambiguous order ID")
    outcome = cancel.add_mutually_exclusive_group(required=True)
    outcome.add_argument(
        "--accepted", action="store_true", help="the supplier accepts: the order is cancelled"
    )
    outcome.add_argument(
        "--refused", action="store_true", help="the supplier refuses: the order goes on"
    )
    cancel.add_argument("--reason", help="why (a refusal's reason is shown to the buyer)")
    json_flag(cancel)


def cancel(gateway: Gateway, args: argparse.Namespace, emit: Printer) -> int:
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
