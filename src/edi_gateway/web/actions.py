"""Operator actions: POST only, CSRF-checked, confirmed, done by the application function the
CLI calls, recorded in history with the signed-in user's name. A viewer gets 403.

The confirmation works without JavaScript: a POST without ``confirmed=yes`` answers a page
that says what will happen, with the same form (and ``confirmed=yes``) to send it for real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.outbox import RETRYABLE, retry
from edi_gateway.store.queries import get_order, order_lines, order_summary
from edi_gateway.web.app import console, signed_in
from edi_gateway.web.auth import checked_form

if TYPE_CHECKING:
    from edi_gateway.app import Gateway
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
        Route("/orders/{order_id:int}/release", release_held, methods=["POST"]),
        Route("/orders/{order_id:int}/change", respond_changed, methods=["POST"]),
        Route("/orders/{order_id:int}/despatch-lines", despatch_lines, methods=["POST"]),
        Route("/orders/{order_id:int}/invoice-lines", invoice_lines, methods=["POST"]),
        Route("/orders/{order_id:int}/credit", credit, methods=["POST"]),
        Route("/messages/{message_id:int}/attach", attach, methods=["POST"]),
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


@dataclass(frozen=True, slots=True)
class Act:
    """One confirmed action: where it starts from (and returns to), what the confirmation
    says, what it does (with the gateway and the user's name) and its "done" message key."""

    back: str
    title: str
    what: str
    do: Callable[[Gateway, str], object]
    done: str


async def _act(request: Request, asked: Asked, act: Act) -> Response:
    """The confirmation page, or (confirmed) the action as the user and back with "done"."""
    if not asked.confirmed:
        keep = {k: v for k, v in asked.fields.items() if k not in ("csrf_token", "confirmed")}
        return console(request).page(
            request, "confirm.html", title=act.title, what=act.what, fields=keep, back=act.back
        )
    gateway, user = console(request).gateway, signed_in(request).user
    await run_in_threadpool(act.do, gateway, user)
    return RedirectResponse(f"{act.back}?done={act.done}", 303)


async def note(request: Request) -> Response:
    """Add a note to an order's history (confirmed first), as `orders note`."""
    asked = await _asked(request)
    order_id = request.path_params["order_id"]
    text = asked.fields.get("text", "")
    what = f"Note on order #{order_id}: {text.strip() or '(empty)'}"
    return await _act(
        request,
        asked,
        Act(
            f"/orders/{order_id}",
            "Add a note",
            what,
            lambda gateway, user: gateway.note(order_id, text, actor=user),
            "note",
        ),
    )


async def retry_now(request: Request) -> Response:
    """Make a pending or failed outbox row due now (confirmed first), as `outbox retry ID`."""
    asked = await _asked(request)
    row = request.path_params["outbox_id"]
    what = f"Deliver outbox row #{row} again now (a failed row gets a new round)."
    return await _act(
        request,
        asked,
        Act(
            f"/outbox/{row}",
            "Retry a delivery",
            what,
            lambda gateway, user: retry(gateway.store, [row], actor=user, states=RETRYABLE),
            "retry",
        ),
    )


async def dismiss(request: Request) -> Response:
    """Dismiss a failed message with a reason (confirmed first), as `messages dismiss`."""
    asked = await _asked(request)
    message_id = request.path_params["message_id"]
    reason = asked.fields.get("reason", "")
    what = f"Dismiss message #{message_id} for good (never redriven): {reason.strip()}"
    return await _act(
        request,
        asked,
        Act(
            f"/messages/{message_id}",
            "Dismiss a message",
            what,
            lambda gateway, user: gateway.dismiss(message_id, reason, actor=user),
            "dismiss",
        ),
    )


async def redrive(request: Request) -> Response:
    """Process a failed, orphaned or unprocessed message again (confirmed first), as
    `messages redrive ID`."""
    asked = await _asked(request)
    message_id = request.path_params["message_id"]
    what = f"Process message #{message_id} again (after fixing what made it fail)."
    return await _act(
        request,
        asked,
        Act(
            f"/messages/{message_id}",
            "Redrive a message",
            what,
            lambda gateway, user: gateway.redrive([message_id], actor=user),
            "redrive",
        ),
    )


async def release_held(request: Request) -> Response:
    """Let a held order go to its supplier (confirmed first), as `orders release`."""
    from edi_gateway.outbound.forward import release

    asked = await _asked(request)
    order_id = request.path_params["order_id"]
    what = f"Release order #{order_id}: it goes to its supplier with the next bundle due."

    def run(gateway: Gateway, user: str) -> object:
        ref = _order_ref(gateway, order_id)
        return release(gateway.store, gateway.settings, ref, actor=user)

    return await _act(request, asked, Act("/outbox", "Release a held order", what, run, "release"))


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
        request, asked, "Respond to the order", what, command=respond, wanted=decision
    )


async def despatch_all(request: Request) -> Response:
    """Despatch everything still open (confirmed first), as `despatch ORDER [--item-id
    LINE:ID]`."""
    from edi_gateway.outbound.despatch import DespatchRequest, despatch

    asked = await _asked(request)
    ids = _item_ids(asked.fields)
    what = "Send the buyer a Despatch Advice for everything still open" + _named(ids) + "."
    wanted = DespatchRequest(item_ids=ids)
    return await _issue(request, asked, "Despatch", what, command=despatch, wanted=wanted)


async def invoice_all(request: Request) -> Response:
    """Invoice everything despatched and not yet billed (confirmed first), as `invoice ORDER`."""
    from edi_gateway.outbound.invoice import InvoiceRequest, invoice

    what = "Send the buyer an Invoice for everything despatched and not yet billed."
    asked = await _asked(request)
    return await _issue(request, asked, "Invoice", what, command=invoice, wanted=InvoiceRequest())


QTY = "qty:"
"""A per-line quantity field of a form: ``qty:LINE_ID``."""
MAX_QUANTITY = Decimal(10) ** 12
ZERO = Decimal(0)


def _quantities(fields: dict[str, str]) -> list[tuple[str, Decimal]]:
    """The form's per-line quantities (``qty:LINE_ID``), blank ones left out, in form order;
    anything but a number of 0 or more is USAGE, naming the line."""
    out: list[tuple[str, Decimal]] = []
    for key, text in fields.items():
        if not key.startswith(QTY) or not text.strip():
            continue
        line_id = key.removeprefix(QTY)
        try:
            quantity = Decimal(text.strip())
        except InvalidOperation:
            quantity = Decimal("NaN")
        if not quantity.is_finite() or not ZERO <= quantity < MAX_QUANTITY:
            raise GatewayError(
                ErrorCode.USAGE, f"line {line_id}: quantity {text!r} is not a number of 0 or more"
            )
        out.append((line_id, quantity))
    return out


ITEM = "item:"
"""A per-line field of the despatch forms: ``item:LINE_ID``, the seller's item ID of a line
the Order named without one (or a GTIN); the form shows one for each such line."""


def _item_ids(fields: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The seller's item IDs the form gives (``item:LINE_ID``; a field left blank gives none),
    checked as ``despatch --item-id`` checks them, before the confirmation: one of only
    spaces or over the column's width is NOT_ALLOWED, naming the line."""
    from edi_gateway.pipeline.item_ids import check

    given = tuple(
        (key.removeprefix(ITEM), text)
        for key, text in fields.items()
        if key.startswith(ITEM) and text
    )
    check(given)
    return tuple((line_id, text.strip()) for line_id, text in given)


def _named(ids: tuple[tuple[str, str], ...]) -> str:
    return "; the seller's item IDs " + _listed(ids) if ids else ""


def _listed(quantities: Iterable[tuple[str, object]]) -> str:
    return ", ".join(f"line {line_id}: {quantity}" for line_id, quantity in quantities)


async def respond_changed(request: Request) -> Response:
    """Accept the order with changed line quantities (0 = line not accepted), confirmed first,
    as `respond --change LINE:QTY`: an Order Response CA. A line left at its ordered quantity
    is accepted as ordered; changing none is USAGE (that is an acceptance)."""
    from edi_gateway.outbound.respond import Decision, LineChange, respond

    asked = await _asked(request)
    order_id = request.path_params["order_id"]
    wanted = _quantities(asked.fields)

    def changed(gateway: Gateway) -> tuple[LineChange, ...]:
        with gateway.store.reading() as session:
            lines = order_lines(session, get_order(session, order_id))
            ordered = {line.line_id: line.qty_ordered for line in lines}
        changes = tuple(LineChange(i, q) for i, q in wanted if ordered.get(i) != q)
        if not changes:
            raise GatewayError(
                ErrorCode.USAGE, "no quantity differs from the order: accept it instead"
            )
        return changes

    reason = asked.fields.get("reason", "").strip() or None
    what = f"Send the buyer an Order Response accepting with changes ({_listed(wanted)})"

    def run(gateway: Gateway, user: str) -> Issued:
        decision = Decision("CA", reason, changed(gateway))
        ref = _order_ref(gateway, order_id)
        return respond(gateway.store, gateway.settings, ref, decision, actor=user)

    back = f"/orders/{order_id}"
    return await _act(request, asked, Act(back, "Accept with changes", what, run, "respond"))


async def despatch_lines(request: Request) -> Response:
    """Despatch the quantities given per line (confirmed first), as `despatch ORDER --line
    LINE:QTY`; more than is open is QUANTITY_EXCEEDED."""
    from edi_gateway.outbound.despatch import DespatchRequest, despatch

    asked = await _asked(request)
    wanted = [(i, q) for i, q in _quantities(asked.fields) if q > ZERO]
    if not wanted:
        raise GatewayError(ErrorCode.USAGE, "give a quantity above 0 for at least one line")
    ids = _item_ids(asked.fields)
    what = f"Send the buyer a Despatch Advice for {_listed(wanted)}{_named(ids)}."
    return await _issue(
        request,
        asked,
        "Despatch",
        what,
        command=despatch,
        wanted=DespatchRequest(tuple(wanted), item_ids=ids),
        done="despatch",
    )


async def invoice_lines(request: Request) -> Response:
    """Invoice the quantities given per line (confirmed first), as `invoice ORDER --line
    LINE:QTY`; more than was despatched and not yet billed is QUANTITY_EXCEEDED."""
    from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest, invoice

    asked = await _asked(request)
    wanted = [(i, q) for i, q in _quantities(asked.fields) if q > ZERO]
    if not wanted:
        raise GatewayError(ErrorCode.USAGE, "give a quantity above 0 for at least one line")
    what = f"Send the buyer an Invoice for {_listed(wanted)}."
    lines = tuple(LineRequest(i, q) for i, q in wanted)
    return await _issue(
        request,
        asked,
        "Invoice",
        what,
        command=invoice,
        wanted=InvoiceRequest(lines),
        done="invoice",
    )


async def credit(request: Request) -> Response:
    """A credit note for one invoice of the order (confirmed first), as `invoice ORDER --credit
    INVOICE_ID [--line LINE:QTY] --reason`: the quantities given, or (none given) all that
    invoice billed and was not credited yet."""
    from edi_gateway.outbound.invoice import InvoiceRequest, LineRequest, invoice

    asked = await _asked(request)
    number = asked.fields.get("invoice", "").strip()
    reason = asked.fields.get("reason", "").strip()
    if not number or not reason:
        raise GatewayError(ErrorCode.USAGE, "a credit note needs the invoice and a reason")
    wanted = [(i, q) for i, q in _quantities(asked.fields) if q > ZERO]
    lines = tuple(LineRequest(i, q) for i, q in wanted)
    scope = _listed(wanted) if wanted else "all it billed and was not credited yet"
    what = f"Send the buyer a Credit Note for invoice {number} ({scope}): {reason}"
    request_ = InvoiceRequest(lines, credit_of=number, reason=reason)
    return await _issue(
        request, asked, "Credit note", what, command=invoice, wanted=request_, done="credit"
    )


async def attach(request: Request) -> Response:
    """Link an orphan message to an order by hand (confirmed first), as `messages attach ID
    ORDER`: the order given as the CLI takes it (store ID, BUYER:ORDER_ID, order ID)."""
    asked = await _asked(request)
    message_id = request.path_params["message_id"]
    order = asked.fields.get("order", "").strip()
    if not order:
        raise GatewayError(ErrorCode.USAGE, "name the order to attach the message to")
    what = f"Attach message #{message_id} to order {order} and process it there."
    return await _act(
        request,
        asked,
        Act(
            f"/messages/{message_id}",
            "Attach a message",
            what,
            lambda gateway, user: gateway.attach(message_id, order, actor=user),
            "attach",
        ),
    )


async def _issue(
    request: Request,
    asked: Asked,
    title: str,
    what: str,
    *,
    command: Callable[..., Issued],
    wanted: object,
    done: str | None = None,
) -> Response:
    """An issuing command of the CLI (store, settings, order reference, request; actor,
    force) as a confirmed action on the order; its "done" key is the path's last part."""
    order_id = request.path_params["order_id"]

    def run(gateway: Gateway, user: str) -> Issued:
        ref = _order_ref(gateway, order_id)
        return command(gateway.store, gateway.settings, ref, wanted, actor=user, force=False)

    done = done or request.url.path.rsplit("/", 1)[1]
    back = f"/orders/{order_id}"
    return await _act(request, asked, Act(back, title, f"Order #{order_id}: {what}", run, done))


def _order_ref(gateway: Gateway, order_id: int) -> str:
    """The order's ``BUYER:ORDER_ID`` reference, as the CLI's commands take it (a bare store
    ID could also be another order's number)."""
    with gateway.store.reading() as session:
        ref = order_summary(get_order(session, order_id))["ref"]
    assert isinstance(ref, str)
    return ref
