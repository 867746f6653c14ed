"""The console's read pages: each calls one query of store/queries.py (or views.py) and renders
it. Filters come from the query string and are checked like the CLI's options: an unknown
status or state is a USAGE error (400), never an empty list."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from edi_gateway import views
from edi_gateway.domain.order_data import EXPRESS, TYPE_FILTERS
from edi_gateway.domain.status import NEEDS, OrderStatus
from edi_gateway.errors import REMEDY, ErrorCode, GatewayError
from edi_gateway.pipeline import operator
from edi_gateway.store import queries
from edi_gateway.web.app import console, signed_in

if TYPE_CHECKING:
    from edi_gateway.app import Gateway

PAGE_SIZE = 50
ORDER_STATUSES = [s.value for s in OrderStatus]
ORDER_TYPES = [*TYPE_FILTERS, EXPRESS]
MESSAGE_STATES = ["received", "processed", "orphan", "duplicate", "failed", "dismissed"]
OUTBOX_STATES = ["pending", "awaiting_receipt", "sent", "failed", "withdrawn"]
DONE = {
    "note": "Note added to the order's history.",
    "retry": "The row is due now: it goes with the next delivery cycle of the running gateway.",
    "dismiss": "The message is dismissed: it leaves the failed list and is never redriven.",
    "redrive": "The message was processed again: its state and history show how it went.",
    "respond": "The Order Response is queued for the buyer.",
    "despatch": "The Despatch Advice is queued for the buyer.",
    "invoice": "The Invoice is queued for the buyer.",
    "credit": "The Credit Note is queued for the buyer.",
    "attach": "The message is attached to the order and processed there: its history shows how.",
    "release": "The order is released: it goes to its supplier with the next bundle due.",
}


def routes() -> list[Route]:
    """The read pages."""
    return [
        Route("/", home),
        Route("/orders", orders),
        Route("/orders/{order_id:int}", order),
        Route("/messages", messages),
        Route("/messages/{message_id:int}", message),
        Route("/messages/{message_id:int}/raw", raw),
        Route("/documents/{document_id:int}/{fmt}", document),
        Route("/outbox", outbox),
        Route("/outbox/{outbox_id:int}", outbox_row),
        Route("/partners", partners),
        Route("/health", health),
        Route("/today", today),
        Route("/kpi", kpi),
    ]


def home(request: Request) -> Response:
    """The console starts with the orders."""
    return RedirectResponse("/orders", 303)


def orders(request: Request) -> Response:
    """Orders, newest first: status, partner and free-text filters, paged."""
    q = request.query_params
    filters = queries.Filters(
        state=_choice(q.get("status"), ORDER_STATUSES, "status"),
        order_type=_choice(q.get("type"), ORDER_TYPES, "type"),
        partner=q.get("partner") or None,
        search=q.get("q"),
        since=_since(q),
        attention=True if q.get("attention") else None,
        overdue=bool(q.get("overdue")),
        needs=_choice(q.get("needs"), list(NEEDS), "needs"),
    )
    page = _listed(request, queries.page_orders, filters)
    return _show(
        request,
        "orders.html",
        page=page,
        statuses=ORDER_STATUSES,
        types=ORDER_TYPES,
        needs=NEEDS,
        filters=filters,
    )


def order(request: Request) -> Response:
    """One order: lines with their quantities, documents, history; the note form."""
    with _gateway(request).store.reading() as session:
        found = queries.get_order(session, request.path_params["order_id"])
        detail = queries.order_detail(session, found)
    # the despatch forms ask for the seller's item ID of these lines
    return _show(request, "order.html", order=detail, unnamed=detail["unnamed"])


def messages(request: Request) -> Response:
    """Messages, newest first, by state, error code and partner, paged."""
    q = request.query_params
    filters = queries.Filters(
        state=_choice(q.get("state"), MESSAGE_STATES, "state"),
        partner=q.get("partner") or None,
        code=q.get("code") or None,
        since=_since(q),
    )
    page = _listed(request, queries.page_messages, filters)
    return _show(request, "messages.html", page=page, states=MESSAGE_STATES, filters=filters)


def message(request: Request) -> Response:
    """One message: its error with the remedy, findings and history."""
    with _gateway(request).store.reading() as session:
        detail = queries.message_detail(session, request.path_params["message_id"])
    code = detail["error_code"]
    remedy = REMEDY.get(ErrorCode(code)) if code in ErrorCode.__members__ else None
    return _show(request, "message.html", message=detail, remedy=remedy)


def raw(request: Request) -> Response:
    """The bytes as received, as a download: never rendered (they are the partner's)."""
    message_id = request.path_params["message_id"]
    payload = operator.raw_payload(_gateway(request).store, message_id)
    headers = {
        "Content-Disposition": f'attachment; filename="message-{message_id}.raw"',
        "Cache-Control": "no-store",
    }
    return Response(payload, 200, headers, media_type="application/octet-stream")


def document(request: Request) -> Response:
    """A stored document as UBL (as received or issued), PDF or Excel: a download, as
    `documents show ID --format`."""
    from edi_gateway.outbound.documents import show

    gateway = _gateway(request)
    params = request.path_params
    shown = show(gateway.store, gateway.settings, params["document_id"], params["fmt"])
    name = re.sub(r"[^A-Za-z0-9._-]", "_", shown.filename)[:150]  # partner text in a header
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return Response(shown.payload, 200, headers, media_type=shown.media_type)


def outbox(request: Request) -> Response:
    """Outbox rows, newest first, by state and partner, paged."""
    q = request.query_params
    filters = queries.Filters(
        state=_choice(q.get("state"), OUTBOX_STATES, "state"), partner=q.get("partner") or None
    )
    from edi_gateway.outbound.forward import waiting_bundles
    from edi_gateway.pipeline.history import now

    page = _listed(request, queries.page_outbox, filters)
    gateway = _gateway(request)
    with gateway.store.reading() as session:
        waiting, waiting_total = waiting_bundles(session, gateway.settings, now())
    return _show(
        request,
        "outbox.html",
        page=page,
        states=OUTBOX_STATES,
        filters=filters,
        waiting=waiting,
        waiting_total=waiting_total,
    )


def outbox_row(request: Request) -> Response:
    """One outbox row: where it goes, its state, its last error, its findings."""
    with _gateway(request).store.reading() as session:
        detail = queries.outbox_detail(session, request.path_params["outbox_id"])
    return _show(request, "outbox_row.html", row=detail)


def partners(request: Request) -> Response:
    """The partners of gateway.yaml with their endpoint, connectors and checks, and every
    certificate gateway.yaml names with its expiry, soonest first."""
    from edi_gateway.alerts.clocks import expiries
    from edi_gateway.pipeline.history import now

    settings, moment = _gateway(request).settings, now()
    certificates = [
        {
            "where": found.where,
            "subject": found.subject,
            "not_after": queries.utc_text(found.not_after),
            "days_left": round(found.days_left(moment), 1),
        }
        for found in expiries(settings)
    ]
    rows = views.partner_rows(settings)
    return _show(request, "partners.html", partners=rows, certificates=certificates)


def health(request: Request) -> Response:
    """What ``/healthz`` says, readable: store, connectors, deliveries."""
    status, data = console(request).health()
    return _show(request, "health.html", status=status, health=data)


def today(request: Request) -> Response:
    """Today's traffic (UTC) and what waits for someone, each a count linking to its list."""
    from edi_gateway.pipeline.history import now

    midnight = now().replace(hour=0, minute=0, second=0, microsecond=0)
    F = queries.Filters
    day = F(since=midnight)
    with _gateway(request).store.reading() as session:

        def count(page_of: Callable[..., queries.Page], filters: queries.Filters) -> int:
            return page_of(session, filters, 1, 0).total

        received = {
            state: count(queries.page_messages, queries.Filters(state=state, since=midnight))
            for state in MESSAGE_STATES
        }
        lists: list[tuple[str, str, Callable[..., queries.Page], queries.Filters]] = [
            (f"{what} messages", f"/messages?state={what}", queries.page_messages, F(state=what))
            for what in ("failed", "orphan")
        ]
        lists += [
            (f"{what} deliveries", f"/outbox?state={what}", queries.page_outbox, F(state=what))
            for what in ("failed", "pending")
        ]
        lists += [
            (f"orders needing {n}", f"/orders?needs={n}", queries.page_orders, F(needs=n))
            for n in NEEDS
        ]
        waiting = {what: (link, count(page_of, f)) for what, link, page_of, f in lists}
        orders_today = count(queries.page_orders, day)
    _, health_data = console(request).health()
    return _show(
        request,
        "today.html",
        day=midnight.date().isoformat(),
        received=received,
        orders_today=orders_today,
        waiting=waiting,
        health=health_data,
    )


def kpi(request: Request) -> Response:
    """The figures of `edi-gateway report kpi` (reports/kpi.py) for a window and a partner,
    with bar charts drawn as SVG on the server (web/charts.py)."""
    from edi_gateway.reports.kpi import kpi_report, window
    from edi_gateway.web.charts import kpi_charts

    q = request.query_params
    since, until = window(_time(q, "since"), _time(q, "until"))
    partner = q.get("partner") or None
    with _gateway(request).store.reading() as session:
        rows = kpi_report(session.connection(), since, until, partner)
    return _show(
        request,
        "kpi.html",
        since=queries.utc_text(since),
        until=queries.utc_text(until),
        partner=partner,
        partners=rows,
        charts=kpi_charts(rows),
    )


def store_health(gateway: Gateway) -> Callable[[], tuple[int, dict[str, Any]]]:
    """The health of a console served without the daemon: the store and the deliveries."""
    from edi_gateway.errors import first_line
    from edi_gateway.outbound.outbox import delivery_states
    from edi_gateway.pipeline.history import now

    def look() -> tuple[int, dict[str, Any]]:
        moment = now()
        try:
            with gateway.store.reading() as session:
                states = delivery_states(session, gateway.settings, moment)
        except Exception as exc:  # noqa: BLE001 - any failure means: not reachable
            data = {"status": "degraded", "store": {"reachable": False, "error": first_line(exc)}}
            return 503, data
        failing = sorted(name for name, state in states.items() if state.failing)
        return 200, {
            "status": "degraded" if failing else "ok",
            "daemon": "not running here (`edi-gateway console` serves the pages alone)",
            "store": {"reachable": True, "error": None},
            "deliveries": {
                "failing": failing,
                "connectors": {name: s.as_json(moment) for name, s in states.items()},
            },
        }

    return look


def _gateway(request: Request) -> Gateway:
    return console(request).gateway


def _show(request: Request, template: str, **context: Any) -> Response:
    done = DONE.get(request.query_params.get("done", ""))
    return console(request).page(request, template, done=done, me=signed_in(request), **context)


def _choice(value: str | None, allowed: list[str], what: str) -> str | None:
    """``value`` if it is one of ``allowed`` (any case), None if empty; USAGE otherwise."""
    if not value:
        return None
    canonical = {v.lower(): v for v in allowed}
    found = canonical.get(value.lower())
    if found is None:
        raise GatewayError(
            ErrorCode.USAGE, f"unknown {what} {value!r}: expected one of {', '.join(allowed)}"
        )
    return found


def _since(q: Any) -> datetime | None:
    """``since`` of the query string: an ISO date or time (UTC unless it names a zone)."""
    return _time(q, "since")


def _time(q: Any, name: str) -> datetime | None:
    """``name`` of the query string: an ISO date or time (UTC unless it names a zone)."""
    text = q.get(name)
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise GatewayError(
            ErrorCode.USAGE, f"{name} {text!r}: expected an ISO date or time"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _listed(
    request: Request, page_of: Callable[..., queries.Page], filters: queries.Filters
) -> queries.Page:
    offset = request.query_params.get("offset", "0")
    if not offset.isdigit() or int(offset) > queries.MAX_STORE_ID:
        raise GatewayError(
            ErrorCode.USAGE, f"offset {offset!r}: expected a whole number, 0 or more"
        )
    with _gateway(request).store.reading() as session:
        return page_of(session, filters, PAGE_SIZE, int(offset))
