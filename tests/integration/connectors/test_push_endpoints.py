"""Push endpoints let no one in (issue 9, point 8; ADR 0020), proven against the real
``edi-gateway run`` on loopback: an HTTPS connector (bearer tokens) and an AS2 connector (the
OpenSSL partner of as2_peer.py) beside a folder inbox, the daemon started with an open-file
limit of 256 as in the issue.

- another partner's document under a partner's credentials: 403 SENDER_MISMATCH, nothing
  stored, one log line (and ``send_for`` lets a partner send for the ones it names);
- eight unauthenticated 60 MB POSTs: refused on their headers, the daemon's peak memory rises
  less than 20 MB;
- 300 slow-loris sockets: cut off, file descriptors stay under the configured caps, honest
  partners are answered and the folder inbox is still polled;
- 100 concurrent honest POSTs: all answered, each stored once (and the listen backlog is the
  configured one).
"""

from __future__ import annotations

import os
import resource
import select
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import factory as f
from tests.integration.conftest import BUYER2, EXE, Project, cli_env
from tests.integration.connectors.harness_as2 import As2Harness, post_as2
from tests.integration.connectors.harness_http import HttpHarness
from tests.servers import free_port

pytestmark = pytest.mark.integration

NOFILE = 256  # the open-file limit of the scenario
CAP = 80  # max_connections of each endpoint: 2 x 80 + the daemon's own files < 256
LIMITS = {
    "workers": 4,
    "backlog": 1024,
    "max_connections": CAP,
    "header_seconds": 2,
    "read_seconds": 6,
    "min_bytes_per_second": 2000,
}
TOKENS = {"buyer": "t-buyer", "buyer2": "t-buyer2", "supplier": "t-supplier"}
WAIT = 60.0


@dataclass
class Running:
    """A started daemon and how to reach it."""

    project: Project
    process: subprocess.Popen[bytes]
    http_port: int
    as2_port: int
    tls_cert: Path
    as2: As2Harness
    log: Path

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def memory_kb(self, field_name: str) -> int:
        """``VmRSS`` / ``VmHWM`` of the daemon, in kB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field_name} in /proc/{self.process.pid}/status")

    def https(self) -> socket.socket:
        context = ssl.create_default_context(cafile=str(self.tls_cert))
        raw = socket.create_connection(("127.0.0.1", self.http_port), timeout=WAIT)
        return context.wrap_socket(raw, server_hostname="localhost")

    def post(self, payload: bytes, token: str | None, message_id: str = "") -> tuple[int, bytes]:
        """POST a document to the HTTPS endpoint: (status, body)."""
        headers = {"Content-Length": str(len(payload)), "Message-ID": message_id or new_id()}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        with self.https() as sock:
            sock.sendall(request_head("/upload", headers) + payload)
            return read_answer(sock)

    def push_as2(self, payload: bytes) -> tuple[int, str]:
        """The AS2 partner (partner ``buyer``) pushes a signed, encrypted document:
        (status, the MDN's disposition)."""
        content_type, body = self.as2.peer.message(payload, "doc.xml")
        url = f"http://127.0.0.1:{self.as2_port}/as2"
        status, headers, answer = post_as2(url, content_type, body, new_id(), self.as2.peer)
        return status, self.as2.peer.verify_mdn(headers["Content-Type"], answer)["disposition"]

    def rows(self) -> list[tuple[str, str, str, str | None]]:
        """(source, source_ref, state, partner) of every stored message (daemon stopped)."""
        with sqlite3.connect(self.project.db) as db:
            return list(db.execute("SELECT source, source_ref, state, partner FROM messages"))

    def stop(self) -> str:
        """SIGTERM, wait, and return the daemon's log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text(encoding="utf-8", errors="replace")


def new_id() -> str:
    return f"<{uuid.uuid4().hex}@test>"


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of the answer on ``sock`` (read until the server closes)."""
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
def gateway(
    make_project: Callable[..., Project], as2_harness: As2Harness, http_harness: HttpHarness
) -> Iterator[Running]:
    """The daemon with an HTTPS and an AS2 endpoint and a folder inbox polled every 0.2 s (the
    contract suite's partners: the AS2 one signs as ``buyer``, the HTTP one has the TLS
    certificate)."""
    project = make_project()
    cert, key = http_harness.cert, http_harness.key
    http_port, as2_port = free_port(), free_port()
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    data["connectors"][0]["every_seconds"] = 0.2
    data["connectors"] += [
        {
            "name": "http-in", "type": "http", "direction": "in", "port": http_port,
            "url_path": "/upload", "tls_certificate": str(cert),
            "tls_private_key": {"file": str(key)},
            "partners": [
                {"partner": "buyer", "token": {"env": "T_BUYER"}},
                {"partner": "buyer2", "token": {"env": "T_BUYER2"}},
                # a service provider: the supplier's credentials may also post buyer2's
                {"partner": "supplier", "token": {"env": "T_SUPPLIER"}, "send_for": ["buyer2"]},
            ],
            **LIMITS,
        },
        {**as2_harness.inbound("as2-in"), "port": as2_port, **LIMITS},
    ]  # fmt: skip
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    env = cli_env(T_BUYER=TOKENS["buyer"], T_BUYER2=TOKENS["buyer2"], T_SUPPLIER=TOKENS["supplier"])
    log = project.root / "daemon.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(EXE), "--config", str(project.config), "run"],
            cwd=project.root, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    # the open-file limit, set at once (the daemon opens its sockets seconds later)
    resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    running = Running(project, process, http_port, as2_port, cert, as2_harness, log)
    try:
        _wait_until_listening(running)
        yield running
    finally:
        running.stop()


def _wait_until_listening(running: Running) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert running.process.poll() is None, running.log.read_text()[-3000:]
        listening = subprocess.run(
            ["ss", "-Hltn"], capture_output=True, text=True, check=True
        ).stdout
        if f":{running.http_port} " in listening and f":{running.as2_port} " in listening:
            limits = Path(f"/proc/{running.process.pid}/limits").read_text()
            assert f"Max open files            {NOFILE}" in limits
            return
        time.sleep(0.1)
    pytest.fail("the daemon's push endpoints did not start listening")


def order(n: int | str, buyer: str = f.BUYER_GLN) -> bytes:
    return f.order(f"PUSH-{n}", f.items(2), buyer=buyer)


# -- the authenticated partner must be the document's sender -----------------------------------


def test_another_partners_document_is_refused_with_403_and_nothing_is_stored(
    gateway: Running,
) -> None:
    refused_http, body = gateway.post(order(1), TOKENS["buyer2"])  # buyer2's token, buyer's order
    not_for_it, _ = gateway.post(order(2), TOKENS["supplier"])  # buyer is not in its send_for
    for_client, _ = gateway.post(order(3, buyer=BUYER2), TOKENS["supplier"])  # send_for: buyer2
    own, _ = gateway.post(order(4), TOKENS["buyer"])
    reply = f.order_response("OR-1", "PUSH-4", "AP")  # the seller's document, signed by buyer
    refused_as2, disposition = gateway.push_as2(reply)
    own_as2, taken = gateway.push_as2(order(5))
    log = gateway.stop()

    assert (refused_http, not_for_it, refused_as2) == (403, 403, 403)
    assert b"SENDER_MISMATCH" in body and b"partner 'buyer'" in body
    assert disposition.endswith("processed/error: authentication-failed")
    assert (for_client, own, own_as2) == (200, 200, 200) and taken.endswith("; processed")
    rows = gateway.rows()
    assert sorted((source, state, partner) for source, _, state, partner in rows) == [
        ("as2:as2-in", "processed", "buyer"),
        ("http:http-in", "processed", "buyer"),
        ("http:http-in", "processed", "buyer2"),
    ]
    mismatches = [line for line in log.splitlines() if "SENDER_MISMATCH" in line]
    assert len(mismatches) == 3, mismatches  # one line per refusal
    assert all("refused" in line for line in mismatches)


# -- no credentials, 60 MB bodies ----------------------------------------------------------------

BODY = 60 << 20
PIECE = b"x" * (1 << 20)


def _unauthenticated_60mb(gateway: Running, over_tls: bool) -> tuple[int, bytes]:
    """Announce 60 MB without credentials, read the answer, then try to send all of it."""
    if over_tls:
        sock = gateway.https()
        head = request_head("/upload", {"Content-Length": str(BODY)})
    else:
        sock = socket.create_connection(("127.0.0.1", gateway.as2_port), timeout=WAIT)
        fields = {"Content-Length": str(BODY), "AS2-From": "mallory", "AS2-To": "gateway"}
        head = request_head("/as2", {**fields, "Message-ID": new_id()})
    with sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        try:
            for _ in range(BODY // len(PIECE)):
                sock.sendall(PIECE)
        except OSError:  # the server closed the connection: the body was never read
            pass
        return int(answer.split(b" ", 2)[1]), answer


def test_unauthenticated_60mb_bodies_are_refused_before_they_are_read(gateway: Running) -> None:
    assert gateway.post(order(1), TOKENS["buyer"])[0] == 200  # everything loaded once
    assert gateway.push_as2(order(2))[0] == 200
    before = gateway.memory_kb("VmRSS")
    with ThreadPoolExecutor(8) as pool:  # the eight 60 MB POSTs, at once
        answers = list(pool.map(lambda n: _unauthenticated_60mb(gateway, n % 2 == 0), range(8)))
    peak = gateway.memory_kb("VmHWM")
    after_ok = gateway.post(order(3), TOKENS["buyer"])[0]
    log = gateway.stop()

    statuses = [status for status, _ in answers]
    assert statuses == [401, 400] * 4  # AS2: 400, as no receipt was asked for
    rise_mb = (peak - before) / 1024
    print(f"peak memory rise with 8 x 60 MB unauthenticated: {rise_mb:.1f} MB")
    assert rise_mb < 20, f"the daemon's peak memory rose {rise_mb:.1f} MB"
    assert after_ok == 200
    assert len(gateway.rows()) == 3
    assert log.count("no valid credentials") == 4
    assert log.count("unknown trading partner 'mallory'") == 4


# -- 300 slow-loris sockets ----------------------------------------------------------------------


@dataclass
class Loris:
    """Keeps ``count`` connections open to ``port`` sending one byte of ``dribble`` per socket
    every quarter second, and opens a new one for each the server closes."""

    port: int
    count: int
    dribble: bytes
    stop: threading.Event = field(default_factory=threading.Event)
    reopened: int = 0

    def _open(self) -> tuple[socket.socket, int]:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        return sock, 0

    def run(self) -> None:
        held = [self._open() for _ in range(self.count)]
        while not self.stop.is_set():
            for i, (sock, sent) in enumerate(held):
                try:
                    if select.select([sock], [], [], 0)[0] and not sock.recv(1):
                        raise ConnectionResetError  # the server closed it
                    sock.send(self.dribble[sent : sent + 1] or b"\r")
                    held[i] = (sock, sent + 1)
                except OSError:
                    sock.close()
                    held[i] = self._open()
                    self.reopened += 1
            self.stop.wait(0.25)
        for sock, _ in held:
            sock.close()


@contextmanager
def attack(*attackers: Loris) -> Iterator[None]:
    threads = [threading.Thread(target=a.run, daemon=True) for a in attackers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for attacker in attackers:
            attacker.stop.set()
        for thread in threads:
            thread.join(10)


def test_300_slow_clients_are_cut_off_and_honest_partners_and_the_inbox_go_on(
    gateway: Running,
) -> None:
    assert gateway.post(order(0), TOKENS["buyer"])[0] == 200
    idle_fds = gateway.fds()
    most = [idle_fds]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            most.append(gateway.fds())
            sampling.wait(0.05)

    head = b"POST /as2 HTTP/1.1\r\nHost: x\r\nAS2-From: partner\r\nAS2-To: gateway\r\n"
    plain = Loris(gateway.as2_port, 200, head)  # an HTTP head, a byte at a time
    tls = Loris(gateway.http_port, 100, b"\x16\x03\x01")  # a TLS hello that never comes
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    with attack(plain, tls):
        time.sleep(3)  # every place taken, the rest queued
        for n in range(5):
            gateway.project.drop(f"inbox-{n}.xml", order(f"F{n}"))
        with ThreadPoolExecutor(8) as pool:
            honest = list(
                pool.map(lambda n: gateway.post(order(f"H{n}"), TOKENS["buyer"])[0], range(6))
            )
            as2 = list(pool.map(lambda n: gateway.push_as2(order(f"A{n}"))[0], range(2)))
        deadline = time.monotonic() + WAIT
        while len(list(gateway.project.archive.glob("*inbox-*"))) < 5:
            assert time.monotonic() < deadline, "the folder inbox was not polled"
            time.sleep(0.2)
        under_attack = time.monotonic() - started
        assert gateway.process.poll() is None
    sampling.set()
    sampler.join(5)
    log = gateway.stop()

    print(
        f"fds idle {idle_fds}, at most {max(most)} (caps 2 x {CAP}, limit {NOFILE}); "
        f"{plain.reopened + tls.reopened} slow connections cut off and reopened; "
        f"answers and inbox within {under_attack:.1f} s"
    )
    assert honest == [200] * 6 and as2 == [200] * 2
    assert max(most) <= idle_fds + 2 * CAP + 10 < NOFILE
    assert plain.reopened >= 200 and tls.reopened >= 100  # each was cut off at least once
    assert "Too many open files" not in log
    assert "cut off" in log and "connections were in use" in log
    states = [state for _, _, state, _ in gateway.rows()]
    assert len(states) == 1 + 6 + 2 + 5 and set(states) == {"processed"}


# -- 100 concurrent honest partners --------------------------------------------------------------


def test_100_concurrent_honest_posts_are_all_answered_and_each_stored_once(
    gateway: Running,
) -> None:
    listed = subprocess.run(
        ["ss", "-Hltn", f"sport = :{gateway.http_port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(listed[2]) == 1024  # the listen backlog (ss: Send-Q), not 5
    start = threading.Barrier(100)

    def one(n: int) -> tuple[int, str]:
        message_id = f"<honest-{n}@buyer>"
        start.wait()
        return gateway.post(order(f"C{n}"), TOKENS["buyer"], message_id)[0], message_id

    began = time.monotonic()
    with ThreadPoolExecutor(100) as pool:
        answers: list[Any] = list(pool.map(one, range(100)))
    seconds = time.monotonic() - began
    log = gateway.stop()

    print(f"100 concurrent POSTs answered in {seconds:.1f} s")
    assert [status for status, _ in answers] == [200] * 100
    rows = gateway.rows()
    refs = sorted(ref.split("#")[0] for _, ref, _, _ in rows)
    assert refs == sorted(f"buyer:{mid}" for _, mid in answers)  # each once, none lost
    assert {state for _, _, state, _ in rows} == {"processed"}
    assert "Traceback" not in log
