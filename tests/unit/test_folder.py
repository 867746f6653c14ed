"""Folder transport: claim, ignore, ack, recover, races, hostile names, atomic outbound."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from edi_gateway.envelope import Envelope
from edi_gateway.errors import ConfigError
from edi_gateway.transports import TransportError, open_inbound, open_outbound
from edi_gateway.transports.folder import FolderInbound, FolderOutbound, safe_name
from edi_gateway.transports.folder_spec import FolderConnector


def inbound(tmp_path: Path, **extra: object) -> FolderConnector:
    (tmp_path / "in").mkdir(exist_ok=True)
    return FolderConnector.model_validate(
        {"name": "inbox", "type": "folder", "direction": "in", "path": "in", **extra},
        context={"base_dir": tmp_path},
    )


def outbound(tmp_path: Path) -> FolderConnector:
    return FolderConnector.model_validate(
        {"name": "outbox", "type": "folder", "direction": "out", "path": "out"},
        context={"base_dir": tmp_path},
    )


def drop(folder: Path, name: str | bytes, payload: bytes = b"<Order/>", mtime: int = 0) -> Path:
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), os.fsencode(name))))
    path.write_bytes(payload)
    if mtime:
        os.utime(path, (mtime, mtime))
    return path


def test_poll_claims_matching_files_and_ignores_the_rest(tmp_path: Path) -> None:
    conn = inbound(tmp_path)
    folder = conn.path
    drop(folder, "b.xml", b"B", mtime=2_000_000_000)
    drop(folder, "a.xml", b"A", mtime=1_000_000_000)
    drop(folder, "UPPER.XML", b"U", mtime=1_500_000_000)
    for ignored in ("c.xml.part", "d.xml.tmp", ".e.xml", "f.txt", "g.XML.PART"):
        drop(folder, ignored)
    (folder / "dir.xml").mkdir()
    (folder / "link.xml").symlink_to(tmp_path / "elsewhere.xml")
    (tmp_path / "elsewhere.xml").write_bytes(b"secret")

    got = list(FolderInbound(conn).poll())

    assert [e.payload for e in got] == [b"A", b"U", b"B"]  # oldest first
    first = got[0]
    assert first.source == "folder:inbox" and first.filename == "a.xml"
    assert first.source_ref.endswith("--a.xml") and first.source_ref != "a.xml"
    assert (folder / ".claimed" / first.source_ref).read_bytes() == b"A"
    left = sorted(p.name for p in folder.iterdir())
    expected = [".claimed", ".e.xml", "c.xml.part", "d.xml.tmp", "dir.xml", "f.txt"]
    assert left == [*expected, "g.XML.PART", "link.xml"]
    assert list(FolderInbound(conn).poll()) == []


def test_ack_moves_to_archive_or_error_and_is_idempotent(tmp_path: Path) -> None:
    conn = inbound(tmp_path)
    drop(conn.path, "ok.xml", b"1", mtime=1_000_000_000)
    drop(conn.path, "bad.xml", b"2", mtime=1_000_000_001)
    transport = FolderInbound(conn)
    ok, bad = transport.poll()
    transport.ack(ok, ok=True)
    transport.ack(bad, ok=False)
    assert conn.archive is not None and conn.error is not None
    assert (conn.archive / ok.source_ref).read_bytes() == b"1"
    assert (conn.error / bad.source_ref).read_bytes() == b"2"
    assert list((conn.path / ".claimed").iterdir()) == []
    transport.ack(ok, ok=True)  # already moved: no-op
    transport.ack(ok, ok=False)
    assert (conn.archive / ok.source_ref).exists()
    assert not (conn.error / ok.source_ref).exists()


def test_ack_makes_the_archive_again_when_it_was_removed_meanwhile(tmp_path: Path) -> None:
    """The archive folder is made once per transport; removed by hand during a run, the next
    acknowledgement makes it again instead of leaving the file claimed."""
    conn = inbound(tmp_path)
    for n in range(3):
        drop(conn.path, f"o{n}.xml", str(n).encode(), mtime=1_000_000_000 + n)
    transport = FolderInbound(conn)
    first, second, third = transport.poll()
    transport.ack(first, ok=True)
    assert conn.archive is not None
    (conn.archive / first.source_ref).unlink()
    conn.archive.rmdir()
    transport.ack(second, ok=True)
    assert (conn.archive / second.source_ref).read_bytes() == b"1"
    transport.ack(third, ok=True)
    transport.ack(third, ok=True)  # already moved: still a no-op
    assert sorted(p.name for p in conn.archive.iterdir()) == [second.source_ref, third.source_ref]
    assert list((conn.path / ".claimed").iterdir()) == []


def test_same_original_name_twice_never_collides_in_archive(tmp_path: Path) -> None:
    conn = inbound(tmp_path)
    transport = FolderInbound(conn)
    refs = []
    for payload in (b"first", b"second"):
        drop(conn.path, "order.xml", payload)
        (env,) = transport.poll()
        transport.ack(env, ok=True)
        refs.append(env.source_ref)
    assert conn.archive is not None
    assert sorted((conn.archive / r).read_bytes() for r in refs) == [b"first", b"second"]


def test_recover_offers_claimed_but_unacknowledged_files(tmp_path: Path) -> None:
    conn = inbound(tmp_path)
    for n in range(3):
        drop(conn.path, f"{n}.xml", str(n).encode(), mtime=1_000_000_000 + n)
    crashed = FolderInbound(conn)
    claimed = list(crashed.poll())
    crashed.ack(claimed[0], ok=True)

    restarted = FolderInbound(conn)
    recovered = list(restarted.recover())
    assert [(e.source_ref, e.payload, e.filename) for e in recovered] == [
        (e.source_ref, e.payload, e.filename) for e in claimed[1:]
    ]
    for env in recovered:
        restarted.ack(env, ok=True)
    assert list(restarted.recover()) == []
    assert list(restarted.poll()) == []


def test_recover_without_claimed_folder_is_empty(tmp_path: Path) -> None:
    assert list(FolderInbound(inbound(tmp_path)).recover()) == []


def test_two_pollers_racing_never_both_get_a_file(tmp_path: Path) -> None:
    conn = inbound(tmp_path)
    count = 300
    for n in range(count):
        drop(conn.path, f"{n:04d}.xml", f"{n}".encode())
    results: list[list[Envelope]] = [[], []]
    start = threading.Barrier(2)

    def run(slot: int) -> None:
        transport = FolderInbound(conn)
        start.wait()
        while True:
            got = list(transport.poll())
            if not got:
                return
            results[slot].extend(got)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    payloads = [e.payload for r in results for e in r]
    assert len(payloads) == count
    assert len(set(payloads)) == count


@pytest.mark.parametrize(
    "name",
    [
        "x" * 251 + ".xml",  # at NAME_MAX: the claim prefix must not push it over
        "line\nbreak\r.xml",
        b"caf\xe9-\xff\xfe.xml",  # not UTF-8 (Latin-1 bytes)
        "--help.xml",
        "-rf .xml",
        "tab\tand\x1bescape.xml",
        "名前 ünïcödé.xml",
    ],
)
def test_hostile_names_are_claimed_safely(tmp_path: Path, name: str | bytes) -> None:
    conn = inbound(tmp_path)
    drop(conn.path, name, b"<Order/>")
    transport = FolderInbound(conn)
    (env,) = transport.poll()
    assert env.payload == b"<Order/>"
    for text in (env.source_ref, env.filename):
        text.encode("utf-8")  # storable: no surrogates
        assert text.isprintable() and "/" not in text
    claimed = conn.path / ".claimed" / env.source_ref
    assert claimed.parent == conn.path / ".claimed" and claimed.is_file()
    assert len(os.fsencode(env.source_ref)) <= 255
    assert [e.source_ref for e in transport.recover()] == [env.source_ref]
    transport.ack(env, ok=True)
    assert conn.archive is not None and (conn.archive / env.source_ref).is_file()


def test_poll_of_missing_folder_is_a_recoverable_error(tmp_path: Path) -> None:
    conn = inbound(tmp_path)
    conn.path.rmdir()
    with pytest.raises(TransportError, match="does not exist") as info:
        list(FolderInbound(conn).poll())
    assert info.value.recoverable


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope(b"", "folder:other", "x--a.xml", "a.xml"),
        Envelope(b"", "folder:inbox", "../../etc/passwd", "passwd"),
        Envelope(b"", "folder:inbox", ".hidden", "h"),
    ],
)
def test_ack_refuses_foreign_or_hostile_envelopes(tmp_path: Path, envelope: Envelope) -> None:
    with pytest.raises(TransportError) as info:
        FolderInbound(inbound(tmp_path)).ack(envelope, ok=True)
    assert not info.value.recoverable


def test_outbound_writes_atomically_and_is_idempotent(tmp_path: Path) -> None:
    out = FolderOutbound(outbound(tmp_path))
    first = out.deliver("order-1.xml", b"<Order>1</Order>")
    assert first == str(tmp_path / "out" / "order-1.xml")
    assert Path(first).read_bytes() == b"<Order>1</Order>"
    assert out.deliver("order-1.xml", b"<Order>1</Order>") == first
    second = out.deliver("order-1.xml", b"<Order>2</Order>")
    assert second == str(tmp_path / "out" / "order-1-1.xml")
    assert out.deliver("order-1.xml", b"<Order>2</Order>") == second
    third = out.deliver("order-1.xml", b"<Order>3</Order>")
    assert third.endswith("order-1-2.xml")
    assert Path(first).read_bytes() == b"<Order>1</Order>"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "order-1-1.xml",
        "order-1-2.xml",
        "order-1.xml",
    ]


@pytest.mark.parametrize(
    "filename",
    [
        *("../../etc/passwd", "..", ".", "", "a\x00b.xml", "/abs/x.xml", "dir\\x.xml", "-x.xml"),
        *("é" * 300 + ".xml", ".hidden.xml", "new\nline.xml", "\udcff.xml"),
    ],
)
def test_outbound_hostile_names_stay_in_the_folder(tmp_path: Path, filename: str) -> None:
    out = FolderOutbound(outbound(tmp_path))
    written = Path(out.deliver(filename, b"payload"))
    assert written.parent == tmp_path / "out"
    assert not written.name.startswith((".", "-"))
    assert len(written.name.encode()) <= 200
    assert written.read_bytes() == b"payload"
    assert [p.name for p in written.parent.iterdir()] == [written.name]  # no temp file left


def test_outbound_never_writes_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "out" / "a.xml").symlink_to(victim)
    written = FolderOutbound(outbound(tmp_path)).deliver("a.xml", b"new")
    assert written.endswith("a-1.xml") and victim.read_bytes() == b"keep"


def test_outbound_concurrent_same_name_different_payloads(tmp_path: Path) -> None:
    conn = outbound(tmp_path)
    paths: list[str] = []
    start = threading.Barrier(8)

    def run(n: int) -> None:
        start.wait()
        paths.append(FolderOutbound(conn).deliver("same.xml", f"payload {n}".encode()))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == 8
    assert sorted(Path(p).read_bytes() for p in paths) == [
        f"payload {n}".encode() for n in range(8)
    ]


def test_safe_name_examples() -> None:
    assert safe_name("order.xml") == "order.xml"
    assert safe_name("../x.xml") == "_x.xml"
    assert safe_name("") == safe_name("..") == "unnamed"
    long = safe_name("a" * 500 + ".xml")
    assert long.endswith(".xml") and len(long) == 200


def test_open_by_type_and_direction(tmp_path: Path) -> None:
    assert isinstance(open_inbound(inbound(tmp_path)), FolderInbound)
    assert isinstance(open_outbound(outbound(tmp_path)), FolderOutbound)
    with pytest.raises(ConfigError, match="direction: out"):
        open_inbound(outbound(tmp_path))
    with pytest.raises(ConfigError, match="direction: in"):
        open_outbound(inbound(tmp_path))


def test_envelope_received_at_is_recent(tmp_path: Path) -> None:
    conn = inbound(tmp_path)
    drop(conn.path, "a.xml")
    (env,) = FolderInbound(conn).poll()
    assert abs(env.received_at.timestamp() - time.time()) < 60


def test_temporary_files_nobody_holds_are_swept_and_held_ones_kept(tmp_path: Path) -> None:
    """A delivery's temporary file stays locked (flock) while its writer lives: one a crashed
    writer left is removed by the next flush's first delivery; one a live writer holds stays."""
    conn = outbound(tmp_path)
    folder = conn.path
    folder.mkdir(parents=True, exist_ok=True)
    left = folder / ".a.xml.0badc0de.tmp"  # a writer that died: nobody holds it
    held = folder / ".b.xml.12345678.tmp"  # a writer still at work
    unrelated = folder / ".c.tmp"  # not a delivery's temporary name
    for path in (left, held, unrelated):
        path.write_bytes(b"<half")
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        FolderOutbound(conn).deliver("d.xml", b"<d/>")
        assert sorted(p.name for p in folder.iterdir()) == [
            ".b.xml.12345678.tmp",
            ".c.tmp",
            "d.xml",
        ]
    finally:
        os.close(fd)
    FolderOutbound(conn).deliver("e.xml", b"<e/>")
    assert sorted(p.name for p in folder.iterdir()) == [".c.tmp", "d.xml", "e.xml"]
