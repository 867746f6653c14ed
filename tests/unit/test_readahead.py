"""Read-ahead: a forked worker examines ``ingest``'s files; its results must be the parent's own."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import pickle
import pickletools
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.domain.documents import Document, DocumentKind
from edi_gateway.errors import GatewayError
from edi_gateway.pipeline import readahead
from edi_gateway.pipeline.readahead import Examined, Primed, ReadAhead, inbound_files
from edi_gateway.store import widths
from edi_gateway.store.db import Store, open_store
from edi_gateway.store.tables import DocumentRow, Message
from edi_gateway.ubl.read import interpret
from edi_gateway.ubl.validate import validate_document
from tests import factory as f

KINDS = frozenset(kind.value for kind in DocumentKind)
BAD = {
    "bad-01-malformed.xml": b"<Order><unclosed></Order>",
    "bad-02-empty.xml": b"",
    "bad-03-dtd.xml": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>',
    "bad-04-foreign.xml": b'<Order xmlns="urn:example:not-ubl"/>',
    "bad-05-xsd.xml": f.order("PO-X").replace(b"<cbc:IssueDate>", b"<cbc:X/><cbc:IssueDate>"),
    # valid, but a buyer name longer than the store keeps: VALUE_TOO_LONG (pipeline/limits.py)
    "bad-06-too-long.xml": f.order("PO-LONG", buyer_name="B" * (widths.NAME + 1)),
}


GATEWAY_YAML = (
    "store:\n  url: sqlite:///gw.db\n"
    "partners:\n"
    "  - id: b\n    name: B\n    role: buyer\n"
    f"    endpoint: {{scheme: '0088', value: '{f.BUYER_GLN}'}}\n"
    "  - id: s\n    name: S\n    role: supplier\n"
    f"    endpoint: {{scheme: '0088', value: '{f.SELLER_GLN}'}}\n"
)


def _folder(tmp_path: Path, good: int = 30) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for n in range(good):
        where = folder / "sub" if n % 7 == 0 else folder
        (where / f"po-{n:03}.xml").write_bytes(f.order(f"PO-{n:03}", f.items(3)))
    for name, data in BAD.items():
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("not taken: not *.xml")
    os.mkfifo(folder / "pipe.xml")  # never opened: reading it would block for ever
    return folder


def _own(path: Path) -> Document | tuple[str, str, int | None]:
    """What the parent makes of the file without read-ahead."""
    try:
        return interpret(validate_document(path.read_bytes(), max_size=1 << 26, kinds=KINDS).root)
    except GatewayError as exc:
        return (exc.code.value, exc.message, exc.line)


def _examined(ahead: ReadAhead, path: Path) -> Document | tuple[str, str, int | None]:
    examined = ahead.take(str(path))
    assert examined is not None, f"the worker did not examine {path.name}"
    try:
        return examined.result()
    except GatewayError as exc:
        return (exc.code.value, exc.message, exc.line)


def test_files_are_listed_in_name_order_without_fifos_or_other_names(tmp_path: Path) -> None:
    folder = _folder(tmp_path, good=8)
    names = [p.relative_to(folder).as_posix() for p in inbound_files([folder])]
    assert names == sorted(names)
    assert "pipe.xml" not in names and "notes.txt" not in names
    assert "sub/po-000.xml" in names and len(names) == 8 + len(BAD)


def test_the_workers_results_equal_the_parents_own(tmp_path: Path) -> None:
    files = list(inbound_files([_folder(tmp_path)]))
    ahead = ReadAhead.start(files)
    assert ahead is not None
    with ahead:
        assert ahead.join(timeout=60), "the worker did not finish"
        for path in files:
            assert _examined(ahead, path) == _own(path), path.name
        assert ahead.take(str(files[0])) is None  # taken once; then it is the caller's
        assert ahead.take(str(tmp_path / "unknown.xml")) is None


def test_the_worker_measures_what_it_reads_against_the_stores_columns(tmp_path: Path) -> None:
    files = list(inbound_files([_folder(tmp_path)]))
    with ReadAhead.start(files) as ahead:
        assert ahead.join(timeout=60), "the worker did not finish"
        measured = {path.name: getattr(ahead.take(str(path)), "measured", None) for path in files}
    assert measured.pop("bad-06-too-long.xml") is False  # processing measures it and fails it
    assert {measured[name] for name in BAD if name in measured} == {False}  # no document
    assert {v for k, v in measured.items() if k.startswith("po-")} == {True}


WORKER_ALONE = """\
import io, mmap, pickle, sys
from pathlib import Path
from edi_gateway.pipeline import readahead
files = [Path(name) for name in sys.argv[1:]]
stream = io.BytesIO()
readahead._work(files, mmap.mmap(-1, len(files)), stream)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"sqlalchemy", "pydantic", "yaml"})
print(len(stream.getvalue()) > 0, heavy)
"""


def test_the_worker_imports_neither_sqlalchemy_nor_the_config(tmp_path: Path) -> None:
    """The worker is forked before those imports (~0.3 s) and would fall behind if it made
    them; measuring against the store's columns must not bring SQLAlchemy in."""
    files = [str(path) for path in inbound_files([_folder(tmp_path)]) if path.is_file()]
    done = subprocess.run(
        [sys.executable, "-c", WORKER_ALONE, *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "[]"], done.stdout


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # reaped already: no longer our child
    return False


def test_a_primed_worker_handed_its_files_gives_the_parents_own_results(tmp_path: Path) -> None:
    files = list(inbound_files([_folder(tmp_path)]))
    primed = ReadAhead.prime()
    assert primed is not None
    ahead = ReadAhead.start(files, primed)
    assert ahead is not None and ahead.pid == primed.pid
    primed.close()  # handed over: the ReadAhead owns the worker now, this does nothing
    with ahead:
        assert ahead.join(timeout=60), "the worker did not finish"
        for path in files:
            assert _examined(ahead, path) == _own(path), path.name
    assert _reaped(ahead.pid)


def test_a_primed_worker_takes_the_first_files_only_up_to_its_capacity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readahead, "PRIMED_FILES", 25)
    files = list(inbound_files([_folder(tmp_path)]))
    primed = ReadAhead.prime()
    assert primed is not None
    ahead = ReadAhead.start(files, primed)
    assert ahead is not None
    with ahead:
        assert ahead.files == files[:25]
        assert ahead.join(timeout=60)
        assert _examined(ahead, files[24]) == _own(files[24])
        assert ahead.take(str(files[25])) is None  # beyond it: the parent's


def test_a_primed_worker_without_files_is_stopped_and_reaped(tmp_path: Path) -> None:
    primed = ReadAhead.prime()
    assert primed is not None
    few = list(inbound_files([_folder(tmp_path, good=3)]))
    assert ReadAhead.start(few, primed) is None  # not worth it: the caller closes it
    primed.close()
    assert _reaped(primed.pid)
    primed.close()  # once is enough


def test_too_few_files_are_not_worth_a_worker(tmp_path: Path) -> None:
    files = list(inbound_files([_folder(tmp_path, good=3)]))
    assert len(files) < readahead.MIN_FILES
    assert ReadAhead.start(files) is None


def test_a_few_big_files_are_read_ahead_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    big.write_bytes(f.order("PO-BIG", f.items(4000), detailed=True))
    assert big.stat().st_size >= readahead.MIN_BYTES  # one file, but worth a worker
    ahead = ReadAhead.start([big])
    assert ahead is not None
    with ahead:
        assert _examined(ahead, big) == _own(big)


def test_files_claimed_by_the_parent_are_skipped_and_big_ones_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path)
    big = folder / "zz-big.xml"
    big.write_bytes(f.order("PO-BIG", f.items(40)))
    monkeypatch.setattr(readahead, "MAX_FILE", big.stat().st_size - 1)  # the fork inherits it
    files = list(inbound_files([folder]))
    ahead = ReadAhead.start(files)
    assert ahead is not None
    with ahead:
        # Whatever the worker had not reached is claimed here and stays the caller's.
        claimed = [p for p in reversed(files) if ahead.take(str(p)) is None]
        assert ahead.join(timeout=60)
        assert big in claimed
        for path in files:
            if path not in claimed:
                continue
            assert ahead.take(str(path)) is None


def test_files_near_the_worker_are_waited_for_and_far_ones_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = list(inbound_files([_folder(tmp_path)]))
    ahead = ReadAhead.start(files)
    assert ahead is not None
    with ahead:  # every file is within CLAIM_LAG of the worker: all are its work
        assert all(ahead.take(str(p)) is not None for p in reversed(files))
    import edi_gateway.ubl.validate as validate

    slow = validate.validate_document

    def slowly(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return slow(*args, **kwargs)

    monkeypatch.setattr(validate, "validate_document", slowly)  # the fork inherits it
    monkeypatch.setattr(readahead, "CLAIM_LAG", 2)
    ahead = ReadAhead.start(files)
    assert ahead is not None
    with ahead:  # files more than 2 ahead of a slow worker are the caller's
        last = ahead.take(str(files[-1]))
        assert last is None
        assert ahead.join(timeout=60)
        assert ahead.take(str(files[-1])) is None  # the worker skipped it: it was claimed
        assert ahead.take(str(files[0])) is not None


def test_a_file_taken_before_is_the_callers_at_once_while_the_worker_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch processed again (PostgreSQL broke a circle of lock waits by rolling it back, or
    it failed and goes message by message) asks again for files it took: it must examine them
    itself at once, not wait (its rows locked) until the worker has been through its whole
    list. The worker is held at its second file until the caller has asked twice (10 s at
    most); the file's flag said "the worker's" and was waited on."""
    files = list(inbound_files([_folder(tmp_path)]))
    gate = tmp_path / "go"
    import edi_gateway.ubl.validate as validate

    real = validate.validate_document
    calls: list[int] = []

    def held(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        for _ in range(200 if len(calls) == 2 else 0):
            if gate.exists():
                break
            time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(validate, "validate_document", held)  # the fork inherits it
    ahead = ReadAhead.start(files)
    assert ahead is not None
    with ahead:
        assert ahead.take(str(files[0])) is not None
        assert ahead.take(str(files[0])) is None
        assert not ahead.join(timeout=0), "taken again only once the worker had ended"
        gate.touch()
        assert ahead.join(timeout=60)


def _states(store: Store) -> dict[str, tuple[str | None, ...]]:
    with store.session() as session:
        rows = session.execute(
            select(
                Message.filename,
                Message.state,
                Message.error_code,
                DocumentRow.doc_number,
                Message.sender_key,
                Message.error_detail,
            )
            .outerjoin(DocumentRow, DocumentRow.message_id == Message.id)
            .order_by(Message.id)
        )
        return {name: tuple(rest) for name, *rest in rows}


def test_ingest_with_read_ahead_stores_what_ingest_without_it_stores(
    gateway: Gateway, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    (folder / "po-dup.xml").write_bytes((folder / "po-001.xml").read_bytes())
    files = list(inbound_files([folder]))
    with ReadAhead.start(files) as ahead:
        with_worker = gateway.ingest([folder], ahead=ahead)
    plain = Gateway(gateway.settings, open_store(f"sqlite:///{tmp_path / 'plain.db'}"))
    try:
        without = plain.ingest([folder])
        assert _states(gateway.store) == _states(plain.store)
    finally:
        plain.close()
    assert with_worker.counts() == without.counts()
    refused = _states(gateway.store)["bad-05-xsd.xml"]
    assert refused[:2] == ("failed", "XSD_INVALID")
    assert refused[3] == f"0088:{f.BUYER_GLN}"  # the sender of a refused document, read ahead
    assert "/Order/cbc:X[1]: cbc:X is not expected here" in (refused[4] or "")
    too_long = _states(gateway.store)["bad-06-too-long.xml"]
    assert too_long[:2] == ("failed", "VALUE_TOO_LONG")  # the worker's measuring is not trusted
    assert with_worker.counts()["processed"] == 30
    assert with_worker.counts()["duplicate"] == 1
    assert with_worker.counts()["failed"] == len(BAD)


def test_a_worker_that_dies_leaves_the_work_to_the_parent(gateway: Gateway, tmp_path: Path) -> None:
    files = list(inbound_files([_folder(tmp_path)]))
    ahead = ReadAhead.start(files)
    assert ahead is not None
    os.kill(ahead.pid, signal.SIGKILL)
    with ahead:
        outcome = gateway.ingest(files, ahead=ahead)
    assert outcome.counts() == {"processed": 30, "failed": len(BAD)}


def test_bytes_changed_after_the_worker_read_them_are_examined_again(
    gateway: Gateway, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    files = list(inbound_files([folder]))
    first = folder / "po-001.xml"
    with ReadAhead.start(files) as ahead:
        assert ahead.join(timeout=60)
        first.write_bytes(f.order("PO-CHANGED", f.items(2)))  # after the worker read it
        gateway.ingest(files, ahead=ahead)
    states = _states(gateway.store)
    assert states["po-001.xml"][:3] == ("processed", None, "PO-CHANGED")


def test_the_ingest_command_uses_a_worker_and_reports_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from edi_gateway.cli import main

    folder = _folder(tmp_path)
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY_YAML)
    started: list[ReadAhead | None] = []
    real_start = ReadAhead.start

    def spy(files: list[Path]) -> ReadAhead | None:
        started.append(real_start(files))
        return started[-1]

    monkeypatch.setattr(ReadAhead, "start", staticmethod(spy))
    code = main(["--config", str(config), "ingest", str(folder)])
    out = capsys.readouterr().out
    assert started and started[0] is not None
    assert code == 1  # some files failed
    assert "30 processed" in out and f"{len(BAD)} failed" in out


def test_ingest_opens_its_gateway_with_the_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``ingest`` imports and opens lives as long as the process: no young collection
    walks it (cli/running.py, ``no_collections``); processing collects as before."""
    from edi_gateway.cli import main, running

    enabled: list[tuple[str, bool]] = []
    real_gateway, real_ingest = running.gateway, Gateway.ingest

    @contextlib.contextmanager
    def opening(args: Any) -> Iterator[Gateway]:
        enabled.append(("open", gc.isenabled()))
        with real_gateway(args) as opened:
            yield opened

    def ingesting(self: Gateway, *args: Any, **kwargs: Any) -> Any:
        enabled.append(("ingest", gc.isenabled()))
        return real_ingest(self, *args, **kwargs)

    monkeypatch.setattr(running, "gateway", opening)
    monkeypatch.setattr(Gateway, "ingest", ingesting)
    (tmp_path / "gateway.yaml").write_text(GATEWAY_YAML)
    (tmp_path / "po.xml").write_bytes(f.order("PO-GC", f.items(2)))
    assert main(["--config", str(tmp_path / "gateway.yaml"), "ingest", str(tmp_path)]) == 0
    assert enabled == [("open", False), ("ingest", True)]
    assert gc.isenabled()


def _run_once(
    tmp_path: Path,
    name: str,
    folder: Path,
    worker: bool,
    replaced: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """``run --once`` over a copy of ``folder`` as an inbound folder connector: the store's
    states and how many files the worker's results were taken for. ``replaced``: inbox files
    given other bytes after the worker read them, before the poll claims them."""
    from edi_gateway.cli import main

    home = tmp_path / name
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    for n, path in enumerate(inbound_files([folder])):
        (inbox / path.name).write_bytes(path.read_bytes())
        os.utime(inbox / path.name, ns=(n, n))  # the same polling order every time
    config = home / "gateway.yaml"
    config.write_text(
        GATEWAY_YAML + "connectors:\n"
        "  - {name: inbox, type: folder, direction: in, path: inbox, every_seconds: 5}\n"
    )
    taken: list[Examined | None] = []
    real_start, real_take = ReadAhead.start, ReadAhead.take

    def start(files: list[Path], primed: Primed | None = None) -> ReadAhead | None:
        assert primed is not None  # run --once forks its worker before loading the config
        if not worker:
            return None  # and stops it
        ahead = real_start(files, primed)
        assert ahead is not None and ahead.join(timeout=60)  # done before anything is claimed
        for file_name, data in (replaced or {}).items():
            stamp = (inbox / file_name).stat().st_mtime_ns
            (inbox / file_name).write_bytes(data)
            os.utime(inbox / file_name, ns=(stamp, stamp))
        return ahead

    def take(self: ReadAhead, path: str) -> Examined | None:
        taken.append(real_take(self, path))
        return taken[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ReadAhead, "start", staticmethod(start))
        patch.setattr(ReadAhead, "take", take)
        assert main(["--config", str(config), "run", "--once"]) == 0
    store = open_store(f"sqlite:///{home / 'gw.db'}")
    try:
        return {"states": _states(store), "worked": sum(x is not None for x in taken)}
    finally:
        store.close()


def test_run_once_reads_the_inbound_folders_ahead_and_stores_the_same(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "po-dup.xml").write_bytes((folder / "po-001.xml").read_bytes())
    ahead = _run_once(tmp_path, "ahead", folder, worker=True)
    plain = _run_once(tmp_path, "plain", folder, worker=False)
    assert ahead["worked"] == 30 + len(BAD)  # every file examined by the worker, none by the parent
    assert plain["worked"] == 0
    assert ahead["states"] == plain["states"]
    states = [state[0] for state in ahead["states"].values()]
    assert states.count("processed") == 30 and states.count("duplicate") == 1


def test_run_once_stops_its_primed_worker_when_nothing_is_worth_reading_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty inbox, or a configuration that does not load: the worker forked before the
    configuration was read is stopped and reaped, and the run ends as it would without it."""
    from edi_gateway.cli import main

    primed: list[Primed] = []
    real_prime = ReadAhead.prime

    def prime() -> Primed | None:
        found = real_prime()
        assert found is not None
        primed.append(found)
        return found

    monkeypatch.setattr(ReadAhead, "prime", staticmethod(prime))
    (tmp_path / "inbox").mkdir()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        GATEWAY_YAML + "connectors:\n"
        "  - {name: inbox, type: folder, direction: in, path: inbox, every_seconds: 5}\n"
    )
    assert main(["--config", str(config), "run", "--once"]) == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text(GATEWAY_YAML + "connectors: 7\n")
    assert main(["--config", str(broken), "run", "--once"]) != 0  # a coded config error
    assert len(primed) == 2 and all(_reaped(worker.pid) for worker in primed)


def test_run_once_examines_again_a_file_changed_after_the_worker_read_it(tmp_path: Path) -> None:
    changed = {"po-001.xml": f.order("PO-CHANGED", f.items(2))}
    ahead = _run_once(tmp_path, "ahead", _folder(tmp_path), worker=True, replaced=changed)
    # the worker's result for the old bytes was offered, and refused by its sha256
    assert ahead["states"]["po-001.xml"][:3] == ("processed", None, "PO-CHANGED")


@pytest.mark.parametrize(
    "payload",
    [
        f.order("PO-1", f.items(12), detailed=True),
        f.order_response("OR-1", "PO-1", "CA", [("1", "5", "3")]),
        f.despatch_advice("DA-1", "PO-1", [("1", "4")]),
        f.invoice("INV-1", "PO-1", [("1", "4", "2.25")]),
        f.order_cancellation("OC-1", "PO-1"),
    ],
    ids=["order", "response", "despatch", "invoice", "cancellation"],
)
def test_documents_cross_the_pipe_unchanged(payload: bytes) -> None:
    document = interpret(validate_document(payload, max_size=1 << 20, kinds=KINDS).root)
    examined = Examined("0" * 64, len(payload), document, measured=True)
    data = pickle.dumps(examined, protocol=pickle.HIGHEST_PROTOCOL)
    again = pickle.loads(data)
    assert again == examined
    assert [type(line) for line in again.result().lines] == [type(x) for x in document.lines]
    # each object is one constructor call (domain/documents.py by_constructor), none is made
    # empty and then filled slot by slot (BUILD: slower to load, and a fields() walk to dump)
    assert "BUILD" not in {op.name for op, _, _ in pickletools.genops(data)}


def test_ingest_of_a_path_that_is_not_there_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edi_gateway.cli import main

    config = tmp_path / "gateway.yaml"
    config.write_text("store:\n  url: sqlite:///gw.db\n")
    missing = tmp_path / "no-such-order.xml"
    assert main(["--config", str(config), "ingest", str(missing), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "USAGE" and str(missing) in error["message"]
