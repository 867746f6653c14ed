"""Operator actions: POST only, CSRF-checked, confirmed, done by the application function the
CLI calls, recorded in history with the signed-in user's name. A viewer gets 403.

The confirmation works without JavaScript: a POST without ``confirmed=yes`` answers a page
that says what will happen, with the same form (and ``confirmed=yes``) to send it for real.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.outbox import RETRYABLE, retry
from edi_gateway.store.queries import get_order, order_summary
from edi_gateway.web.app import console, signed_in
from edi_gateway.web.auth import checked_form

if TYPE_CHECKING:
    from edi_gateway.outbound.issuing import Issued


def routes() -> list[Route]:
    """The action endpoints."""
    return [
        Route("/orders/{order_id:int}/note", note, methods=["POST"]),
        Route("/outbox/{outbox_id:int}/retry", retry_now, methods=["POST"]),
        Route("/messages/{message_id:int}/dismiss", dismiss, methods=["POST"]),
        Route("/messages/{message_id:int}/redrive", redrive, methods=["POST"]),
        Route("/orders/{order_id:int}/respond", respond_to, methods=["POST"]),
        Route("/orders/{order_id:int}/despatch", despatch_all, methods=["POST"]),
        Route("/orders/{order_id:int}/invoice", invoice_all, methods=["POST"]),
    ]


@dataclass(frozen=True, slots=True)
class Asked:
    """An action as the form asked for it: its fields, whether it was confirmed."""

    fields: dict[str, str]
    confirmed: bool


async def _asked(request: Request) -> Asked:
    """The form, once the CSRF token and the user's role allow acting."""
    fields = await checked_form(request)
    who = signed_in(request)
    if not who.may_act:
        raise GatewayError(
            ErrorCode.ROLE_REFUSED,
            f"{who.user} is a {who.role}: only an operator or an admin may do this",
        )
    return Asked(fields, fields.get("confirmed") == "yes")


def _confirm(request: Request, title: str, what: str, asked: Asked, back: str) -> Response:
    keep = {k: v for k, v in asked.fields.items() if k not in ("csrf_token", "confirmed")}
    return console(request).page(
        request, "confirm.html", title=title, what=what, fields=keep, back=back
    )


async def note(request: Request) -> Response:
    """Add a note to an order's history (confirmed first)."""
    asked = await _asked(request)
    order_id = request.path_params["order_id"]
    text = asked.fields.get("text", "")
    back = f"/orders/{order_id}"
    if not asked.confirmed:
        shown = text.strip() or "(empty)"
        return _confirm(request, "Add a note", f"Note on order #{order_id}: {shown}", asked, back)
    gateway, user = console(request).gateway, signed_in(request).user
    await run_in_threadpool(lambda: gateway.note(order_id, text, actor=user))
    return RedirectResponse(f"{back}?done=note", 303)


async def retry_now(request: Request) -> Response:
    """Make a pending or failed outbox row due now (confirmed first), as `outbox retry ID`."""
    asked = await _asked(request)
    outbox_id = request.path_params["outbox_id"]
    back = f"/outbox/{outbox_id}"
    if not asked.confirmed:
        what = f"Deliver outbox row #{outbox_id} again now (a failed row gets a new round)."
        return _confirm(request, "Retry a delivery", what, asked, back)
    store, user = console(request).gateway.store, signed_in(request).user
    await run_in_threadpool(lambda: retry(store, [outbox_id], actor=user, states=RETRYABLE))
    return RedirectResponse(f"{back}?done=retry", 303)


async def dismiss(request: Request) -> Response:
    """Dismiss a failed message with a reason (confirmed first), as `messages dismiss`."""
    asked = await _asked(request)
    message_id = request.path_params["message_id"]
    reason = asked.fields.get("reason", "")
    back = f"/messages/{message_id}"
    if not asked.confirmed:
        what = f"Dismiss message #{message_id} for good (never redriven): {reason.strip()}"
        return _confirm(request, "Dismiss a message", what, asked, back)
    gateway, user = console(request).gateway, signed_in(request).user
    await run_in_threadpool(lambda: gateway.dismiss(message_id, reason, actor=user))
    return RedirectResponse(f"{back}?done=dismiss", 303)


async def redrive(request: Request) -> Response:
    """Process a failed, orphaned or unprocessed message again (confirmed first), as
    `messages redrive ID`."""
    asked = await _asked(request)
    message_id = request.path_params["message_id"]
    back = f"/messages/{message_id}"
    if not asked.confirmed:
        what = f"Process message #{message_id} again (after fixing what made it fail)."
        return _confirm(request, "Redrive a message", what, asked, back)
    gateway, user = console(request).gateway, signed_in(request).user
    await run_in_threadpool(lambda: gateway.redrive([message_id], actor=user))
    return RedirectResponse(f"{back}?done=redrive", 303)


RESPONSES = {"accept": "AP", "reject": "RE"}


async def respond_to(request: Request) -> Response:
    """Accept the order, or reject it with a reason (confirmed first), as `respond --accept` /
    `respond --reject --reason`: an Order Response queued for the buyer."""
    from edi_gateway.outbound.respond import Decision, respond

    asked = await _asked(request)
    answer = asked.fields.get("answer", "")
    if answer not in RESPONSES:
        raise GatewayError(ErrorCode.USAGE, f"answer {answer!r}: expected accept or reject")
    reason = asked.fields.get("reason", "").strip() or None
    what = f"Send the buyer an Order Response: {answer}" + (f" ({reason})" if reason else "")
    decision = Decision(RESPONSES[answer], reason)
    return await _issue(
        request,
        asked,
        title="Respond to the order",
        what=what,
        command=respond,
        wanted=decision,
        done="respond",
    )


async def despatch_all(request: Request) -> Response:
    """Despatch everything still open (confirmed first), as `despatch ORDER`."""
    from edi_gateway.outbound.despatch import DespatchRequest, despatch

    asked = await _asked(request)
    what = "Send the buyer a Despatch Advice for everything still open."
    return await _issue(
        request,
        asked,
        title="Despatch",
        what=what,
        command=despatch,
        wanted=DespatchRequest(),
        done="despatch",
    )


async def invoice_all(request: Request) -> Response:
    """Invoice everything despatched and not yet billed (confirmed first), as `invoice ORDER`."""
    from edi_gateway.outbound.invoice import InvoiceRequest, invoice

    asked = await _asked(request)
    what = "Send the buyer an Invoice for everything despatched and not yet billed."
    return await _issue(
        request,
        asked,
        title="Invoice",
        what=what,
        command=invoice,
        wanted=InvoiceRequest(),
        done="invoice",
    )


async def _issue(
    request: Request,
    asked: Asked,
    *,
    title: str,
    what: str,
    command: Callable[..., Issued],
    wanted: object,
    done: str,
) -> Response:
    """Confirm, then run an issuing command on the order as the CLI does, as the user."""
    order_id = request.path_params["order_id"]
    back = f"/orders/{order_id}"
    if not asked.confirmed:
        return _confirm(request, title, f"Order #{order_id}: {what}", asked, back)
    here, user = console(request), signed_in(request).user
    store, settings = here.gateway.store, here.gateway.settings

    def run() -> Issued:
        with store.reading() as session:
            ref = order_summary(get_order(session, order_id))["ref"]
        return command(store, settings, ref, wanted, actor=user, force=False)

    await run_in_threadpool(run)
    return RedirectResponse(f"{back}?done={done}", 303)
