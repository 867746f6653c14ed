"""The console's ASGI app: routes, the sign-in guard, templates, security headers, errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles

from edi_gateway import accounts
from edi_gateway.errors import REMEDY, ErrorCode, GatewayError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from edi_gateway.app import Gateway
    from edi_gateway.config.daemon import ConsoleSettings

log = logging.getLogger(__name__)
Health = Callable[[], tuple[int, dict[str, Any]]]
COOKIE = "edi_session"
LOGIN_COOKIE = "edi_login_csrf"
OPEN_PATHS = ("/login", "/static/")
MAX_FORM_BYTES = 64 * 1024  # a note is at most 2,000 characters
STATUS_OF = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.USAGE: 400,
    ErrorCode.AMBIGUOUS: 400,
    ErrorCode.NOT_ALLOWED: 409,
    ErrorCode.ROLE_REFUSED: 403,
    ErrorCode.CSRF_REFUSED: 403,
    ErrorCode.LOGIN_FAILED: 401,
    ErrorCode.LOGIN_REQUIRED: 401,
    ErrorCode.LOGIN_THROTTLED: 429,
    ErrorCode.STORE_UNAVAILABLE: 503,
    ErrorCode.STORE_BUSY: 503,
    ErrorCode.STORE_TOO_NEW: 503,
}
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


@dataclass(frozen=True)
class Console:
    """What every view needs: the gateway, the session policy and cookie flags, the health
    source (the daemon's, or the store's alone) and the templates."""

    gateway: Gateway
    settings: ConsoleSettings
    health: Health
    templates: jinja2.Environment = field(repr=False)

    @property
    def policy(self) -> accounts.Policy:
        """Session lifetimes and sign-in limits."""
        return accounts.Policy.of(self.settings)

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """Template ``name`` rendered with ``context``, the signed-in user and the request."""
        who = request.scope.get("state", {}).get("who")
        body = self.templates.get_template(name).render(request=request, who=who, **context)
        return HTMLResponse(body, status, {"Cache-Control": "no-store"})

    def failed(self, request: Request, exc: GatewayError, status: int | None = None) -> Response:
        """A coded error: an HTML page, or JSON for a client that does not take HTML."""
        status = status or STATUS_OF.get(exc.code, 400)
        if not wants_html(request):
            return JSONResponse({"error": {"code": exc.code.value, "message": exc.message}}, status)
        remedy = REMEDY.get(exc.code)
        return self.page(request, "error.html", status, error=exc, remedy=remedy)


def console(request: Request) -> Console:
    """The console this request is served by."""
    found = request.app.state.console
    assert isinstance(found, Console)
    return found


def signed_in(request: Request) -> accounts.SignedIn:
    """The user of this request (the guard let it through, so there is one)."""
    who = request.scope["state"]["who"]
    assert isinstance(who, accounts.SignedIn)
    return who


def wants_html(request: Request) -> bool:
    """Whether the client takes HTML (a browser) rather than being a script."""
    return "text/html" in request.headers.get("accept", "")


def console_app(
    gateway: Gateway, settings: ConsoleSettings, *, health: Health | None = None
) -> ASGIApp:
    """The console as an ASGI app; ``health`` is the daemon's (default: the store's view)."""
    from edi_gateway.web import actions, auth, pages

    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("edi_gateway.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    look = health or pages.store_health(gateway)
    routes = [
        *auth.routes(),
        *pages.routes(),
        *actions.routes(),
        Mount("/static", StaticFiles(packages=[("edi_gateway.web", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            GatewayError: _coded,
            DBAPIError: _store_failed,
            404: _not_found,
            405: _not_allowed,
        },
    )
    app.state.console = Console(gateway, settings, look, templates)
    return SecurityHeaders(BodyLimit(SignInRequired(app, app.state.console)))


def _coded(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return console(request).failed(request, exc)


def _store_failed(request: Request, exc: Exception) -> Response:
    """A store that cannot be reached (or stays locked) during a page: a coded 503 page, as
    the CLI's one line; any other database error is a bug and stays a 500."""
    from edi_gateway.store.db import unavailable

    coded = unavailable(exc)
    if coded is None:
        raise exc
    log.warning("console %s %s: %s", request.method, request.url.path, coded.message)
    return console(request).failed(request, coded)


def _not_found(request: Request, exc: Exception) -> Response:
    return _coded(request, GatewayError(ErrorCode.NOT_FOUND, f"no page {request.url.path}"))


def _not_allowed(request: Request, exc: Exception) -> Response:
    what = f"{request.method} {request.url.path}"
    refused = GatewayError(ErrorCode.NOT_ALLOWED, f"{what} is not allowed (a form posts it)")
    return console(request).failed(request, refused, 405)


class SignInRequired:
    """Every page but ``/login`` and ``/static/`` needs a live session: without one a browser
    is sent to ``/login`` (303), any other client gets 401. A path that is no page is 404
    for everyone (the pages are no secret: they are in the source)."""

    def __init__(self, app: Starlette, console: Console) -> None:
        self.app, self.console = app, console

    def _open(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope.get("path", "").startswith(OPEN_PATHS):
            return True
        return all(route.matches(scope)[0] == Match.NONE for route in self.app.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._open(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = request.cookies.get(COOKIE)
        policy = self.console.policy
        store = self.console.gateway.store
        try:
            who = await run_in_threadpool(accounts.session_of, store, token, policy)
        except DBAPIError as exc:
            from edi_gateway.store.db import unavailable

            coded = unavailable(exc)
            if coded is None:
                raise
            log.warning("console %s: %s", request.url.path, coded.message)
            await self.console.failed(request, coded)(scope, receive, send)
            return
        if who is None:
            await _sign_in_first(request)(scope, receive, send)
            return
        scope.setdefault("state", {})["who"] = who
        await self.app(scope, receive, send)


def _sign_in_first(request: Request) -> Response:
    if not wants_html(request):
        message = "sign in at /login first (no session, or it expired)"
        body = {"error": {"code": ErrorCode.LOGIN_REQUIRED.value, "message": message}}
        return JSONResponse(body, 401, {"WWW-Authenticate": 'Cookie realm="edi-gateway"'})
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import quote

    return RedirectResponse(f"/login?next={quote(wanted, safe='')}", 303)


class BodyLimit:
    """A form is small: a POST must say its length (browsers do) and stay under ``limit``
    bytes, else 411 or 413 before anything reads it (the HTTP layer holds a request to the
    length it declared)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_FORM_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            declared = Headers(scope=scope).get("content-length", "")
            status = 411 if not declared.isdigit() else 413 if int(declared) > self.limit else 0
            if status:
                text = f"a form must declare its length and stay under {self.limit} bytes\n"
                await PlainTextResponse(text, status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Headers on every console response: a strict Content-Security-Policy (no script, no
    frames), no MIME sniffing, no referrer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
