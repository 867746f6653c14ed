"""A folder project that several kill tests share: orders from `vastra` answered at once, orders
from `rijnoever` forwarded at once to `delftlab`, one broken file; and the count afterwards:
every input in exactly one terminal place, nothing stored, answered or delivered twice."""

from __future__ import annotations

import re
import signal
from collections import Counter

from tests.integration.conftest import SAMPLES, Project, cli_env, original_name

TERMINAL = {"processed", "failed", "orphan", "duplicate"}
ORDERS = 30  # of each buyer, by default


def vastra(n: int) -> bytes:
    raw = (SAMPLES / "order-vastra-1001.xml").read_bytes()
    return raw.replace(b"<cbc:ID>VS-2026-1001</cbc:ID>", f"<cbc:ID>VS-CP-{n:04d}</cbc:ID>".encode())


def rijnoever(n: int) -> bytes:
    raw = (SAMPLES / "order-rijnoever-4500012873.xml").read_bytes()
    return raw.replace(b"<cbc:ID>4500012873</cbc:ID>", f"<cbc:ID>77{n:06d}</cbc:ID>".encode())


def fill(project: Project, orders: int = ORDERS) -> dict[str, bytes]:
    for sample in project.inbox.glob("*.xml"):
        sample.unlink()  # the samples answer each other; this test counts its own files
    files = {f"v{n:04d}.xml": vastra(n) for n in range(orders)}
    files |= {f"r{n:04d}.xml": rijnoever(n) for n in range(orders)}
    files["bad.xml"] = vastra(999)[:500]
    for name, payload in files.items():
        project.drop(name, payload)
    return files


def crash(project: Project, point: str) -> None:
    done = project.run("run", "--once", env=cli_env(EDI_GATEWAY_CRASH_AT=point), timeout=300)
    assert done.returncode == -signal.SIGKILL, (point, done.returncode, done.stderr[-2000:])


def finish(project: Project) -> None:
    done = project.run("run", "--once", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def check(project: Project, files: dict[str, bytes], orders: int = ORDERS) -> None:
    placed = Counter(
        original_name(p.name)
        for folder in (project.archive, project.error)
        for p in folder.iterdir()
    )
    assert placed == Counter(files.keys()), "every input in exactly one of archive/ or error/"
    assert not list((project.inbox / ".claimed").iterdir())
    assert not list(project.inbox.glob("*.xml"))
    messages = project.json("messages", "list")
    assert Counter(m["filename"] for m in messages) == Counter(files.keys()), "one message per file"
    assert {m["state"] for m in messages} <= TERMINAL
    failed = {m["filename"] for m in messages if m["state"] == "failed"}
    assert failed == {"bad.xml"}
    stored = project.json("orders", "list")
    numbers = Counter(o["order_number"] for o in stored)
    assert len(numbers) == 2 * orders and set(numbers.values()) == {1}
    outbox = project.root / "outbox"
    names = [p.name for p in outbox.iterdir()]
    assert not [n for n in names if n.startswith(".")], f"temporary files left: {names}"
    assert not [n for n in names if re.search(r"-\d+\.xml$", n)], f"second copies: {names}"
    responses = Counter(n for n in names if n.startswith("OrderResponse-VS-CP-"))
    assert len(responses) == orders
    forwarded = Counter(n for n in names if n.startswith("delftlab-77"))
    assert len(forwarded) == 2 * orders
    rows = project.json("outbox", "list")
    assert Counter(r["state"] for r in rows)["sent"] == len(rows)
