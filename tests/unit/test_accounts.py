"""Console users and sessions (accounts.py) against a real store: hashes, roles, expiry, the
sign-in rate limit, and what a hostile caller tries."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from edi_gateway import accounts
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.pipeline.history import now
from edi_gateway.store.db import Store
from edi_gateway.store.schema import console_sessions, users

PASSWORD = "correct horse battery"
POLICY = accounts.Policy(
    idle=timedelta(hours=8),
    lifetime=timedelta(hours=24),
    max_failures=3,
    window=timedelta(minutes=15),
)


def _code(exc: pytest.ExceptionInfo[GatewayError]) -> ErrorCode:
    return exc.value.code


def test_password_hash_is_salted_scrypt_and_verifies_only_the_password() -> None:
    first, second = accounts.hash_password(PASSWORD), accounts.hash_password(PASSWORD)
    assert first.startswith("scrypt$32768$8$1$") and first != second  # a salt of its own each
    assert accounts.verify_password(PASSWORD, first)
    assert not accounts.verify_password(PASSWORD + " ", first)
    assert not accounts.verify_password("", first)
    for broken in ("", "scrypt$1$2", "md5$1$1$1$AAAA$AAAA", first.replace("scrypt", "bcrypt")):
        assert not accounts.verify_password(PASSWORD, broken)


@pytest.mark.parametrize(
    ("name", "role", "password"),
    [
        ("", "viewer", PASSWORD),
        ("ann smith", "viewer", PASSWORD),
        ("-ann", "viewer", PASSWORD),
        ("x" * 101, "viewer", PASSWORD),
        ("ann", "root", PASSWORD),
        ("ann", "Operator", PASSWORD),
        ("ann", "viewer", "eleven char"),
        ("ann", "viewer", "x" * 1025),
    ],
)
def test_bad_users_are_refused_with_usage(name: str, role: str, password: str) -> None:
    with pytest.raises(GatewayError) as exc:
        accounts.check_new_user(name, role, password)
    assert _code(exc) == ErrorCode.USAGE


def test_add_list_replace_remove(store: Store) -> None:
    accounts.add_user(store, "ann", "operator", PASSWORD)
    with pytest.raises(GatewayError) as exc:
        accounts.add_user(store, "ann", "viewer", PASSWORD)
    assert _code(exc) == ErrorCode.NOT_ALLOWED
    token = accounts.sign_in(store, "ann", PASSWORD, "10.0.0.1", POLICY)
    [listed] = accounts.list_users(store)
    assert listed["name"] == "ann" and listed["role"] == "operator" and listed["sessions"] == 1
    with store.connect() as conn:
        stored = conn.execute(select(users.c.password_hash)).scalar_one()
    assert PASSWORD not in stored

    accounts.add_user(store, "ann", "viewer", "another good password", replace=True)
    assert accounts.session_of(store, token, POLICY) is None  # a new password ends sessions
    with pytest.raises(GatewayError) as exc:
        accounts.sign_in(store, "ann", PASSWORD, "10.0.0.1", POLICY)
    assert _code(exc) == ErrorCode.LOGIN_FAILED
    token = accounts.sign_in(store, "ann", "another good password", "10.0.0.1", POLICY)
    who = accounts.session_of(store, token, POLICY)
    assert who is not None and who.role == "viewer" and not who.may_act

    assert accounts.remove_user(store, "ann")["sessions_ended"] == 1
    assert accounts.session_of(store, token, POLICY) is None
    assert accounts.list_users(store) == []
    with pytest.raises(GatewayError) as exc:
        accounts.remove_user(store, "ann")
    assert _code(exc) == ErrorCode.NOT_FOUND


def test_session_token_is_not_stored_and_csrf_is_per_session(store: Store) -> None:
    accounts.add_user(store, "ann", "admin", PASSWORD)
    one = accounts.sign_in(store, "ann", PASSWORD, "10.0.0.1", POLICY)
    two = accounts.sign_in(store, "ann", PASSWORD, "10.0.0.1", POLICY)
    with store.connect() as conn:
        keys = set(conn.execute(select(console_sessions.c.token_hash)).scalars())
    assert one not in keys and two not in keys and len(keys) == 2
    first, second = accounts.session_of(store, one, POLICY), accounts.session_of(store, two, POLICY)
    assert first is not None and second is not None and first.may_act
    assert accounts.csrf_ok(first, first.csrf_token)
    assert not accounts.csrf_ok(first, second.csrf_token)
    assert not accounts.csrf_ok(first, None) and not accounts.csrf_ok(first, "")
    assert accounts.session_of(store, one + "x", POLICY) is None
    assert accounts.session_of(store, None, POLICY) is None
    accounts.sign_out(store, one)
    assert accounts.session_of(store, one, POLICY) is None
    assert accounts.session_of(store, two, POLICY) is not None


def _age(store: Store, **columns: object) -> None:
    with store.connect() as conn:
        conn.execute(update(console_sessions).values(**columns))


def test_sessions_expire_when_idle_and_at_their_end(store: Store) -> None:
    accounts.add_user(store, "ann", "operator", PASSWORD)
    token = accounts.sign_in(store, "ann", PASSWORD, "10.0.0.1", POLICY)
    _age(store, last_seen_at=now() - timedelta(hours=7, minutes=59))
    assert accounts.session_of(store, token, POLICY) is not None  # and its use is noted
    _age(store, created_at=now() - timedelta(hours=7))  # used: the idle clock started again
    assert accounts.session_of(store, token, POLICY) is not None
    _age(store, last_seen_at=now() - timedelta(hours=8, seconds=1))
    assert accounts.session_of(store, token, POLICY) is None  # idle too long: gone for good
    _age(store, last_seen_at=now())
    assert accounts.session_of(store, token, POLICY) is None

    token = accounts.sign_in(store, "ann", PASSWORD, "10.0.0.1", POLICY)
    _age(store, expires_at=now() - timedelta(seconds=1))  # in use all along, but past its end
    assert accounts.session_of(store, token, POLICY) is None


def test_failed_sign_ins_are_throttled_per_name_and_address(store: Store) -> None:
    accounts.add_user(store, "ann", "operator", PASSWORD)
    for _ in range(POLICY.max_failures):
        with pytest.raises(GatewayError) as exc:
            accounts.sign_in(store, "ann", "wrong password!", "10.0.0.1", POLICY)
        assert _code(exc) == ErrorCode.LOGIN_FAILED
    with pytest.raises(GatewayError) as exc:  # even the right password: refused before it
        accounts.sign_in(store, "ann", PASSWORD, "10.0.0.1", POLICY)
    assert _code(exc) == ErrorCode.LOGIN_THROTTLED
    # another address is not punished for the attacker's tries
    assert accounts.sign_in(store, "ann", PASSWORD, "10.0.0.2", POLICY)
    quick = accounts.Policy(max_failures=3, window=timedelta(microseconds=1))
    assert accounts.sign_in(store, "ann", PASSWORD, "10.0.0.1", quick)  # the window passed


def test_tries_sent_at_once_are_throttled_as_one_after_another(store: Store) -> None:
    """A hostile client fires many guesses at the same moment: each is counted before it is
    judged, so no more than max_failures passwords are ever checked in the window."""
    accounts.add_user(store, "ann", "operator", PASSWORD)
    start = threading.Barrier(12)

    def guess(n: int, together: bool = True) -> str:
        if together:
            start.wait()
        try:
            accounts.sign_in(store, "ann", f"guess number {n}", "10.0.0.9", POLICY)
        except GatewayError as exc:
            return exc.code.value
        return "signed in"

    with ThreadPoolExecutor(12) as pool:
        codes = Counter(pool.map(guess, range(12)))
    judged = codes["LOGIN_FAILED"]
    assert judged <= POLICY.max_failures and codes["LOGIN_THROTTLED"] == 12 - judged, codes
    # one after another now: exactly max_failures guesses are judged in all, then none
    later = [guess(n, together=False) for n in range(12, 12 + POLICY.max_failures + 2)]
    assert judged + later.count("LOGIN_FAILED") == POLICY.max_failures, (codes, later)
    assert later[-2:] == ["LOGIN_THROTTLED"] * 2
    with pytest.raises(GatewayError) as exc:
        accounts.sign_in(store, "ann", PASSWORD, "10.0.0.9", POLICY)
    assert _code(exc) == ErrorCode.LOGIN_THROTTLED


def test_unknown_user_fails_like_a_wrong_password(store: Store) -> None:
    accounts.add_user(store, "ann", "operator", PASSWORD)
    messages = set()
    for name in ("ann", "nobody", "x" * 500, "ann' OR '1'='1"):
        with pytest.raises(GatewayError) as exc:
            accounts.sign_in(store, name, "wrong password!", "10.0.0.1", POLICY)
        assert _code(exc) == ErrorCode.LOGIN_FAILED
        messages.add(exc.value.message)
    assert len(messages) == 1


GUARDED = accounts.Policy(max_failures=3, window=timedelta(minutes=15), max_user_failures=6)


def _try(store: Store, name: str, password: str, address: str, device: str | None = None) -> str:
    try:
        accounts.sign_in(store, name, password, address, GUARDED, device=device)
    except GatewayError as exc:
        return exc.code.value
    return "signed in"


def test_guesses_from_many_addresses_are_limited_together(store: Store) -> None:
    """A botnet guesses one user's password from a new address each time: the per-address
    limit never bites, so without a limit per user it would guess forever."""
    accounts.add_user(store, "ann", "operator", PASSWORD)
    assert _try(store, "ann", PASSWORD, "10.0.0.1") == "signed in"
    known = accounts.device_cookie(store, "ann")  # the browser ann signed in with
    codes = [_try(store, "ann", f"guess {n}", f"198.51.100.{n}") for n in range(10)]
    assert codes == ["LOGIN_FAILED"] * 6 + ["LOGIN_THROTTLED"] * 4, codes
    # even the right password, from a client that never signed in as ann: refused
    assert _try(store, "ann", PASSWORD, "10.0.0.1") == "LOGIN_THROTTLED"
    # ann's own browser is not locked out by the attacker
    assert _try(store, "ann", PASSWORD, "10.0.0.1", device=known) == "signed in"
    # another user is not affected
    accounts.add_user(store, "bob", "viewer", PASSWORD)
    assert _try(store, "bob", PASSWORD, "198.51.100.1") == "signed in"


def test_a_device_cookie_counts_only_for_its_user_and_password(store: Store) -> None:
    accounts.add_user(store, "ann", "operator", PASSWORD)
    accounts.add_user(store, "bob", "operator", PASSWORD)
    anns = accounts.device_cookie(store, "ann")
    for n in range(7):  # bob is locked for every client without his device cookie
        _try(store, "bob", f"guess {n}", f"198.51.100.{n}")
    nonce, _, mac = anns.partition(".")
    forged = [
        anns,  # ann's, shown for bob
        f"{nonce}.{mac[:-2]}AA",  # its signature changed
        f"{nonce}x.{mac}",  # its nonce changed
        "",
        ".",
        "a" * 5000,
    ]
    for cookie in forged:
        assert _try(store, "bob", PASSWORD, "10.0.0.1", device=cookie) == "LOGIN_THROTTLED"
    bobs = accounts.device_cookie(store, "bob")
    assert _try(store, "bob", PASSWORD, "10.0.0.1", device=bobs) == "signed in"
    # a new password makes every device cookie of the old one void
    accounts.add_user(store, "bob", "operator", "a brand new passphrase", replace=True)
    assert _try(store, "bob", "a brand new passphrase", "10.0.0.1", bobs) == "LOGIN_THROTTLED"


def test_a_known_device_has_its_own_limit_and_is_not_a_stranger(store: Store) -> None:
    """Wrong passwords from ann's own browser (a stolen laptop) are limited per device; they
    do not count against her other clients."""
    accounts.add_user(store, "ann", "operator", PASSWORD)
    device = accounts.device_cookie(store, "ann")
    codes = [_try(store, "ann", f"guess {n}", "10.0.0.1", device) for n in range(5)]
    assert codes == ["LOGIN_FAILED"] * 3 + ["LOGIN_THROTTLED"] * 2, codes
    assert _try(store, "ann", PASSWORD, "10.0.0.1", device) == "LOGIN_THROTTLED"
    # the same address without the cookie is another source, and no stranger has failed yet
    assert _try(store, "ann", PASSWORD, "10.0.0.1") == "signed in"
    other = accounts.device_cookie(store, "ann")  # a second browser of ann's
    assert _try(store, "ann", PASSWORD, "10.0.0.2", other) == "signed in"


def test_guesses_from_many_addresses_at_once_are_limited_together(store: Store) -> None:
    accounts.add_user(store, "ann", "operator", PASSWORD)
    start = threading.Barrier(12)

    def guess(n: int) -> str:
        start.wait()
        return _try(store, "ann", f"guess number {n}", f"203.0.113.{n}")

    with ThreadPoolExecutor(12) as pool:
        codes = Counter(pool.map(guess, range(12)))
    assert codes["LOGIN_FAILED"] <= GUARDED.max_user_failures, codes
    assert codes["LOGIN_FAILED"] + codes["LOGIN_THROTTLED"] == 12, codes


def test_a_device_cookie_that_is_not_ascii_is_a_stranger_not_a_crash(store: Store) -> None:
    """The console reads cookies as latin-1: a hostile ``edi_device=abc.é`` reaches the check
    as non-ASCII text, which ``hmac.compare_digest`` refuses with TypeError (a 500)."""
    accounts.add_user(store, "ann", "operator", PASSWORD)
    for cookie in ("abc.\u00e9", "\u00e9.abc", "abc.\u4e00\u6b21", "abc.\x00"):
        assert _try(store, "ann", PASSWORD, "10.0.0.1", device=cookie) == "signed in"
