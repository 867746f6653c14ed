"""Signing in and out, and the CSRF check every form of the console passes.

``/login`` is a form (``username``, ``password``, hidden ``csrf_token``). Before a session
exists its CSRF token is a double-submit pair: a random cookie and the same value in the form.
After sign-in each session has its own token (accounts.py), checked on every POST, and the
browser gets a device cookie for that user (sent back only to ``/login``): with it, guesses
from other clients cannot lock the user out (docs/adr/0047).
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from edi_gateway import accounts
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.web.app import COOKIE, LOGIN_COOKIE, STATUS_OF, console, signed_in

DEVICE_COOKIE = "edi_device"
DEVICE_DAYS = 365
"""How long a browser stays known for the user who signed in with it (a new password ends
it sooner)."""


def routes() -> list[Route]:
    """``/login`` (GET, POST) and ``/logout`` (POST)."""
    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]


def login_form(request: Request) -> Response:
    """The sign-in form, with a fresh double-submit CSRF token."""
    return _form(request, request.query_params.get("next", ""), None)


def _form(request: Request, wanted: str, error: GatewayError | None) -> Response:
    token = secrets.token_urlsafe(32)
    status = 200 if error is None else STATUS_OF.get(error.code, 401)
    page = console(request).page(
        request, "login.html", status, csrf_token=token, next=_safe_next(wanted), error=error
    )
    page.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/login")
    return page


async def login(request: Request) -> Response:
    """Check the form; on success a session cookie and a redirect to where the user wanted."""
    form = await request.form()
    fields = {key: form.get(key) for key in ("username", "password", "csrf_token", "next")}
    wanted = _text(fields["next"])
    sent, kept = _text(fields["csrf_token"]), request.cookies.get(LOGIN_COOKIE, "")
    if not (sent and kept and secrets.compare_digest(sent.encode(), kept.encode())):
        refused = GatewayError(ErrorCode.CSRF_REFUSED, "the sign-in form was stale: try again")
        return _form(request, wanted, refused)
    here = console(request)
    address = request.client.host if request.client else "unknown"
    try:
        token = await run_in_threadpool(
            accounts.sign_in,
            here.gateway.store,
            _text(fields["username"]),
            _text(fields["password"]),
            address,
            here.policy,
            device=request.cookies.get(DEVICE_COOKIE),
        )
        device = await run_in_threadpool(
            accounts.device_cookie, here.gateway.store, _text(fields["username"])
        )
    except GatewayError as exc:
        return _form(request, wanted, exc)
    response = RedirectResponse(_safe_next(wanted) or "/orders", 303)
    response.set_cookie(  # this browser is now known for this user (accounts.py, ADR 0047)
        DEVICE_COOKIE,
        device,
        max_age=DEVICE_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=here.settings.secure_cookie,
        path="/login",
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(here.policy.lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=here.settings.secure_cookie,
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


async def logout(request: Request) -> Response:
    """End the session (a POST with its CSRF token) and go back to the sign-in form."""
    await checked_form(request)
    here = console(request)
    await run_in_threadpool(accounts.sign_out, here.gateway.store, request.cookies.get(COOKIE))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE)
    return response


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form's text fields, after its ``csrf_token`` proved to be this session's
    (CSRF_REFUSED otherwise)."""
    form = await request.form()
    if not accounts.csrf_ok(signed_in(request), form.get("csrf_token")):
        raise GatewayError(
            ErrorCode.CSRF_REFUSED, "the form's CSRF token is missing or not this session's"
        )
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _safe_next(wanted: str) -> str:
    """Where to go after sign-in: a path on this site only (never ``//host`` or a URL)."""
    safe = not any(ord(c) < 0x20 or c in "\\\x7f" for c in wanted)  # no CR/LF, no backslash
    if safe and wanted.startswith("/") and not wanted.startswith("//"):
        return wanted
    return ""
