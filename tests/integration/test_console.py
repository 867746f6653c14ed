"""The web console as its users meet it: `edi-gateway console` serving a project that ran the
samples (with the outbound folder replaced by a file, so deliveries wait with an error), users
made by `edi-gateway users add`, plain HTTP for the guards (303/401, CSRF, expiry, rate limit,
escaping, downloads) and Debian's chromium driven by Playwright for sign-in, a filter, an order
page, two actions and a viewer refused. Screenshots go to the test's tmp folder."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.conftest import EXE, SAMPLES, Project, cli, cli_env
from tests.keys import identity, write_identity
from tests.servers import debian_command, free_port

pytestmark = pytest.mark.integration

OPERATOR, VIEWER, THROTTLED, GUARDED = "ann", "vic", "rita", "gus"
PASSWORD = "correct horse battery"
HOSTILE = "<img src=x onerror=alert(1)>.xml"
HTML = {"Accept": "text/html"}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@dataclass
class Site:
    base: str
    project: Project
    shots: Path

    def client(self, source: str | None = None) -> httpx.Client:
        """A client; ``source``: the loopback address it connects from (127.0.0.0/8)."""
        transport = httpx.HTTPTransport(local_address=source) if source else None
        return httpx.Client(
            base_url=self.base, follow_redirects=False, timeout=10, transport=transport
        )


def _serve(project: Project) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    server = subprocess.Popen(
        [str(EXE), "--config", str(project.config), "console", "--port", str(port)],
        cwd=project.root,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    _stop(server)
    pytest.fail(f"the console did not start: {server.stderr.read() if server.stderr else ''}")


def _stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    for stream in (server.stdout, server.stderr):
        if stream is not None:
            stream.close()


@contextmanager
def _served(project: Project, root: Path) -> Iterator[Site]:
    """`edi-gateway console` serving ``project`` (screenshots under ``root``) while in use."""
    server, base = _serve(project)
    try:
        yield Site(base, project, root / "screenshots")
    finally:
        _stop(server)


def _add_user(project: Project, name: str, role: str, password: str = PASSWORD) -> None:
    done = project.run("users", "add", name, "--role", role, input=password + "\n")
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("console")
    assert cli("init", root / "p", "--samples", SAMPLES, cwd=root).returncode == 0
    project = Project(root / "p")
    shutil.rmtree(project.root / "outbox")
    (project.root / "outbox").write_text("a file where the outbound folder should be")
    project.drop(HOSTILE, b"<Order")
    assert project.run("run", "--once").returncode == 0
    _, pem = write_identity(identity("vastra-signing", days=20), project.root / "certs", "vastra")
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    vastra = next(p for p in data["partners"] if p["id"] == "vastra")
    vastra["signature"] = {"verify": "if_present", "partner_certificate": str(pem)}
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    _add_user(project, OPERATOR, "operator")
    _add_user(project, VIEWER, "viewer")
    _add_user(project, THROTTLED, "operator")
    _add_user(project, GUARDED, "operator")
    with _served(project, root) as served:
        yield served


def _sign_in(client: httpx.Client, name: str, password: str = PASSWORD, **extra: str) -> Any:
    form = client.get("/login", headers=HTML)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    data = {"username": name, "password": password, "csrf_token": token.group(1), **extra}
    return client.post("/login", data=data, headers=HTML)


def _csrf(client: httpx.Client) -> str:
    found = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/orders", headers=HTML).text
    )
    assert found
    return found.group(1)


def _order_id(client: httpx.Client) -> int:
    found = re.search(r'href="/orders/(\d+)"', client.get("/orders", headers=HTML).text)
    assert found
    return int(found.group(1))


# --- plain HTTP -----------------------------------------------------------------------------


def test_without_a_session_pages_redirect_or_401_and_health_stays_open(site: Site) -> None:
    with site.client() as client:
        for path in ("/", "/orders", "/orders/1", "/messages/1/raw", "/health", "/partners"):
            browser = client.get(path, headers=HTML)
            assert browser.status_code == 303, path
            assert browser.headers["location"].startswith("/login?next=")
            script = client.get(path, headers={"Accept": "application/json"})
            assert script.status_code == 401, path
            assert script.json()["error"]["code"] == "LOGIN_REQUIRED"
        assert client.get("/orders?status=x", headers=HTML).headers["location"] == (
            "/login?next=%2Forders%3Fstatus%3Dx"
        )
        assert client.post("/orders/1/note", data={"text": "hi"}).status_code == 401
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").json()["store"]["reachable"] is True
        assert client.get("/metrics").status_code == 404  # only `run` has metrics
        assert client.get("/login").status_code == 200
        assert client.get("/static/console.css").status_code == 200
        assert client.get("/no-such-page").status_code == 404


def test_sign_in_needs_the_form_token_and_goes_only_to_this_site(site: Site) -> None:
    with site.client() as client:
        forged = client.post(
            "/login",
            data={"username": OPERATOR, "password": PASSWORD, "csrf_token": "guessed"},
            headers=HTML,
        )
        assert forged.status_code == 403 and "CSRF_REFUSED" in forged.text
        assert "edi_session" not in forged.cookies
        done = _sign_in(client, OPERATOR, next="//evil.example/x")
        assert done.status_code == 303 and done.headers["location"] == "/orders"
        cookie = done.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    for hostile in ("/\\evil.example", "https://evil.example/", "/orders\r\nSet-Cookie: x=1"):
        with site.client() as client:
            done = _sign_in(client, OPERATOR, next=hostile)
            assert done.status_code == 303 and done.headers["location"] == "/orders", hostile
    with site.client() as client:
        done = _sign_in(client, OPERATOR, next="/messages?state=failed")
        assert done.headers["location"] == "/messages?state=failed"


def test_wrong_passwords_are_throttled_per_user_and_address(site: Site) -> None:
    with site.client() as client:
        for n in range(5):  # a forged X-Forwarded-For does not make a new address
            client.headers["X-Forwarded-For"] = f"203.0.113.{n}"
            refused = _sign_in(client, THROTTLED, "not the password")
            assert refused.status_code == 401 and "LOGIN_FAILED" in refused.text
        throttled = _sign_in(client, THROTTLED)  # the right password, too late
        assert throttled.status_code == 429 and "LOGIN_THROTTLED" in throttled.text
        assert _sign_in(client, OPERATOR).status_code == 303  # another user is not locked out
        unknown = _sign_in(client, "nobody", "not the password")
        assert unknown.status_code == 401 and "unknown user or wrong password" in unknown.text


def test_guesses_from_many_addresses_cannot_lock_out_the_users_browser(site: Site) -> None:
    """A botnet: four guesses from each of five addresses stays under the per-address limit
    (5), but the user's 20 (``login_failures_per_user``) are then spent for every client
    without the user's device cookie; the browser the user signed in with still signs in."""
    with site.client("127.0.0.2") as own:
        assert _sign_in(own, GUARDED).status_code == 303
        cookie = next(c for c in own.cookies.jar if c.name == "edi_device")
        assert (cookie.path, cookie.has_nonstandard_attr("HttpOnly")) == ("/login", True)
        own.post("/logout", data={"csrf_token": _csrf(own)}, headers=HTML)
        for n in range(5):
            with site.client(f"127.0.0.{10 + n}") as bot:
                for _ in range(4):
                    refused = _sign_in(bot, GUARDED, "not the password")
                    assert refused.status_code == 401 and "LOGIN_FAILED" in refused.text
        with site.client("127.0.0.20") as stranger:  # the right password, from a new client
            throttled = _sign_in(stranger, GUARDED)
            assert throttled.status_code == 429 and "LOGIN_THROTTLED" in throttled.text
        assert _sign_in(own, GUARDED).status_code == 303


def test_every_post_needs_this_sessions_csrf_token(site: Site) -> None:
    with site.client() as other:
        _sign_in(other, OPERATOR)
        foreign = _csrf(other)
    with site.client() as client:
        _sign_in(client, OPERATOR)
        order = _order_id(client)
        for data in ({"text": "x", "confirmed": "yes"}, {"text": "x", "csrf_token": foreign}):
            refused = client.post(f"/orders/{order}/note", data=data, headers=HTML)
            assert refused.status_code == 403 and "CSRF_REFUSED" in refused.text
        assert client.get(f"/orders/{order}/note", headers=HTML).status_code == 405
        assert client.post("/logout", headers=HTML).status_code == 403
        history = client.get(f"/orders/{order}", headers=HTML).text
        assert "order.note" not in history


def test_a_viewer_reads_but_cannot_act(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, VIEWER)
        order = _order_id(client)
        page = client.get(f"/orders/{order}", headers=HTML)
        assert page.status_code == 200 and "Add a note" not in page.text
        data = {"text": "viewer was here", "csrf_token": _csrf(client), "confirmed": "yes"}
        refused = client.post(f"/orders/{order}/note", data=data, headers=HTML)
        assert refused.status_code == 403 and "ROLE_REFUSED" in refused.text
        assert "viewer was here" not in client.get(f"/orders/{order}", headers=HTML).text


def test_partner_bytes_are_escaped_or_downloaded_never_rendered(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, OPERATOR)
        listing = client.get("/messages?state=failed", headers=HTML)
        assert "&lt;img src=x onerror=alert(1)&gt;.xml" in listing.text
        assert "<img src=x" not in listing.text
        assert "script-src" not in listing.headers["content-security-policy"]  # none allowed
        assert listing.headers["x-content-type-options"] == "nosniff"
        found = re.search(
            r'href="/messages/(\d+)">#\d+</a></td><td>[^<]*</td><td>failed</td>\s*'
            r"<td>NOT_WELL_FORMED",
            listing.text,
        )
        assert found
        raw = client.get(f"/messages/{found.group(1)}/raw", headers=HTML)
        assert raw.status_code == 200 and raw.content == b"<Order"
        assert raw.headers["content-type"] == "application/octet-stream"
        assert raw.headers["content-disposition"].startswith("attachment;")


def test_bad_filters_are_coded_errors_not_empty_lists(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, OPERATOR)
        for path in (
            "/orders?status=bogus",
            "/messages?state=nope",
            "/orders?offset=-1",
            "/outbox?offset=ten",
        ):
            answer = client.get(path, headers=HTML)
            assert answer.status_code == 400 and "USAGE" in answer.text, path
        assert client.get("/orders/999999", headers=HTML).status_code == 404
        assert client.get("/orders/99999999999", headers=HTML).status_code == 404
        as_json = client.get("/orders?status=bogus", headers={"Accept": "application/json"})
        assert as_json.json()["error"]["code"] == "USAGE"
        accepted = client.get("/orders?status=fully%20invoiced", headers=HTML)
        assert accepted.status_code == 200 and "Fully invoiced" in accepted.text
        assert client.get("/orders?type=standing", headers=HTML).status_code == 400
        everything = re.search(r"(\d+) in all", client.get("/orders", headers=HTML).text)
        purchase = re.search(
            r"(\d+) in all", client.get("/orders?type=purchase", headers=HTML).text
        )
        assert everything and purchase and 0 < int(purchase.group(1)) <= int(everything.group(1))
        for flag in ("attention=1", "overdue=1"):
            flagged = client.get(f"/orders?{flag}", headers=HTML)
            assert flagged.status_code == 200 and 'value="1" checked' in flagged.text


def test_logout_and_removing_a_user_end_sessions(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, OPERATOR)
        out = client.post("/logout", data={"csrf_token": _csrf(client)}, headers=HTML)
        assert out.status_code == 303
        assert client.get("/orders", headers=HTML).status_code == 303
    _add_user(site.project, "temp", "viewer")
    with site.client() as client:
        _sign_in(client, "temp")
        assert client.get("/orders", headers=HTML).status_code == 200
        assert site.project.run("users", "remove", "temp").returncode == 0
        assert client.get("/orders", headers=HTML).status_code == 303


def test_sessions_expire_when_idle(tmp_path: Path) -> None:
    root = tmp_path / "p"
    assert cli("init", root, cwd=tmp_path).returncode == 0
    project = Project(root)
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    data.setdefault("daemon", {})["http"] = {"console": {"session_idle_minutes": 0.05}}
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    _add_user(project, OPERATOR, "operator")
    server, base = _serve(project)
    try:
        with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as client:
            _sign_in(client, OPERATOR)
            for _ in range(3):  # in use: alive past the idle time
                time.sleep(1)
                assert client.get("/orders", headers=HTML).status_code == 200
            time.sleep(3.5)
            assert client.get("/orders", headers=HTML).status_code == 303
    finally:
        _stop(server)


def test_users_add_reads_the_password_from_stdin_only(site: Site) -> None:
    empty = site.project.run("users", "add", "nopw", "--role", "viewer", input="")
    assert empty.returncode == 2 and "no password" in empty.stderr
    short = site.project.run("users", "add", "shorty", "--role", "viewer", input="short\n")
    assert short.returncode == 2 and "too short" in short.stderr
    bad_role = site.project.run("users", "add", "x", "--role", "root", input=PASSWORD + "\n")
    assert bad_role.returncode == 2
    again = site.project.run("users", "add", OPERATOR, "--role", "viewer", input=PASSWORD + "\n")
    assert again.returncode == 1 and "exists" in again.stderr
    listed = site.project.json("users", "list")
    assert {u["name"]: u["role"] for u in listed}[VIEWER] == "viewer"
    assert all("password" not in key or key == "password_set_at" for u in listed for key in u)


# --- a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = debian_command("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _browser_sign_in(browser: Any, site: Site, name: str, **options: Any) -> Any:
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(f"{site.base}/orders")
    assert page.url.startswith(f"{site.base}/login?next=")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/orders")
    return page


def _shot(page: Any, site: Site, name: str) -> None:
    site.shots.mkdir(exist_ok=True)
    page.screenshot(path=str(site.shots / f"{name}.png"), full_page=True)


def test_browser_sign_in_and_filter_without_javascript(browser: Any, site: Site) -> None:
    page = _browser_sign_in(browser, site, OPERATOR, java_script_enabled=False)
    assert page.locator("h1").inner_text() == "Orders"
    assert page.locator("header .who span").inner_text() == "ann (operator)"
    all_rows = page.locator("table.orders tbody tr").count()
    _shot(page, site, "orders")
    page.select_option("select[name=status]", "Fully invoiced")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*/orders\?status=Fully\+invoiced.*"))
    statuses = page.locator("table.orders tbody .status").all_inner_texts()
    assert statuses and set(statuses) == {"Fully invoiced"} and len(statuses) < all_rows
    _shot(page, site, "orders-filtered")
    page.fill("input[name=q]", "no such order anywhere")
    page.click("form.filters button[type=submit]")
    assert "No order matches." in page.locator("table.orders").inner_text()
    page.click("header nav >> text=Today")
    assert page.locator("h1").inner_text().startswith("Today")
    _shot(page, site, "today")
    page.context.close()


def test_browser_order_page_note_and_retry(browser: Any, site: Site) -> None:
    page = _browser_sign_in(browser, site, OPERATOR)
    page.goto(f"{site.base}/outbox?state=pending")
    assert "TARGET_UNWRITABLE" in page.locator("table.outbox").inner_text()
    page.locator("table.outbox tbody tr a").first.click()
    _shot(page, site, "outbox-row")
    page.click("text=Retry now…")
    assert page.locator("h1").inner_text() == "Retry a delivery?"
    page.click("text=Yes, do it")
    assert "due now" in page.locator(".done").inner_text()
    order_link = page.locator("dl.facts a[href^='/orders/']")
    order_link.click()
    assert page.locator("table.lines tbody tr").count() >= 1
    assert page.locator("table.lines thead th").all_inner_texts()[4:10] == [
        "Ordered",
        "Confirmed",
        "Despatched",
        "Received",
        "Invoiced",
        "Credited",
    ]
    history = page.locator("table.history").inner_text()
    assert re.search(r"ann\s+outbox\.retried", history), history
    page.fill("textarea[name=text]", "Called the buyer: <b>delivery Friday</b>")
    page.click("text=Add note…")
    assert page.locator("h1").inner_text() == "Add a note?"
    _shot(page, site, "confirm-note")
    page.click("text=Yes, do it")
    assert page.locator(".done").inner_text() == "Note added to the order's history."
    row = page.locator("table.history tr", has_text="order.note")
    assert row.locator("td").nth(1).inner_text() == "ann"
    assert row.locator("td").nth(3).inner_text() == "Called the buyer: <b>delivery Friday</b>"
    _shot(page, site, "order-noted")
    page.context.close()


def test_browser_viewer_is_refused(browser: Any, site: Site) -> None:
    page = _browser_sign_in(browser, site, VIEWER)
    page.locator("table.orders tbody a").first.click()
    assert page.locator("textarea[name=text]").count() == 0  # no form to act with
    token = page.locator("header input[name=csrf_token]").get_attribute("value")
    order_path = page.url.removeprefix(site.base)
    answer = page.request.post(
        f"{site.base}{order_path}/note",
        form={"text": "sneaky", "csrf_token": token, "confirmed": "yes"},
        headers=HTML,
    )
    assert answer.status == 403 and "ROLE_REFUSED" in answer.text()
    page.goto(f"{site.base}/outbox?state=pending")
    page.locator("table.outbox tbody tr a").first.click()
    assert page.locator("text=Retry now…").count() == 0
    _shot(page, site, "viewer-outbox-row")
    page.context.close()


def test_run_serves_the_console_beside_health_and_metrics(tmp_path: Path) -> None:
    root = tmp_path / "p"
    assert cli("init", root, "--samples", SAMPLES, cwd=tmp_path).returncode == 0
    project = Project(root)
    port = free_port()
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    data.setdefault("daemon", {})["http"] = {"host": "127.0.0.1", "port": port}
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    _add_user(project, OPERATOR, "operator")
    daemon = subprocess.Popen(
        [str(EXE), "--config", str(project.config), "run"],
        cwd=project.root,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if client.get("/orders").status_code == 401:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert client.get("/healthz").json()["connectors"]  # the daemon's health, open
            assert "edi_outbox_pending" in client.get("/metrics").text
            assert client.get("/orders", headers=HTML).status_code == 303
            _sign_in(client, OPERATOR)
            deadline = time.monotonic() + 30  # the loop takes the samples meanwhile
            while "VS-2026-1001" not in client.get("/orders", headers=HTML).text:
                assert time.monotonic() < deadline, "the samples never showed up"
                time.sleep(0.2)
            health = client.get("/health", headers=HTML).text
            assert "Inbound connectors" in health and "inbox" in health
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err[-3000:]


def test_oversized_or_unsized_forms_are_refused_unread(site: Site) -> None:
    with site.client() as client:
        big = {"username": OPERATOR, "password": "x" * 70_000, "csrf_token": "t"}
        assert client.post("/login", data=big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield b"username=ann&password="
            yield b"x" * 10

        assert client.post("/login", content=chunks()).status_code == 411


def test_redrive_and_dismiss_a_failed_message(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, OPERATOR)
        listing = client.get("/messages?state=failed&code=UNKNOWN_PARTNER", headers=HTML).text
        found = re.search(r'href="/messages/(\d+)"', listing)
        assert found
        path = f"/messages/{found.group(1)}"
        token = _csrf(client)
        asked = client.post(f"{path}/redrive", data={"csrf_token": token}, headers=HTML)
        assert asked.status_code == 200 and "Redrive a message?" in asked.text  # confirm first
        assert "message.redriven" not in client.get(path, headers=HTML).text
        done = client.post(
            f"{path}/redrive", data={"csrf_token": token, "confirmed": "yes"}, headers=HTML
        )
        assert done.status_code == 303 and done.headers["location"] == f"{path}?done=redrive"
        page = client.get(done.headers["location"], headers=HTML).text
        assert "processed again" in page and re.search(r"<td>ann</td><td>message\.redr", page)
        no_reason = {"csrf_token": token, "confirmed": "yes", "reason": "  "}
        assert client.post(f"{path}/dismiss", data=no_reason, headers=HTML).status_code == 400
        reason = {"csrf_token": token, "confirmed": "yes", "reason": "test partner, ignore"}
        assert client.post(f"{path}/dismiss", data=reason, headers=HTML).status_code == 303
        page = client.get(path, headers=HTML).text
        assert "dismissed" in page and "test partner, ignore" in page
        again = client.post(f"{path}/dismiss", data=reason, headers=HTML)
        assert again.status_code == 409 and "NOT_ALLOWED" in again.text  # not failed any more


def test_pages_do_not_wait_for_a_writer_holding_the_store(site: Site) -> None:
    import sqlite3

    with site.client() as client:
        _sign_in(client, VIEWER)
        order = _order_id(client)
        writer = sqlite3.connect(site.project.db, isolation_level=None, timeout=1)
        try:
            writer.execute("BEGIN IMMEDIATE")  # as the daemon's loop does for a batch
            began = time.monotonic()
            for path in ("/orders", f"/orders/{order}", "/messages", "/outbox", "/health"):
                assert client.get(path, headers=HTML).status_code == 200, path
            assert time.monotonic() - began < 5  # the store's busy wait is 30 s
        finally:
            writer.execute("ROLLBACK")
            writer.close()


def test_today_counts_link_to_their_lists(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, VIEWER)
        page = client.get("/today", headers=HTML)
        assert page.status_code == 200
        failed = re.search(r'<a href="/messages\?state=failed">(\d+)</a>', page.text)
        pending = re.search(r'<a href="/outbox\?state=pending">(\d+)</a>', page.text)
        assert failed and pending and int(pending.group(1)) >= 1  # the outbox is a file
        listed = client.get("/messages?state=failed", headers=HTML).text
        assert f"{failed.group(1)} in all" in listed
        day = re.search(r'href="/orders\?since=(\d{4}-\d\d-\d\d)">(\d+)</a>', page.text)
        assert day and int(day.group(2)) >= 1  # the samples arrived today
        assert (
            f"{day.group(2)} in all"
            in client.get(f"/orders?since={day.group(1)}", headers=HTML).text
        )
        assert client.get("/orders?since=yesterday", headers=HTML).status_code == 400
        for needs in ("response", "despatch", "invoice"):
            n = re.search(rf'<a href="/orders\?needs={needs}">(\d+)</a>', page.text)
            listed = client.get(f"/orders?needs={needs}", headers=HTML).text
            assert n and f"{n.group(1)} in all" in listed, needs


def test_browser_order_whole_life_through_the_buttons(browser: Any, site: Site) -> None:
    page = _browser_sign_in(browser, site, OPERATOR)
    page.click("text=4500012901")
    order_url = page.url
    assert page.locator("h1 .status").inner_text() == "Received"
    for button, title, status in (
        ("Accept…", "Respond to the order?", "Accepted"),
        ("Despatch all open…", "Despatch?", "Fully delivered"),
        ("Invoice despatched…", "Invoice?", "Fully invoiced"),
    ):
        page.click(f"text={button}")
        assert page.locator("h1").inner_text() == title
        page.click("text=Yes, do it")
        assert "queued for the buyer" in page.locator(".done").inner_text()
        assert page.locator("h1 .status").inner_text() == status, button
    _shot(page, site, "order-whole-life")
    history = page.locator("table.history").inner_text()
    for event in ("OrderResponse", "DespatchAdvice", "Invoice"):
        assert re.search(rf"ann\s+\S*\s*.*{event}", history), event
    before = page.url
    page.click("text=Reject…")  # the reason field is required: the browser does not send it
    assert page.url == before
    page.fill("input[name=reason]", "too late")
    page.click("text=Reject…")
    page.click("text=Yes, do it")
    assert "NOT_ALLOWED" in page.locator(".error").inner_text()  # a fully invoiced order
    page.context.close()

    order_id = int(order_url.rsplit("/", 1)[1])
    kinds = ["OrderResponse", "DespatchAdvice", "Invoice"]
    assert sorted(_ubl_checked(site, order_id, "whole-life", kinds)) == sorted(kinds)


def _ubl_checked(site: Site, order_id: int, name: str, kinds: list[str]) -> list[str]:
    """The kinds of the order's outbox documents of ``kinds`` (the buyer's: not the files
    forwarded to a supplier in its own layout), once every one passed ubl-check (OASIS UBL
    2.1 XSD + Peppol Schematron) with no fatal finding."""
    import sqlite3
    import sys

    from tests.conftest import shared_dir

    with sqlite3.connect(site.project.db) as db:
        rows = db.execute(
            "SELECT kind, filename, payload FROM outbox JOIN outbox_payloads ON outbox_id = id "
            "WHERE order_id = ? ORDER BY id",
            (order_id,),
        ).fetchall()
    rows = [row for row in rows if row[0] in kinds]
    folder = site.shots.parent / "issued" / name
    folder.mkdir(parents=True, exist_ok=True)
    for _, filename, payload in rows:
        (folder / filename).write_bytes(payload)
    done = subprocess.run(
        [sys.executable, str(shared_dir() / "tools" / "ubl-check"), *map(str, folder.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [kind for kind, _, _ in rows]


def test_documents_download_as_xml_and_pdf_attachments(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, VIEWER)
        order = client.get("/orders?q=VS-2026-1001", headers=HTML).text
        found = re.search(r'href="/orders/(\d+)"', order)
        assert found
        page = client.get(f"/orders/{found.group(1)}", headers=HTML).text
        links = re.findall(r'href="(/documents/\d+)/ubl"', page)
        assert links
        xml = client.get(f"{links[0]}/ubl", headers=HTML)
        assert xml.status_code == 200 and xml.content.lstrip().startswith(b"<?xml")
        assert xml.headers["content-disposition"].startswith("attachment;")
        pdf = client.get(f"{links[0]}/pdf", headers=HTML)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert pdf.headers["content-type"] == "application/pdf"
        assert client.get(f"{links[0]}/html", headers=HTML).status_code == 409
        assert client.get("/documents/999999/ubl", headers=HTML).status_code == 404


def test_partners_list_connectors_and_certificate_expiry(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, VIEWER)
        page = client.get("/partners", headers=HTML).text
        assert '<a href="/orders?partner=vastra">vastra</a>' in page
        row = re.search(
            r"<code>partners\.vastra\.signature\.partner_certificate</code></td>"
            r"<td>CN=vastra-signing</td><td[^>]*>[^<]+</td><td class=\"num\">([\d.]+)</td>",
            page,
        )
        assert row and 19 < float(row.group(1)) <= 20, page


def test_needs_filters_match_the_cli(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, VIEWER)
        for needs in ("response", "despatch", "invoice"):
            listed = site.project.json("orders", "list", "--needs", needs, "--limit", "500")
            page = client.get(f"/orders?needs={needs}", headers=HTML)
            assert page.status_code == 200 and f'value="{needs}" selected' in page.text
            shown = re.findall(r'href="/orders/(\d+)"', page.text)
            assert sorted(map(int, shown)) == sorted(o["id"] for o in listed), needs
        assert {o["status"] for o in site.project.json("orders", "list", "--needs", "response")}
        refused = client.get("/orders?needs=payment", headers=HTML)
        assert refused.status_code == 400 and "USAGE" in refused.text
    bad = site.project.run("orders", "list", "--needs", "payment")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.fixture(scope="module")
def held_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The samples with delftlab's orders held (``forward: hold: true``) and nordisk's waiting
    for their 30-minute bundle: nothing of them is in the outbox yet."""
    root = tmp_path_factory.mktemp("held")
    assert cli("init", root / "p", "--samples", SAMPLES, cwd=root).returncode == 0
    project = Project(root / "p")
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    delftlab = next(p for p in data["partners"] if p["id"] == "delftlab")
    delftlab["forward"]["hold"] = True
    nordisk = next(p for p in data["partners"] if p["id"] == "nordisk")
    nordisk["forward"] |= {"every_minutes": None, "at": [], "when_waiting": 1000}
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert project.run("run", "--once").returncode == 0
    _add_user(project, OPERATOR, "operator")
    _add_user(project, VIEWER, "viewer")
    with _served(project, root) as served:
        yield served


def _waiting_rows(client: httpx.Client) -> list[tuple[str, str, str, str]]:
    page = client.get("/outbox", headers=HTML).text
    table = page.split('<table class="waiting">', 1)[1].split("</table>", 1)[0]
    return re.findall(
        r'<tr class="(\w+)">\s*<td><a href="/orders/(\d+)">[^<]*</a></td><td>(\w+)</td>'
        r"<td>\w+</td><td>[^<]*</td>\s*<td>([^<]*)",
        table,
    )


def test_outbox_lists_held_and_waiting_orders_and_releases_a_held_one(held_site: Site) -> None:
    with held_site.client() as client:
        _sign_in(client, OPERATOR)
        rows = _waiting_rows(client)
        held = [r for r in rows if r[0] == "held"]
        waiting = [r for r in rows if r[0] == "waiting"]
        assert held and all(r[2] == "delftlab" for r in held), rows
        assert all(r[3] == "when an operator releases it" for r in held)
        assert waiting and all(r[2] == "nordisk" for r in waiting), rows
        bundle = f"once 1000 orders wait ({len(waiting)} orders in the bundle)"
        assert len(waiting) > 1 and all(r[3] == bundle for r in waiting), waiting
        order = held[0][1]
        assert f'action="/orders/{order}/release"' in client.get("/outbox", headers=HTML).text
        token = _csrf(client)
        asked = client.post(f"/orders/{order}/release", data={"csrf_token": token}, headers=HTML)
        assert asked.status_code == 200 and "Release a held order?" in asked.text
        assert len([r for r in _waiting_rows(client) if r[0] == "held"]) == len(held)
        done = client.post(
            f"/orders/{order}/release",
            data={"csrf_token": token, "confirmed": "yes"},
            headers=HTML,
        )
        assert done.status_code == 303 and done.headers["location"] == "/outbox?done=release"
        assert order not in {r[1] for r in _waiting_rows(client)}  # bundle "none": at once
        history = client.get(f"/orders/{order}", headers=HTML).text
        assert re.search(r"<td>ann</td><td>forward\.released</td>", history)
        again = client.post(
            f"/orders/{order}/release",
            data={"csrf_token": token, "confirmed": "yes"},
            headers=HTML,
        )
        assert again.status_code == 409 and "NOT_ALLOWED" in again.text
        assert "is not held" in again.text and "Traceback" not in again.text
        shown = site_cli_states(held_site, order)
        assert shown == {"delftlab": "queued"}, shown
    with held_site.client() as client:
        _sign_in(client, VIEWER)
        assert "Release…" not in client.get("/outbox", headers=HTML).text
        order = next(r[1] for r in _waiting_rows(client) if r[0] == "held")
        data = {"csrf_token": _csrf(client), "confirmed": "yes"}
        refused = client.post(f"/orders/{order}/release", data=data, headers=HTML)
        assert refused.status_code == 403 and "ROLE_REFUSED" in refused.text


def site_cli_states(site: Site, order: str) -> dict[str, str]:
    import sqlite3

    with sqlite3.connect(site.project.db) as db:
        return dict(db.execute("SELECT partner, state FROM forwards WHERE order_id = ?", (order,)))


def _post(client: httpx.Client, path: str, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": _csrf(client), **data}, headers=HTML)


def _line_fields(page: str, table: str) -> dict[str, str]:
    """The per-line inputs (name -> prefilled value) of the form table with class ``table``."""
    part = page.split(f'<table class="{table}">', 1)[1].split("</table>", 1)[0]
    return dict(re.findall(r'name="(qty:[^"]+)" value="([^"]*)"', part))


def _status(client: httpx.Client, order: int) -> str:
    found = re.search(r'<h1>Order .*? <span class="status">([^<]+)</span>', _page(client, order))
    assert found
    return found.group(1)


def _page(client: httpx.Client, order: int) -> str:
    return client.get(f"/orders/{order}", headers=HTML).text


def _fresh_order(client: httpx.Client, skip: set[int]) -> int:
    listing = client.get("/orders?needs=response", headers=HTML).text
    found = [int(i) for i in re.findall(r'href="/orders/(\d+)"', listing) if int(i) not in skip]
    assert found, listing
    return found[0]


def test_changed_lines_partial_despatch_invoice_and_credit(site: Site) -> None:
    with site.client() as client:
        _sign_in(client, OPERATOR)
        whole_life = int(
            re.findall(
                r'href="/orders/(\d+)"', client.get("/orders?q=4500012901", headers=HTML).text
            )[0]
        )
        order = _fresh_order(client, {whole_life})
        path = f"/orders/{order}"
        ordered = _line_fields(_page(client, order), "qty-change")
        assert ordered and all(Decimal(v) > 1 for v in ordered.values()), ordered
        first, *_ = ordered
        for bad in ("abc", "-1", "NaN", "1e40"):
            refused = _post(client, f"{path}/change", **{first: bad}, confirmed="yes")
            assert refused.status_code == 400 and "USAGE" in refused.text, bad
            assert "Traceback" not in refused.text
        same = _post(client, f"{path}/change", **ordered, confirmed="yes")
        assert same.status_code == 400 and "no quantity differs" in same.text
        asked = _post(client, f"{path}/change", **{**ordered, first: "1"})
        assert asked.status_code == 200 and "Accept with changes?" in asked.text
        assert f'name="{first}" value="1"' in asked.text  # the confirmation repeats the form
        done = _post(client, f"{path}/change", **{**ordered, first: "1"}, confirmed="yes")
        assert done.status_code == 303 and done.headers["location"] == f"{path}?done=respond"
        assert _status(client, order) == "Accepted with changes"
        assert _line_fields(_page(client, order), "qty-despatch")[first] == "1"  # open now

        over = _post(client, f"{path}/despatch-lines", **{first: "2"}, confirmed="yes")
        assert over.status_code == 400 and "QUANTITY_EXCEEDED" in over.text
        assert "Traceback" not in over.text
        nothing = _post(client, f"{path}/despatch-lines", **{first: "0"}, confirmed="yes")
        assert nothing.status_code == 400 and "USAGE" in nothing.text
        done = _post(client, f"{path}/despatch-lines", **{first: "1"}, confirmed="yes")
        assert done.headers["location"] == f"{path}?done=despatch"
        assert _status(client, order) == "Partially delivered"

        over = _post(client, f"{path}/invoice-lines", **{first: "1.5"}, confirmed="yes")
        assert over.status_code == 400 and "QUANTITY_EXCEEDED" in over.text
        done = _post(client, f"{path}/invoice-lines", **{first: "1"}, confirmed="yes")
        assert done.headers["location"] == f"{path}?done=invoice"
        assert _status(client, order) == "Partially invoiced"
        page = _page(client, order)
        number = re.search(r'<option value="(INV-[^"]+)">', page)
        assert number, page

        no_reason = _post(client, f"{path}/credit", invoice=number.group(1), confirmed="yes")
        assert no_reason.status_code == 400 and "USAGE" in no_reason.text
        unknown = _post(client, f"{path}/credit", invoice="INV-NOPE", reason="x", confirmed="yes")
        assert unknown.status_code == 409 and "NOT_ALLOWED" in unknown.text
        done = _post(
            client, f"{path}/credit", invoice=number.group(1), reason="damaged", confirmed="yes"
        )
        assert done.headers["location"] == f"{path}?done=credit"
        page = client.get(done.headers["location"], headers=HTML).text
        assert "The Credit Note is queued for the buyer." in page
        row = re.search(
            rf"<tr><td>{re.escape(first.removeprefix('qty:'))}</td>.*?</tr>",
            page.split('<table class="lines">')[1],
        )
        cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(0)) if row else []
        assert cells[2:] == ["1", "1", "0", "1", "1"], cells  # confirmed ... credited
        history = page.split('<table class="history">')[1]
        assert re.search(r"<td>ann</td><td>[^<]*</td><td>[^<]*CN-", history), history
    with site.client() as client:
        _sign_in(client, VIEWER)
        assert "Credit…" not in _page(client, order) and "Despatch these…" not in _page(
            client, order
        )
        refused = _post(
            client, f"{path}/credit", invoice=number.group(1), reason="x", confirmed="yes"
        )
        assert refused.status_code == 403 and "ROLE_REFUSED" in refused.text
    wanted = ["OrderResponse", "DespatchAdvice", "Invoice", "CreditNote"]
    kinds = _ubl_checked(site, order, "changed-lines", wanted)
    assert set(kinds) == set(wanted) and kinds[-3:] == wanted[1:], kinds


def test_attach_an_orphan_to_an_order(site: Site) -> None:
    sample = (SAMPLES / "orderresponse-nordisk-5521.xml").read_bytes()
    orphan = sample.replace(b"VS-2026-1001", b"VS-2026-9999").replace(
        b"NV-OR-2026-5521", b"NV-OR-2026-5599"
    )
    site.project.drop("orphan-response.xml", orphan)
    assert site.project.run("run", "--once").returncode == 0
    with site.client() as client:
        _sign_in(client, OPERATOR)
        listing = client.get("/messages?state=orphan", headers=HTML).text
        found = re.findall(r'href="/messages/(\d+)"', listing)
        assert found, listing
        path = f"/messages/{max(map(int, found))}"
        assert "Attach to order…" in client.get(path, headers=HTML).text
        empty = _post(client, f"{path}/attach", order=" ", confirmed="yes")
        assert empty.status_code == 400 and "USAGE" in empty.text
        unknown = _post(client, f"{path}/attach", order="NO-SUCH-ORDER", confirmed="yes")
        assert unknown.status_code == 404 and "NOT_FOUND" in unknown.text
        done = _post(client, f"{path}/attach", order="VS-2026-1001", confirmed="yes")
        assert done.status_code == 303 and done.headers["location"] == f"{path}?done=attach"
        page = client.get(done.headers["location"], headers=HTML).text
        assert "attached by hand to order VS-2026-1001" in page
        assert re.search(r"<td>ann</td><td>message\.attached</td>", page)
        again = _post(client, f"{path}/attach", order="VS-2026-1001", confirmed="yes")
        assert again.status_code == 409 and "NOT_ALLOWED" in again.text


def test_browser_accept_with_changes_then_despatch_part(browser: Any, site: Site) -> None:
    with site.client() as client:
        _sign_in(client, VIEWER)
        whole_life = re.findall(
            r'href="/orders/(\d+)"', client.get("/orders?q=4500012901", headers=HTML).text
        )
        order = _fresh_order(client, {int(whole_life[0])})
    page = _browser_sign_in(browser, site, OPERATOR)
    page.goto(f"{site.base}/orders/{order}")
    first = page.locator("table.qty-change input").first
    line = (first.get_attribute("name") or "").removeprefix("qty:")
    first.fill("0")  # not accepted
    page.click("text=Accept with changes…")
    assert page.locator("h1").inner_text() == "Accept with changes?"
    assert f"line {line}: 0" in page.locator(".confirm").inner_text()
    page.click("text=Yes, do it")
    assert "queued for the buyer" in page.locator(".done").inner_text()
    assert page.locator("h1 .status").inner_text() == "Accepted with changes"
    row = page.locator("table.lines tbody tr").first
    assert row.locator("td").nth(5).inner_text() == "0"  # confirmed
    _shot(page, site, "order-accepted-with-changes")
    page.locator("table.qty-despatch input").nth(0).fill("1")  # line not accepted: 0 open
    page.click("text=Despatch these…")
    page.click("text=Yes, do it")
    assert "QUANTITY_EXCEEDED" in page.locator(".error").inner_text()
    _shot(page, site, "despatch-refused")
    page.context.close()


def test_kpi_page_shows_the_reports_figures_as_svg_charts(site: Site) -> None:
    report = site.project.json("report", "kpi")
    assert report["partners"], report
    with site.client() as client:
        _sign_in(client, VIEWER)
        page = client.get("/kpi", headers=HTML)
        assert page.status_code == 200, page.text
        assert page.text.count("<svg ") == 3 and "<script" not in page.text
        for title in ("Documents in and out", "Response time (hours)", "Rates (%)"):
            assert f"<figcaption>{title}</figcaption>" in page.text
        table = page.text.split('<table class="kpi">', 1)[1]
        for row in report["partners"]:
            name = row["partner"]
            found = re.search(
                rf'<td><a href="/orders\?partner={name}">{name}</a></td>(.*?)</tr>', table, re.S
            )
            assert found, name
            cells = re.findall(r'<td class="num">([^<]*)</td>', found.group(1))
            response = row["response_hours"]
            want = [
                str(row["duplicates_in"]),
                str(response["orders"]),
                str(response["answered"]),
                "n/a" if response["median"] is None else str(response["median"]),
                "n/a" if response["p90"] is None else str(response["p90"]),
            ]
            assert cells[:5] == want, (name, cells)
            total_in = sum(row["documents_in"].values())
            assert re.search(rf"<title>{name}, in: {total_in:g}</title>", page.text), (
                name
            )  # the bar of its documents in
        one = report["partners"][0]["partner"]
        only = client.get(f"/kpi?partner={one}", headers=HTML).text
        assert len(re.findall(r'<td><a href="/orders\?partner=', only)) == 1
        hostile = client.get("/kpi", params={"partner": '"><script>x</script>'}, headers=HTML)
        assert hostile.status_code == 200 and "<script>x" not in hostile.text
        assert "&#34;&gt;&lt;script&gt;" in hostile.text
        assert "No partner had traffic in this window." in hostile.text
        for query in ("since=yesterday", "until=2026-13-01", "since=2026-02-01&until=2026-01-01"):
            bad = client.get(f"/kpi?{query}", headers=HTML)
            assert bad.status_code == 400 and "USAGE" in bad.text, query
        old = client.get("/kpi?since=2000-01-01&until=2000-02-01", headers=HTML).text
        assert "From 2000-01-01T00:00:00Z to 2000-02-01T00:00:00Z" in old
        assert "No partner had traffic in this window." in old


def test_a_store_that_cannot_be_reached_answers_a_coded_503(
    tmp_path: Path, postgres_server: str
) -> None:
    from sqlalchemy import create_engine, text

    from tests.conftest import new_postgres_database

    url = new_postgres_database(postgres_server)
    name = url.rsplit("/", 1)[1]
    root = tmp_path / "p"
    assert cli("init", root, cwd=tmp_path).returncode == 0
    project = Project(root)
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    data["store"] = {"url": url}
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    _add_user(project, OPERATOR, "operator")
    admin = create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")

    def rename(old: str, new: str) -> None:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                {"d": old},
            )
            conn.execute(text(f'ALTER DATABASE "{old}" RENAME TO "{new}"'))

    server, base = _serve(project)
    try:
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as client:
            _sign_in(client, OPERATOR)
            assert client.get("/orders", headers=HTML).status_code == 200
            rename(name, f"{name}_away")
            try:
                for path in ("/orders", "/kpi", "/outbox", "/orders/1"):
                    page = client.get(path, headers=HTML)
                    assert page.status_code == 503, (path, page.text[:500])
                    assert "STORE_UNAVAILABLE" in page.text and "Traceback" not in page.text
                    assert "check store.url" in page.text  # the remedy
                script = client.get("/orders", headers={"Accept": "application/json"})
                assert script.status_code == 503
                assert script.json()["error"]["code"] == "STORE_UNAVAILABLE"
                assert client.get("/healthz").status_code == 503
                with httpx.Client(base_url=base, timeout=30) as stranger:  # past no guard
                    refused = _sign_in(stranger, OPERATOR)
                    assert refused.status_code == 503 and "STORE_UNAVAILABLE" in refused.text
            finally:
                rename(f"{name}_away", name)
            assert client.get("/orders", headers=HTML).status_code == 200  # back by itself
    finally:
        _stop(server)
        admin.dispose()


def test_browser_kpi_charts_render_without_javascript(browser: Any, site: Site) -> None:
    page = _browser_sign_in(browser, site, VIEWER, java_script_enabled=False)
    page.click("header nav >> text=KPIs")
    assert page.locator("h1").inner_text() == "KPIs"
    assert page.locator("figure.chart svg").count() == 3
    bars = page.locator("figure.chart svg rect[height='12']")
    assert bars.count() > 0
    widths = [float(bars.nth(i).get_attribute("width") or 0) for i in range(bars.count())]
    assert max(widths) > 0  # something drawn, scaled to the plot
    box = page.locator("figure.chart svg").first.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 20
    _shot(page, site, "kpi")
    page.context.close()


# --- the seller's item IDs a Despatch Advice needs (ADR 0007) -------------------------------

BARE = "VS-2026-1077"


@pytest.fixture(scope="module")
def bare_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The samples and a copy of vastra's order 1001 (as ``VS-2026-1077``) whose line 1 names
    its item by name only, as a valid Order may: neither the seller's ID nor a GTIN."""
    root = tmp_path_factory.mktemp("bare")
    assert cli("init", root / "p", "--samples", SAMPLES, cwd=root).returncode == 0
    project = Project(root / "p")
    order = (SAMPLES / "order-vastra-1001.xml").read_text(encoding="utf-8")
    for element in ("SellersItemIdentification", "StandardItemIdentification"):
        order = re.sub(rf"\s*<cac:{element}>.*?</cac:{element}>", "", order, count=1, flags=re.S)
    project.drop("bare.xml", order.replace("VS-2026-1001", BARE).encode())
    assert project.run("run", "--once").returncode == 0
    _add_user(project, OPERATOR, "operator")
    with _served(project, root) as served:
        yield served


def _bare_order(client: httpx.Client) -> int:
    found = re.findall(r'href="/orders/(\d+)"', client.get(f"/orders?q={BARE}", headers=HTML).text)
    assert found
    return int(found[0])


def test_the_despatch_forms_check_the_item_ids_they_are_given(bare_site: Site) -> None:
    """An ID of spaces only or longer than 200 characters is refused with its code before
    the confirmation, by the check ``despatch --item-id`` runs; nothing is issued. A blank
    field gives none: the despatch is refused naming the line and the form's field."""
    with bare_site.client() as client:
        _sign_in(client, OPERATOR)
        order = _bare_order(client)
        path = f"/orders/{order}"
        page = _page(client, order)
        assert page.count('name="item:') == 2  # line 1 only, in both despatch forms
        assert 'name="item:1"' in page and 'name="item:2"' not in page
        for bad in ("   ", "X" * 201):
            for action, fields in (("despatch", {}), ("despatch-lines", {"qty:1": "1"})):
                refused = _post(client, f"{path}/{action}", **fields, **{"item:1": bad})
                assert refused.status_code == 409 and "NOT_ALLOWED" in refused.text, action
                assert "line 1: the seller&#39;s item ID must be 1 to 200 characters" in (
                    refused.text
                )
        blank = _post(client, f"{path}/despatch", **{"item:1": ""}, confirmed="yes")
        assert blank.status_code == 409 and "NOT_ALLOWED" in blank.text
        assert "order line(s) 1 name neither" in blank.text
        assert "the despatch form&#39;s field &#34;Seller&#39;s item ID&#34;" in blank.text
        documents = _page(client, order).split('<table class="documents">')[1]
        assert "DespatchAdvice" not in documents.split("</table>")[0]


def test_browser_despatch_gives_the_item_id_a_line_lacks(browser: Any, bare_site: Site) -> None:
    """Refused without the ID; given in the per-line form it goes with the first part, is
    kept on the line (the field goes), and the rest despatches without it."""
    page = _browser_sign_in(browser, bare_site, OPERATOR)
    with bare_site.client() as client:
        _sign_in(client, OPERATOR)
        order = _bare_order(client)
    page.goto(f"{bare_site.base}/orders/{order}")
    page.click("text=Despatch all open…")
    page.click("text=Yes, do it")
    refusal = page.locator(".error").inner_text()
    assert "NOT_ALLOWED" in refusal and 'field "Seller\'s item ID"' in refusal, refusal
    _shot(page, bare_site, "despatch-without-item-id")
    page.goto(f"{bare_site.base}/orders/{order}")
    assert page.locator("table.qty-despatch input[name^='item:']").count() == 1
    _shot(page, bare_site, "order-asks-for-item-id")
    page.fill("table.qty-despatch input[name='qty:1']", "10")
    page.fill("table.qty-despatch input[name='qty:2']", "")
    page.fill("table.qty-despatch input[name='item:1']", "NV-10233")
    page.click("text=Despatch these…")
    assert page.locator("h1").inner_text() == "Despatch?"
    assert "the seller's item IDs line 1: NV-10233" in page.locator(".confirm").inner_text()
    page.click("text=Yes, do it")
    assert "queued for the buyer" in page.locator(".done").inner_text()
    assert page.locator("h1 .status").inner_text() == "Partially delivered"
    assert "NV-10233" in page.locator("table.lines tbody tr").first.inner_text()
    assert page.locator("input[name^='item:']").count() == 0
    history = page.locator("table.history").inner_text()
    assert "line 1: the seller's item ID NV-10233, given for a despatch" in history
    _shot(page, bare_site, "despatch-with-item-id")
    page.click("text=Despatch all open…")
    page.click("text=Yes, do it")
    assert page.locator("h1 .status").inner_text() == "Fully delivered"
    page.context.close()
    kinds = _ubl_checked(bare_site, order, "item-ids", ["DespatchAdvice"])
    assert kinds == ["DespatchAdvice", "DespatchAdvice"]
