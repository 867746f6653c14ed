"""Who may use the web console: users with a role, their passwords, their sessions.

The application functions behind ``edi-gateway users ...`` and the console's sign-in
(docs/adr/0031). Passwords are hashed with scrypt (``hashlib``, RFC 7914) and a random salt;
a session is a random token in a cookie of which the store keeps only the SHA-256, with the
session's CSRF token, its last use (idle expiry) and its absolute end.

Guessing is limited twice (docs/adr/0047, OWASP "Slow Down Online Guessing Attacks with Device
Cookies"). A browser that signed in as a user gets a *device* cookie for that user (a nonce
and its HMAC, keyed by the user's password hash: a new password makes every old one void).
Failed sign-ins are counted per user name and *source*: that device, or, for a client without
one, its address; past ``max_failures`` the source is refused (``LOGIN_THROTTLED``) before the
password is even looked at. Clients without the user's device cookie are also counted
together, whatever their address: past ``max_user_failures`` within the window all of them are
refused for that name (a botnet gets that many guesses, not that many per address), while a
browser that signed in as the user before still can, so the attacker cannot lock the user
out. Each try is counted (committed) before it is judged, so guesses sent all at once get no
more than the limit.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update

from edi_gateway.errors import ErrorCode, GatewayError, LookupFailed
from edi_gateway.pipeline.history import now
from edi_gateway.store.bulk import insert_if_new
from edi_gateway.store.queries import utc_text
from edi_gateway.store.schema import console_sessions, login_failures, users

if TYPE_CHECKING:
    from edi_gateway.config.daemon import ConsoleSettings
    from edi_gateway.store.db import Store

ROLES = ("viewer", "operator", "admin")
"""Viewers read; operators also act on orders, messages and deliveries; admins too (and, in a
later step, manage users from the console)."""
ACTING_ROLES = frozenset({"operator", "admin"})
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
MIN_PASSWORD, MAX_PASSWORD = 12, 1024
# scrypt cost: 2**15 x 8 x 1 takes ~32 MiB and ~0.1 s, the interactive-login figure of RFC 7914
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
DEVICE_SOURCE = "device "
"""How a device's failures are told from an address's in ``login_failures.address``."""
TOUCH_EVERY = timedelta(seconds=60)  # a session's last use is written at most once a minute
# (or a tenth of the idle time, when that is shorter)


@dataclass(frozen=True, slots=True)
class Policy:
    """How long sessions last and how many failed sign-ins are borne."""

    idle: timedelta = timedelta(hours=8)
    lifetime: timedelta = timedelta(hours=24)
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    max_user_failures: int = 20

    @classmethod
    def of(cls, settings: ConsoleSettings) -> Policy:
        """The policy ``daemon.http.console`` sets."""
        return cls(
            idle=timedelta(minutes=settings.session_idle_minutes),
            lifetime=timedelta(hours=settings.session_max_hours),
            max_failures=settings.login_failures,
            window=timedelta(minutes=settings.login_window_minutes),
            max_user_failures=settings.login_failures_per_user,
        )


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session: who, with which role, and the CSRF token its forms carry."""

    user: str
    role: str
    csrf_token: str

    @property
    def may_act(self) -> bool:
        """Whether this user may change anything (operators and admins)."""
        return self.role in ACTING_ROLES


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), for :func:`verify_password`."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant-time compare)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user name is unknown, so an unknown name costs as long as a
    wrong password (no timing oracle for which names exist)."""
    return hash_password(secrets.token_urlsafe(16))


def check_new_user(name: str, role: str, password: str) -> None:
    """USAGE unless the name, role and password are acceptable."""
    if not NAME.fullmatch(name):
        raise GatewayError(
            ErrorCode.USAGE,
            f"user name {name!r}: use 1 to 100 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit",
        )
    if role not in ROLES:
        raise GatewayError(ErrorCode.USAGE, f"role {role!r}: expected one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise GatewayError(
            ErrorCode.USAGE, f"the password is too short: at least {MIN_PASSWORD} characters"
        )
    if len(password) > MAX_PASSWORD:
        raise GatewayError(ErrorCode.USAGE, f"the password is over {MAX_PASSWORD} characters")


def add_user(store: Store, name: str, role: str, password: str, *, replace: bool = False) -> Any:
    """Add a console user (or, with ``replace``, set an existing one's role and password and
    end their sessions). Returns the user as listed by :func:`list_users`."""
    check_new_user(name, role, password)
    hashed, moment = hash_password(password), now()
    values = {"role": role, "password_hash": hashed, "password_set_at": moment}
    with store.connect() as conn:
        # Inserted unless the name is taken, in one statement: two operators adding the same
        # name at once (PostgreSQL) both found it free with a SELECT, and the second insert
        # failed on the unique index instead of saying the user exists or replacing it.
        adding = insert_if_new(conn.dialect.name, users, [users.c.name])
        adding = adding.values(name=name, created_at=moment, **values).returning(users.c.id)
        while conn.execute(adding).scalar() is None:
            if not replace:
                raise GatewayError(
                    ErrorCode.NOT_ALLOWED,
                    f"user {name!r} exists: `users add {name} --role ROLE --replace` sets a "
                    "new password and role",
                )
            # locked; gone if `users remove` committed since the insert looked: then the name
            # is free and the insert is tried again (each turn follows a committed removal)
            taken = select(users.c.id).where(users.c.name == name).with_for_update()
            found = conn.execute(taken).scalar()
            if found is not None:
                conn.execute(update(users).where(users.c.id == found).values(**values))
                conn.execute(delete(console_sessions).where(console_sessions.c.user_id == found))
                break
    return {"name": name, "role": role, "password_set_at": utc_text(moment)}


def list_users(store: Store) -> list[dict[str, Any]]:
    """Every console user with role, creation, password change and live sessions."""
    live = (
        select(func.count())
        .where(console_sessions.c.user_id == users.c.id)
        .where(console_sessions.c.expires_at > now())
        .scalar_subquery()
    )
    query = select(users.c.name, users.c.role, users.c.created_at, users.c.password_set_at, live)
    with store.connect() as conn:
        rows = conn.execute(query.order_by(users.c.name)).all()
    return [
        {
            "name": name,
            "role": role,
            "created_at": utc_text(created),
            "password_set_at": utc_text(changed),
            "sessions": sessions,
        }
        for name, role, created, changed, sessions in rows
    ]


def remove_user(store: Store, name: str) -> dict[str, Any]:
    """Remove a console user and end their sessions (history keeps their name). Two removals
    of one user at once (two terminals): both read it, one deletes it, and the other, whose
    delete then finds no row, is told NOT_FOUND as if it came after (both said "removed")."""
    missing = LookupFailed(ErrorCode.NOT_FOUND, f"there is no user {name!r} (`users list`)")
    with store.connect() as conn:
        found = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
        if found is None:
            raise missing
        ended = conn.execute(delete(console_sessions).where(console_sessions.c.user_id == found))
        if conn.execute(delete(users).where(users.c.id == found)).rowcount == 0:
            raise missing
    return {"name": name, "removed": True, "sessions_ended": ended.rowcount}


def sign_in(
    store: Store,
    name: str,
    password: str,
    address: str,
    policy: Policy,
    *,
    device: str | None = None,
) -> str:
    """A new session's cookie token for ``name``; LOGIN_THROTTLED past a failure limit (this
    source's, or that of every client without the user's ``device`` cookie), LOGIN_FAILED for
    an unknown name or a wrong password (alike)."""
    moment = now()
    since = moment - policy.window
    f = login_failures.c
    with store.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.password_hash).where(users.c.name == name)
        ).first()
    nonce = _device_nonce(name, row.password_hash, device) if row and device else None
    source = f"{DEVICE_SOURCE}{nonce}" if nonce else address[:100]
    failure = {"username": name[:100], "address": source, "at": moment}
    # The attempt is counted (committed) before it is judged, so tries sent at once cannot all
    # pass the check before any failure is written: at most the limit of them go on.
    with store.connect() as conn:
        conn.execute(delete(login_failures).where(f.at < since))
        attempt = conn.execute(
            insert(login_failures).values(**failure).returning(f.id)
        ).scalar_one()
    with store.connect() as conn:
        # every try committed before these counts is in them (this one included): the k-th
        # count made sees at least k tries, so no more than the limit are ever judged
        mine = (f.username == name[:100], f.at >= since)
        tries = conn.execute(select(func.count()).where(*mine, f.address == source)).scalar_one()
        refused = (
            f"too many failed sign-ins for this user from {address}"
            if tries > policy.max_failures
            else None
        )
        if refused is None and nonce is None:
            strangers = conn.execute(
                select(func.count()).where(*mine, f.address.not_like(f"{DEVICE_SOURCE}%"))
            ).scalar_one()
            if strangers > policy.max_user_failures:
                refused = (
                    "too many failed sign-ins for this user; a browser that signed in as this "
                    "user before can still sign in"
                )
        if refused is not None:
            conn.execute(delete(login_failures).where(f.id == attempt))  # not judged: no try
    if refused is not None:
        minutes = int(policy.window.total_seconds() // 60)
        raise GatewayError(ErrorCode.LOGIN_THROTTLED, f"{refused}: try again in {minutes} minutes")
    good = verify_password(password, row.password_hash if row else _dummy_hash())
    if row is None or not good:  # the attempt stays counted as a failure
        raise GatewayError(ErrorCode.LOGIN_FAILED, "unknown user or wrong password")
    token = secrets.token_urlsafe(32)
    with store.connect() as conn:
        # The password verified must still be the user's: `users add --replace` (or `users
        # remove`) committed since the row was read ended the sessions it knew, not this one.
        # The row is held (FOR SHARE) until the session is in: a replace waits, then ends it.
        still = select(users.c.id).where(
            users.c.id == row.id, users.c.password_hash == row.password_hash
        )
        if conn.execute(still.with_for_update(read=True)).first() is None:
            raise GatewayError(ErrorCode.LOGIN_FAILED, "unknown user or wrong password")
        conn.execute(delete(login_failures).where(f.username == name, f.address == source))
        conn.execute(
            insert(console_sessions).values(
                token_hash=_token_hash(token),
                user_id=row.id,
                csrf_token=secrets.token_urlsafe(32),
                address=address[:100],
                created_at=moment,
                last_seen_at=moment,
                expires_at=moment + policy.lifetime,
            )
        )
    return token


def device_cookie(store: Store, name: str) -> str:
    """A new device cookie for ``name`` (given to a browser that just signed in as that user):
    a random nonce and its HMAC under the user's password hash."""
    with store.connect() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.name == name)).scalar()
    if stored is None:
        raise LookupFailed(ErrorCode.NOT_FOUND, f"there is no user {name!r}")
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_device_mac(name, stored, nonce)}"


def _device_nonce(name: str, stored: str, cookie: str) -> str | None:
    """The nonce of ``cookie`` when it is a device cookie of ``name`` (under its current
    password hash), else None."""
    nonce, _, mac = cookie.partition(".")
    if not (0 < len(nonce) <= 64 and mac and cookie.isascii()):
        return None  # (compare_digest refuses non-ASCII text: a hostile cookie is a stranger)
    return nonce if hmac.compare_digest(mac, _device_mac(name, stored, nonce)) else None


def _device_mac(name: str, stored: str, nonce: str) -> str:
    message = f"edi-gateway device\0{name}\0{nonce}".encode()
    digest = hmac.new(stored.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def session_of(store: Store, token: str | None, policy: Policy) -> SignedIn | None:
    """The live session ``token`` names, its last use noted (at most once a minute); None when
    there is none or it expired (idle longer than the policy allows, or past its end: then it
    is removed)."""
    if not token:
        return None
    s = console_sessions.c
    key, moment = _token_hash(token), now()
    with store.reading() as session:  # most requests only read: never wait for a writer
        row = session.execute(
            select(s.last_seen_at, s.expires_at, s.csrf_token, users.c.name, users.c.role)
            .join(users, users.c.id == s.user_id)
            .where(s.token_hash == key)
        ).first()
    if row is None:
        return None
    if moment >= row.expires_at or moment - row.last_seen_at >= policy.idle:
        sign_out(store, token)
        return None
    if moment - row.last_seen_at >= min(TOUCH_EVERY, policy.idle / 10):
        with store.connect() as conn:
            conn.execute(
                update(console_sessions).where(s.token_hash == key).values(last_seen_at=moment)
            )
    return SignedIn(row.name, row.role, row.csrf_token)


def sign_out(store: Store, token: str | None) -> None:
    """End the session ``token`` names (nothing when there is none)."""
    if token:
        with store.connect() as conn:
            key = _token_hash(token)
            conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == key))


def csrf_ok(session: SignedIn, sent: object) -> bool:
    """Whether a form's ``csrf_token`` is this session's (constant-time compare)."""
    return isinstance(sent, str) and hmac.compare_digest(
        sent.encode("utf-8"), session.csrf_token.encode("utf-8")
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
