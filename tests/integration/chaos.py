"""What the kill tests share, and how they count afterwards.

A folder project (``fill``, ``check``): orders from `vastra` answered at once, orders from
`rijnoever` forwarded at once to `delftlab`, one broken file; afterwards every input in exactly
one terminal place, nothing stored, answered or delivered twice.

Several gateways over folder, SFTP and RabbitMQ (``World``, ``Cluster`` and the scenarios
``chaos``, ``restart_server``, ``rolling_restart``; used by test_instances_transports.py and
bench/soak_instances.py): three `edi-gateway run` on one PostgreSQL store, private servers
(``Servers``), orders of three buyers in by folder, SFTP and AMQP, answered and forwarded at
once out by folder, SFTP and AMQP; killed, crashed at named points, servers restarted, rolled;
then counted (``World.count``: lost, doubled, AMQP copies by message id, and each breach)."""

from __future__ import annotations

import itertools
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests import factory
from tests.integration.conftest import EXE, SAMPLES, Project, cli, cli_env, original_name
from tests.integration.connectors.harness_amqp import INBOX, PARTNER, AmqpHarness, rabbitmq
from tests.integration.connectors.harness_sftp import SftpHarness, sshd

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


# --- several gateways over folder, SFTP and RabbitMQ ------------------------------------------
# The world of tests/integration/test_instances_transports.py and bench/soak_instances.py: three
# buyers whose orders arrive by folder, SFTP and AMQP, each order answered at once (an Order
# Response) and forwarded at once to its supplier; answers and forwards leave by folder, SFTP
# and AMQP. Several `edi-gateway run` share one PostgreSQL store; the servers are real and
# private (PostgreSQL and RabbitMQ can be restarted without touching another test's).

CHANNELS = ("folder", "sftp", "amqp")
NAMED_POINTS = ("after-claim", "after-intake-commit", "after-send", "during-recovery")
"""The crash points issue 8 names; the chaos scenario asserts each was reached."""
CYCLE = ("after-claim", "after-intake-commit", "after-send", "after-process")
"""The crash points instances are armed with (during-recovery: once a crash left claims)."""
POINTS = (*CYCLE, "during-recovery")
LEAVE_CLAIMS = {"after-claim", "after-intake-commit", "after-process"}
SIGKILL = "SIGKILL"  # a kill at a random moment, in the figures beside the crash points
SFTP_TAG = "sftp-in--"  # the claim tag the SFTP inbound puts before its claims


@dataclass(frozen=True)
class Buyer:
    """A buyer of the world: its order numbers, where its answers and forwards go."""

    partner: str
    number: Callable[[int], str]
    order: Callable[[str], bytes]
    outputs: Callable[[str], list[tuple[str, str]]]
    """Order number -> the (connector, file name) of its answer and its forwards."""


def _sample(name: str, number: bytes) -> Callable[[str], bytes]:
    raw = (SAMPLES / name).read_bytes()
    return lambda order: raw.replace(number, f"<cbc:ID>{order}</cbc:ID>".encode(), 1)


BUYERS = (
    Buyer(  # answered into the folder, forwarded to nordisk over AMQP
        "vastra",
        lambda n: f"VS-CP-{n:05d}",
        _sample("order-vastra-1001.xml", b"<cbc:ID>VS-2026-1001</cbc:ID>"),
        lambda o: [("outbox", f"OrderResponse-{o}-OR1.xml"), ("amqp-out", f"nordisk-{o}-ubl.xml")],
    ),
    Buyer(  # answered over AMQP, forwarded to delftlab into the folder in two formats
        "rijnoever",
        lambda n: f"77{n:06d}",
        _sample("order-rijnoever-4500012873.xml", b"<cbc:ID>4500012873</cbc:ID>"),
        lambda o: [
            ("amqp-out", f"OrderResponse-{o}-OR1.xml"),
            ("outbox", f"delftlab-{o}-ubl.xml"),
            ("outbox", f"delftlab-{o}-bestelling.xml"),
        ],
    ),
    Buyer(  # answered over SFTP, forwarded to the factory's supplier over SFTP
        "buyer",
        lambda n: f"FB-{n:05d}",
        lambda o: factory.order(o, factory.items(2)),
        lambda o: [
            ("sftp-out", f"OrderResponse-{o}-OR1.xml"),
            ("sftp-out", f"supplier-{o}-ubl.xml"),
        ],
    ),
)


@dataclass(frozen=True)
class Input:
    """One file or message fed to the gateways."""

    name: str
    channel: str
    payload: bytes
    number: str | None  # the order number; None for a broken input (it must fail)
    outputs: tuple[tuple[str, str], ...] = ()


def inputs(first: int, orders: int, bad: int = 1) -> list[Input]:
    """Orders ``first`` .. ``first + orders - 1`` spread over buyers and channels (each buyer
    on each channel), then ``bad`` broken inputs per channel."""
    made = []
    for n in range(first, first + orders):
        buyer, channel = BUYERS[n % 3], CHANNELS[(n // 3) % 3]
        number = buyer.number(n)
        name = f"{channel}-{buyer.partner}-{n:05d}.xml"
        made.append(Input(name, channel, buyer.order(number), number, tuple(buyer.outputs(number))))
    for channel in CHANNELS:
        for k in range(bad):
            payload = BUYERS[0].order(f"BAD-{first}-{k}")[:500]
            made.append(Input(f"{channel}-bad-{first:05d}-{k}.xml", channel, payload, None))
    return made


def waves(items: list[Input], count: int) -> list[list[Input]]:
    """``items`` in ``count`` waves of about the same size, each with every channel."""
    return [items[i::count] for i in range(count)]


@dataclass
class Instance:
    """One `edi-gateway run` process, started again after it died; ``armed``: its crash point."""

    project: Project
    number: int
    process: subprocess.Popen[str] | None = None
    armed: str | None = None

    @property
    def logfile(self) -> Path:
        return self.project.root / f"instance{self.number}.log"

    def start(self, crash_at: str | None = None) -> None:
        self.armed = crash_at
        env = cli_env(**({"EDI_GATEWAY_CRASH_AT": crash_at} if crash_at else {}))
        with self.logfile.open("a") as log:
            self.process = subprocess.Popen(
                [str(EXE), "--config", str(self.project.config), "run"],
                cwd=self.project.root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )

    def died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)

    def log(self, tail: int = 4000) -> str:
        return self.logfile.read_text(errors="replace")[-tail:]


class Cluster:
    """Several instances of one project, and what happened to them: crashes at named points
    and random kills (``events``) and anything that broke a promise (``breaches``)."""

    def __init__(self, project: Project, size: int = 3) -> None:
        self.instances = [Instance(project, n) for n in range(size)]
        self.events: Counter[str] = Counter()
        self.breaches: list[str] = []

    def start(self, points: Callable[[], str | None] = lambda: None) -> None:
        for instance in self.instances:
            instance.start(points())

    def crashed(self) -> list[Instance]:
        """Instances that died by themselves since last asked: at their crash point (SIGKILL,
        counted), or of anything else (a breach). They are not started again here."""
        found = []
        for instance in self.instances:
            if not instance.died():
                continue
            assert instance.process is not None
            code, armed = instance.process.returncode, instance.armed
            if code == -signal.SIGKILL and armed:
                self.events[armed.partition("@")[0]] += 1
            else:
                self.breaches.append(f"instance {instance.number} exited {code}: {instance.log()}")
            instance.process = None  # counted once
            found.append(instance)
        return found

    def alive(self) -> list[Instance]:
        return [i for i in self.instances if i.process is not None and not i.died()]

    def kill(self, instance: Instance) -> None:
        """SIGKILL at a random moment (a supervisor would start it again: the caller does)."""
        instance.kill()
        instance.process = None
        self.events[SIGKILL] += 1

    def rolling_restart(self, pause: Callable[[], None]) -> None:
        """Each instance stopped with SIGTERM (it must exit 0) and started again, in turn."""
        for instance in self.instances:
            code = instance.stop() if instance.process is not None else "(it had died)"
            if code != 0:
                self.breaches.append(f"instance {instance.number} stopped with {code}")
            self.events["SIGTERM"] += 1
            instance.start()
            pause()

    def stop(self) -> None:
        """SIGTERM to every instance still running: each must exit 0, and no log may hold a
        traceback."""
        for instance in self.instances:
            if instance.process is not None:
                code = instance.stop()
                if code not in (0, -signal.SIGKILL):
                    self.breaches.append(f"instance {instance.number} stopped with {code}")
        for instance in self.instances:
            if "Traceback" in instance.logfile.read_text(errors="replace"):
                self.breaches.append(f"a traceback in instance{instance.number}.log")

    def abort(self) -> None:
        """SIGKILL every instance still running (a scenario that raised leaves none behind)."""
        for instance in self.alive():
            instance.kill()

    @property
    def send_crashes(self) -> int:
        """Crashes that may fall between a send and its commit: at ``after-send`` or at a random
        moment (the other points are reached by the loop's one thread while nothing is sent)."""
        return self.events["after-send"] + self.events[SIGKILL]


@dataclass
class Counts:
    """What one scenario found: its figures, and each promise it saw broken."""

    orders: int = 0
    inputs: int = 0
    lost: int = 0
    doubled: int = 0
    amqp_copies: int = 0
    """AMQP deliveries beyond the first of one message id (allowed: one per send crash)."""
    copies_allowed: int = 0
    sftp_temps: int = 0
    """Temporary files a kill left on the SFTP server (swept after 600 s: transports/sftp.py)."""
    events: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    breaches: list[str] = field(default_factory=list)

    def broken(self, what: str, lost: int = 0, doubled: int = 0) -> None:
        self.lost += lost
        self.doubled += doubled
        self.breaches.append(what)

    def line(self) -> str:
        events = ", ".join(f"{k} {v}" for k, v in sorted(self.events.items())) or "none"
        return (
            f"orders {self.orders}, inputs {self.inputs}, events: {events}; lost {self.lost}, "
            f"doubled {self.doubled}, AMQP duplicates by message id {self.amqp_copies} "
            f"(allowed {self.copies_allowed}), SFTP temporary files left {self.sftp_temps}, "
            f"{self.seconds:.0f} s"
        )


class Servers:
    """A private PostgreSQL server, RabbitMQ node and sshd for one module or one soak."""

    def __init__(self, stack: ExitStack) -> None:
        from tests.servers import postgresql

        base = Path(tempfile.mkdtemp(prefix="edi-gateway-pg-"))
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        self.pg_base = base
        self.pg = stack.enter_context(postgresql(base))
        self.rabbit = stack.enter_context(rabbitmq())
        self.ssh = stack.enter_context(sshd())

    def database(self) -> str:
        from tests.conftest import new_postgres_database

        return new_postgres_database(self.pg)

    def restart_postgres(self, down: float = 2.0) -> None:
        """Stop the PostgreSQL server (fast: sessions are cut), wait ``down`` s, start it."""
        from tests.servers import postgresql_ctl

        postgresql_ctl(self.pg_base, self.pg, "stop")
        time.sleep(down)
        postgresql_ctl(self.pg_base, self.pg, "start")


def _names(folder: Path, pattern: str = "*") -> list[str]:
    return [p.name for p in folder.glob(pattern)] if folder.is_dir() else []


class World:
    """One gateway project on a new PostgreSQL database of ``servers``, and the partners' side
    of its SFTP folders and RabbitMQ queues (emptied first); ``fed`` is what was sent so far."""

    def __init__(self, root: Path, servers: Servers) -> None:
        from sqlalchemy import create_engine

        done = cli("init", root)
        assert done.returncode == 0, done.stderr
        self.project = Project(root)
        self.project.edit_config()
        self.servers = servers
        self.sftp = SftpHarness(servers.ssh)
        self.sftp.reset()
        self.amqp = AmqpHarness(servers.rabbit)
        self.amqp.reset()
        self.url = servers.database()
        self.engine = create_engine(self.url, pool_pre_ping=True)
        self.fed: dict[str, Input] = {}
        self._configure()

    def _configure(self) -> None:
        data: dict[str, Any] = yaml.safe_load(self.project.config.read_text())
        data["store"] = {"url": self.url}
        data["intake"]["batch_size"] = 20
        data["daemon"] = {
            "lease_seconds": 5,
            "outbox_every_seconds": 1,
            "backoff": {"initial_seconds": 1, "max_seconds": 4},
        }
        partners = {p["id"]: p for p in data["partners"]}
        partners["nordisk"].update(outbound="amqp-out", forward={"formats": ["ubl"]})
        partners["rijnoever"].update(outbound="amqp-out", auto_response="acknowledge")
        partners["buyer"].update(outbound="sftp-out", auto_response="acknowledge")
        partners["supplier"].update(outbound="sftp-out", forward={"formats": ["ubl"]})
        data["connectors"] += [
            self.sftp.inbound("sftp-in"),
            self.amqp.inbound("amqp-in"),
            self.sftp.outbound("sftp-out"),
            self.amqp.outbound("amqp-out"),
        ]
        for conn in data["connectors"]:
            if conn["direction"] == "in":
                conn["every_seconds"] = 1
        self.project.config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))

    def close(self) -> None:
        self.amqp.close()
        self.engine.dispose()

    def feed(self, items: list[Input]) -> None:
        for item in items:
            if item.channel == "folder":
                self.project.drop(item.name, item.payload)
            elif item.channel == "sftp":
                self.sftp.send(item.name, item.payload)
            else:
                self.amqp.send(item.name, item.payload, message_id=item.name)
            self.fed[item.name] = item

    @property
    def expected(self) -> Counter[tuple[str, str]]:
        """Every (connector, file name) the inputs fed so far must be delivered as, once."""
        return Counter(out for item in self.fed.values() for out in item.outputs)

    def claims_left(self) -> bool:
        """Whether files sit claimed in the folder or SFTP inbox (a crash left them)."""
        claimed = _names(self.project.inbox / ".claimed", "*.xml")
        return bool(claimed) or bool(_names(self.sftp.inbox / ".claimed", "*.xml"))

    def wait_running(self, count: int, seconds: float = 60) -> None:
        """Until ``count`` gateways hold a current instance lease (started, serving)."""
        from sqlalchemy.exc import SQLAlchemyError

        from edi_gateway.store.leases import read

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with self.engine.connect() as conn:
                    if len(read(conn, "instance:", current=True)) >= count:
                        return
            except SQLAlchemyError:
                pass  # no schema yet: the first gateway is creating it
            time.sleep(0.2)
        raise AssertionError(f"{count} gateways did not start within {seconds:.0f} s")

    def settled(self) -> bool:
        """Every input stored in a terminal state, every outbound row sent, nothing waiting."""
        import pika.exceptions
        from sqlalchemy import distinct, func, select
        from sqlalchemy.exc import SQLAlchemyError

        from edi_gateway.store.schema import messages, outbox

        m, o = messages.c, outbox.c
        try:
            with self.engine.connect() as conn:
                names = conn.scalar(select(func.count(distinct(m.filename))))
                busy = conn.scalar(select(func.count()).where(m.state.not_in(TERMINAL)))
                counted = conn.execute(select(o.state, func.count()).group_by(o.state))
                rows = {str(state): int(n) for state, n in counted}
            waiting = self.amqp.waiting()
        except (SQLAlchemyError, pika.exceptions.AMQPError, OSError):
            return False  # a server is restarting
        folders = _names(self.project.inbox, "*.xml") + _names(self.project.inbox / ".claimed")
        return (
            names == len(self.fed)
            and busy == 0
            and sum(rows.values()) >= self.expected.total()
            and set(rows) <= {"sent"}
            and not waiting
            and not folders
            and self.sftp.waiting() == 0
        )

    # -- the count ---------------------------------------------------------------------------

    def count(self, cluster: Cluster, allowed: int) -> Counts:
        """Everything checked after the instances stopped; ``allowed``: AMQP copies a scenario
        may make (one per crash that can fall between a send and its commit)."""
        good = [i for i in self.fed.values() if i.number]
        counts = Counts(
            orders=len(good),
            inputs=len(self.fed),
            events=Counter(cluster.events),
            copies_allowed=allowed,
        )
        for breach in cluster.breaches:
            counts.broken(breach)
        self._count_places(counts)
        self._count_store(counts)
        self._count_deliveries(counts, cluster.send_crashes)
        return counts

    def _places(self) -> Counter[tuple[str, str]]:
        """(input name, place) of every input found: archive, error or waiting."""
        found: Counter[tuple[str, str]] = Counter()
        inbox, remote = self.project.inbox, self.sftp.server.data
        for place, folder in (("archive", self.project.archive), ("error", self.project.error)):
            found.update((original_name(n), place) for n in _names(folder))
        for place in ("archive", "error"):
            names = _names(remote / place)
            found.update((original_name(n.removeprefix(SFTP_TAG)), place) for n in names)
        for folder in (inbox, remote / "inbox"):
            found.update((n, "waiting") for n in _names(folder, "*.xml"))
            claimed = _names(folder / ".claimed", "*.xml")
            found.update((original_name(n.removeprefix(SFTP_TAG)), "waiting") for n in claimed)
        for properties, _ in self.amqp.take_dead_letters():
            found[(str((properties.headers or {}).get("filename")), "error")] += 1
        channel = self.amqp.channel()
        while True:
            method, properties, _body = channel.basic_get(INBOX, auto_ack=True)
            if method is None:
                break
            found[(str((properties.headers or {}).get("filename")), "waiting")] += 1
        # an AMQP input the broker no longer holds was acknowledged: its terminal place
        seen = {name for name, _ in found}
        for item in self.fed.values():
            if item.channel == "amqp" and item.name not in seen:
                found[(item.name, "archive")] += 1
        return found

    def _count_places(self, counts: Counts) -> None:
        found = self._places()
        for (name, place), n in found.items():
            if name not in self.fed:
                counts.broken(f"{name!r} found in {place}: never fed")
            elif place == "waiting":
                counts.broken(f"{name!r} still waiting ({n})", lost=1)
        for name, item in self.fed.items():
            places = {p: found[(name, p)] for p in ("archive", "error") if found[(name, p)]}
            right = "archive" if item.number else "error"
            if not places and not found[(name, "waiting")]:
                counts.broken(f"{name!r} in no terminal place", lost=1)
            elif sum(places.values()) > 1:
                counts.broken(f"{name!r} in {places}", doubled=sum(places.values()) - 1)
            elif places and right not in places:
                counts.broken(f"{name!r} in {places}, expected {right}")

    def _count_store(self, counts: Counts) -> None:
        from sqlalchemy import select

        from edi_gateway.store.schema import messages, orders, outbox

        with self.engine.connect() as conn:
            stored = conn.execute(select(messages.c.filename, messages.c.state)).all()
            numbers = Counter(conn.scalars(select(orders.c.order_number)))
            o = outbox.c
            found = conn.execute(select(o.connector, o.filename, o.state))
            rows = [(str(c), str(f), str(state)) for c, f, state in found]
        per_name = Counter(name for name, _ in stored)
        states = {name: state for name, state in stored}
        for name, item in self.fed.items():
            right = "processed" if item.number else "failed"
            if not per_name[name]:
                counts.broken(f"{name!r} has no message", lost=1)
            elif per_name[name] > 1:
                counts.broken(f"{name!r} stored {per_name[name]} times", doubled=per_name[name] - 1)
            elif states[name] != right:
                counts.broken(f"{name!r} is {states[name]}, expected {right}")
            if item.number and numbers[item.number] != 1:
                n = numbers[item.number]
                counts.broken(f"order {item.number} stored {n} times", lost=n < 1, doubled=n > 1)
        extra = set(per_name) - set(self.fed)
        if extra:
            counts.broken(f"messages of nothing fed: {sorted(extra)[:5]}", doubled=len(extra))
        queued = Counter((c, f) for c, f, _ in rows)
        self._compare("outbox rows", queued, counts)
        unsent = [(c, f, s) for c, f, s in rows if s != "sent"]
        if unsent:
            counts.broken(f"outbox rows not sent: {unsent[:5]}", lost=len(unsent))

    def _compare(self, what: str, found: Counter[tuple[str, str]], counts: Counts) -> None:
        """``found`` against what the inputs must have caused: each exactly once."""
        expected = self.expected
        missing = expected - found
        extra = found - expected
        if missing:
            counts.broken(f"{what} missing: {sorted(missing)[:5]}", lost=missing.total())
        if extra:
            counts.broken(f"{what} twice or unexpected: {sorted(extra)[:5]}", doubled=extra.total())

    def _count_deliveries(self, counts: Counts, send_crashes: int) -> None:
        """What the partners received: files in the outbox folder and on the SFTP server, each
        once; AMQP messages, copies only of one message id, no more than allowed."""
        payloads = {i.number: i.payload for i in self.fed.values() if i.number}
        received: dict[tuple[str, str], bytes] = {}
        files: Counter[tuple[str, str]] = Counter()
        temps = [n for n in _names(self.project.root / "outbox") if n.startswith(".")]
        if temps:
            counts.broken(f"temporary files left in the outbox folder: {temps[:5]}")
        for connector, folder in (("outbox", self.project.root / "outbox"), ("sftp-out", None)):
            found = (
                self.sftp.delivered()
                if folder is None
                else {n: (folder / n).read_bytes() for n in _names(folder) if not n.startswith(".")}
            )
            for name, body in found.items():
                files[(connector, name)] += 1
                received[(connector, name)] = body
        counts.sftp_temps = len([n for n in _names(self.sftp.outbox) if n.startswith(".")])
        if counts.sftp_temps > send_crashes:
            counts.broken(f"{counts.sftp_temps} SFTP temporary files, {send_crashes} kills")
        published: list[tuple[str, str, bytes]] = []  # (file name, message id, body)
        channel = self.amqp.channel()
        while True:
            method, properties, body = channel.basic_get(PARTNER, auto_ack=True)
            if method is None:
                break
            name = str((properties.headers or {}).get("filename"))
            published.append((name, str(properties.message_id), body))
            received[("amqp-out", name)] = body
        ids = {(name, message_id) for name, message_id, _ in published}
        files.update(("amqp-out", name) for name, _ in ids)  # one name under two ids: twice
        counts.amqp_copies = len(published) - len(ids)
        for name, message_id in ids:
            different = {b for n, i, b in published if (n, i) == (name, message_id)}
            if len(different) > 1:
                counts.broken(f"message id {message_id} ({name}) carried different bodies")
        if counts.amqp_copies > counts.copies_allowed:
            counts.broken(
                f"{counts.amqp_copies} AMQP copies of one message id, at most "
                f"{counts.copies_allowed} allowed",
                doubled=counts.amqp_copies - counts.copies_allowed,
            )
        self._compare("deliveries", files, counts)
        for (connector, name), body in received.items():
            number = name.removesuffix("-ubl.xml").partition("-")[2]
            if name.endswith("-ubl.xml") and body != payloads.get(number):
                counts.broken(f"{connector}:{name} is not the order as received")


# -- scenarios: each starts three instances, feeds its inputs in waves while it disturbs them,
# waits until the work settled, stops the instances and counts -------------------------------


def drive(
    world: World,
    cluster: Cluster,
    plan: deque[list[Input]],
    disturb: Callable[[int], None],
    rng: random.Random,
    seconds: float,
) -> None:
    """Feed a wave every other tick (``disturb(tick)`` in between) until every wave was fed and
    the work settled, or ``seconds`` passed (what is left then is counted lost)."""
    deadline = time.monotonic() + seconds
    for tick in itertools.count():
        if plan and tick % 2 == 0:
            world.feed(plan.popleft())
        disturb(tick)
        if not plan and world.settled():
            return
        if time.monotonic() > deadline:
            cluster.breaches.append(f"not settled within {seconds:.0f} s")
            return
        time.sleep(rng.uniform(0.2, 0.8))


def play(
    world: World,
    cluster: Cluster,
    plan: deque[list[Input]],
    disturb: Callable[[int], None],
    rng: random.Random,
    seconds: float,
    *,
    points: Callable[[], str | None] = lambda: None,
    allowed: Callable[[], int] = lambda: 0,
) -> Counts:
    """Start the instances (armed by ``points``), ``drive`` the work, stop them and count
    (``allowed()``: the AMQP copies the scenario may have made)."""
    started = time.monotonic()
    cluster.start(points)
    try:
        drive(world, cluster, plan, disturb, rng, seconds)
    except BaseException:
        cluster.abort()
        raise
    cluster.stop()
    counts = world.count(cluster, allowed())
    counts.seconds = time.monotonic() - started
    return counts


def chaos(
    world: World,
    orders: int,
    rng: random.Random,
    *,
    crashes: int = 8,
    kills: int = 3,
    parts: int = 6,
    seconds: float = 240,
) -> Counts:
    """Instances armed with a crash point (the N-th time, N at random), started again when they
    die there, until ``crashes`` were reached; each is armed with the first point of ``CYCLE``
    none has reached yet (any, once all were), so the one that polls or sends next dies there.
    Meanwhile ``kills`` SIGKILLs of a random instance at random moments, while the orders come
    in ``parts`` waves. When a crash leaves claimed files (the first time, then once every four
    such crashes), every instance is killed and started armed with during-recovery, so whichever
    recovers them dies there. While a named point was not reached, the work is topped up with a
    few orders (at most three times)."""
    cluster = Cluster(world.project)
    plan = deque(waves(inputs(0, orders), parts))
    fresh = itertools.count(orders, 15)
    topups = itertools.count()

    randoms = 0  # SIGKILLs at random moments (recoveries kill too)

    def missing() -> list[str]:
        return [p for p in (*CYCLE, *NAMED_POINTS) if not cluster.events[p]]

    def due() -> bool:
        return sum(cluster.events[p] for p in POINTS) < crashes

    def point() -> str | None:
        if not due():
            return None
        name = next((p for p in missing() if p in CYCLE), None) or rng.choice(CYCLE)
        return f"{name}@{rng.randint(1, 8 if name == 'after-send' else 3)}"

    def recover(died: list[Instance]) -> bool:
        """After a crash that left claims: every instance killed and armed with during-recovery,
        the first time, then once every four such crashes (while crashes are due)."""
        left = [i for i in died if (i.armed or "").partition("@")[0] in LEAVE_CLAIMS]
        behind = sum(cluster.events[p] for p in LEAVE_CLAIMS) // 4 + 1
        if not left or cluster.events["during-recovery"] >= behind or not due():
            return False
        if not world.claims_left():
            return False
        for instance in cluster.alive():
            cluster.kill(instance)
        cluster.start(lambda: "during-recovery@1")
        return True

    def disturb(tick: int) -> None:
        nonlocal randoms
        died = cluster.crashed()
        if not recover(died):
            for instance in died:
                instance.start(point())
        if randoms < kills and rng.random() < 0.15 and cluster.alive():
            victim = rng.choice(cluster.alive())
            cluster.kill(victim)
            randoms += 1
            victim.start(point())
        if not plan and missing() and world.settled() and next(topups) < 3:
            plan.append(inputs(next(fresh), 15, bad=0))

    return play(
        world,
        cluster,
        plan,
        disturb,
        rng,
        seconds,
        points=point,
        allowed=lambda: cluster.send_crashes,
    )


def restart_server(
    world: World,
    orders: int,
    rng: random.Random,
    server: str,
    *,
    restarts: int = 1,
    seconds: float = 240,
) -> Counts:
    """``server`` (postgresql or rabbitmq) restarted ``restarts`` times while work flows; the
    instances must ride it out (none may exit). A send whose confirm or commit the restart cut
    may go again: at most one per instance and restart over AMQP."""
    cluster = Cluster(world.project)
    plan = deque(waves(inputs(0, orders), 2 * restarts + 2))
    when = {3 + 4 * k for k in range(restarts)}  # after the second wave, the fourth, ...

    def disturb(tick: int) -> None:
        cluster.crashed()  # none may die: a breach
        if tick in when:
            world.wait_running(len(cluster.instances))  # mid-run: each one started
            if server == "postgresql":
                world.servers.restart_postgres()
            else:
                world.amqp.restart()
            cluster.events[f"{server} restart"] += 1

    restarted = len(cluster.instances) * restarts
    return play(world, cluster, plan, disturb, rng, seconds, allowed=lambda: restarted)


def rolling_restart(
    world: World, orders: int, rng: random.Random, *, rounds: int = 1, seconds: float = 240
) -> Counts:
    """``rounds`` times, each instance stopped with SIGTERM and started again in turn (the next
    once it serves), a wave fed after each; a clean stop finishes its batch and its send: no
    AMQP copy is allowed."""
    cluster = Cluster(world.project)
    plan = deque(waves(inputs(0, orders), 4 * rounds + 2))
    when = {2 + 4 * k for k in range(rounds)}

    def pause() -> None:
        world.wait_running(len(cluster.instances))
        if plan:
            world.feed(plan.popleft())
        time.sleep(1.0)

    def disturb(tick: int) -> None:
        cluster.crashed()  # none may die: a breach
        if tick in when:
            world.wait_running(len(cluster.instances))
            cluster.rolling_restart(pause)

    return play(world, cluster, plan, disturb, rng, seconds)
