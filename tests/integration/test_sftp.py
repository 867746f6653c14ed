"""The SFTP connector against a real OpenSSH sshd: pinning, auth, claims, stability, acks.

The shared contract (round trip, many files, restart, bad credentials, hostile names) runs in
``connectors/test_contract.py``; these are the SFTP-specific properties.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edi_gateway.errors import ErrorCode
from edi_gateway.transports import TransportError, open_inbound, open_outbound
from edi_gateway.transports.sftp import SftpInbound, SftpOutbound
from edi_gateway.transports.sftp_spec import SftpConnector
from tests.integration.connectors.harness_sftp import (
    PASSWORD,
    SftpHarness,
    SshServer,
    fingerprint,
    sshd,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[SshServer]:
    with sshd() as running:
        yield running


@pytest.fixture
def partner(server: SshServer) -> SftpHarness:
    harness = SftpHarness(server)
    harness.reset()
    return harness


def inbound(partner: SftpHarness, max_bytes: int | None = None, **changes: Any) -> SftpInbound:
    entry = {**partner.inbound("from-partner"), **changes}
    transport = open_inbound(connector(entry), max_bytes)
    assert isinstance(transport, SftpInbound)
    return transport


def outbound(partner: SftpHarness, **changes: Any) -> SftpOutbound:
    transport = open_outbound(connector({**partner.outbound("to-partner"), **changes}))
    assert isinstance(transport, SftpOutbound)
    return transport


def connector(entry: dict[str, Any]) -> SftpConnector:
    return SftpConnector.model_validate({k: v for k, v in entry.items() if v is not None})


def refused(transport: SftpInbound | SftpOutbound) -> TransportError:
    with pytest.raises(TransportError) as caught:
        if isinstance(transport, SftpInbound):
            list(transport.poll())
        else:
            transport.deliver("x.xml", b"<x/>")
    assert not caught.value.recoverable
    return caught.value


# --- host key pinning ---------------------------------------------------------------------


def test_unknown_host_key_is_refused(partner: SftpHarness, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    partner.send("po.xml", b"<Order/>")
    error = refused(inbound(partner, known_hosts=str(empty)))
    assert error.code == ErrorCode.HOST_KEY_UNKNOWN
    assert "ssh-keyscan" in error.message and str(empty) in error.message
    assert refused(outbound(partner, known_hosts=str(empty))).code == ErrorCode.HOST_KEY_UNKNOWN
    assert partner.waiting() == 1 and partner.files("inbox") == {"po.xml": b"<Order/>"}


def test_changed_host_key_is_refused(
    partner: SftpHarness, server: SshServer, tmp_path: Path
) -> None:
    changed = tmp_path / "known_hosts"
    other = server.other_host_key.with_suffix(".pub").read_text()
    changed.write_text(f"[127.0.0.1]:{server.port} {other}")
    partner.send("po.xml", b"<Order/>")
    error = refused(inbound(partner, known_hosts=str(changed)))
    assert error.code == ErrorCode.HOST_KEY_MISMATCH
    assert fingerprint(server.host_key.with_suffix(".pub")) in error.message
    assert refused(outbound(partner, known_hosts=str(changed))).code == ErrorCode.HOST_KEY_MISMATCH
    assert partner.waiting() == 1 and partner.delivered() == {}


def test_fingerprint_pin(partner: SftpHarness, server: SshServer) -> None:
    right = fingerprint(server.host_key.with_suffix(".pub"))
    assert right.startswith("SHA256:")
    out = outbound(partner, known_hosts=None, host_key_fingerprint=right)
    out.deliver("ok.xml", b"<ok/>")
    assert partner.delivered() == {"ok.xml": b"<ok/>"}
    wrong = fingerprint(server.other_host_key.with_suffix(".pub"))
    error = refused(outbound(partner, known_hosts=None, host_key_fingerprint=wrong))
    assert error.code == ErrorCode.HOST_KEY_MISMATCH and right in error.message


# --- authentication -------------------------------------------------------------------------


def test_password_from_environment(partner: SftpHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDI_TEST_SFTP_PASSWORD", PASSWORD)
    by_password = {"private_key": None, "password": {"env": "EDI_TEST_SFTP_PASSWORD"}}
    partner.send("po.xml", b"<Order/>")
    [envelope] = inbound(partner, **by_password).poll()
    assert envelope.payload == b"<Order/>"
    monkeypatch.setenv("EDI_TEST_SFTP_PASSWORD", "wrong")
    error = refused(outbound(partner, **by_password))
    assert error.code == ErrorCode.AUTH_FAILED
    assert "EDI_TEST_SFTP_PASSWORD" in error.message and "wrong" not in error.message


def test_key_from_file_and_from_environment(
    partner: SftpHarness, server: SshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbound(partner).deliver("by-file.xml", b"<a/>")  # the harness's entry: {file: PATH}
    monkeypatch.setenv("EDI_TEST_SFTP_KEY", server.client_key.read_text())
    outbound(partner, private_key={"env": "EDI_TEST_SFTP_KEY"}).deliver("by-env.xml", b"<b/>")
    assert partner.delivered() == {"by-file.xml": b"<a/>", "by-env.xml": b"<b/>"}
    monkeypatch.setenv("EDI_TEST_SFTP_KEY", server.stranger_key.read_text())
    error = refused(outbound(partner, private_key={"env": "EDI_TEST_SFTP_KEY"}))
    assert error.code == ErrorCode.AUTH_FAILED


def test_missing_secret_is_a_configuration_error(partner: SftpHarness) -> None:
    error = refused(outbound(partner, private_key={"env": "EDI_TEST_SFTP_NOT_SET"}))
    assert error.code == ErrorCode.CONFIG_INVALID and "EDI_TEST_SFTP_NOT_SET" in error.message


# --- what is taken --------------------------------------------------------------------------


def test_partial_and_hidden_files_are_not_taken(partner: SftpHarness) -> None:
    for name in ("a.xml.part", ".b.xml", "c.xml.tmp", "d.txt", "e.xml"):
        partner.send(name, name.encode())
    taken = [e.filename for e in inbound(partner).poll()]
    assert taken == ["e.xml"]
    assert set(partner.files("inbox")) == {"a.xml.part", ".b.xml", "c.xml.tmp", "d.txt"}


def test_a_name_that_is_not_utf8_blocks_nothing(partner: SftpHarness) -> None:
    (partner.inbox / os.fsdecode(b"caf\xe9.xml")).write_bytes(b"<latin/>")
    partner.send("plain.xml", b"<plain/>")
    transport = inbound(partner)
    taken = {e.filename: e for e in transport.poll()}
    assert set(taken) == {"caf\ufffd.xml", "plain.xml"}
    for envelope in taken.values():
        transport.ack(envelope, ok=True)
    assert sorted(partner.files("archive").values()) == [b"<latin/>", b"<plain/>"]


def test_a_growing_file_is_not_taken(partner: SftpHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    transport = inbound(partner, stable_seconds=0.5)
    growing = partner.inbox / "big.xml"
    partner.send("big.xml", b"<Order>")

    def keep_writing() -> None:
        for _ in range(6):
            time.sleep(0.15)
            with growing.open("ab") as stream:
                stream.write(b"<line/>")

    writer = threading.Thread(target=keep_writing)
    writer.start()
    assert list(transport.poll()) == []  # two looks 0.5 s apart saw different sizes
    writer.join()
    assert "big.xml" in partner.files("inbox")
    slept: list[float] = []
    monkeypatch.setattr(transport, "_sleep", slept.append)
    assert list(transport.poll()) == []  # changed since the last look: not yet
    assert slept == []  # a later poll never waits (the daemon holds its lock meanwhile)
    time.sleep(0.6)
    [envelope] = transport.poll()  # kept still since the last poll, 0.6 s ago
    assert envelope.payload == b"<Order>" + b"<line/>" * 6


def test_oversize_file_is_not_downloaded(partner: SftpHarness) -> None:
    payload = b"<Order>" + b"x" * 5000 + b"</Order>"
    partner.send("huge.xml", payload)
    transport = inbound(partner, max_bytes=1000)
    [envelope] = transport.poll()
    assert envelope.oversize == len(payload) and envelope.payload == b""
    assert envelope.meta["sha256"] == hashlib.sha256(payload).hexdigest()
    transport.ack(envelope, ok=False)
    assert list(partner.files("error").values()) == [payload]


def test_oversize_file_is_kept_even_with_delete(partner: SftpHarness) -> None:
    """Intake stores no bytes of an oversize file and says the connector keeps it: with
    ``delete: true`` and no error folder, ``ack(ok=False)`` must not delete it (nothing else
    holds those bytes), and it must not be offered again by ``recover``."""
    payload = b"<Order>" + b"x" * 5000 + b"</Order>"
    partner.send("huge.xml", payload)
    transport = inbound(partner, max_bytes=1000, archive=None, delete=True, error=None)
    [envelope] = transport.poll()
    assert envelope.oversize == len(payload)
    transport.ack(envelope, ok=False)
    kept = [p for p in partner.server.data.rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in kept] == [payload]
    assert envelope.meta["kept_at"].endswith(str(kept[0].relative_to(partner.server.root)))
    assert list(transport.recover()) == [] and list(transport.poll()) == []
    transport.ack(envelope, ok=False)  # a second ack does nothing
    assert [p for p in partner.server.data.rglob("*") if p.is_file()] == kept


# --- after intake: archive, error, delete, recover -------------------------------------------


def test_archive_and_error_only_on_ack(partner: SftpHarness) -> None:
    partner.send("good.xml", b"<good/>")
    partner.send("bad.xml", b"<bad/>")
    transport = inbound(partner)
    envelopes = {e.filename: e for e in transport.poll()}
    assert set(envelopes) == {"good.xml", "bad.xml"}
    assert partner.files("archive") == {} and partner.waiting() == 2  # claimed, not yet acked
    good, bad = envelopes["good.xml"], envelopes["bad.xml"]
    assert good.source == "sftp:from-partner"
    assert good.source_ref.startswith("/data/inbox/.claimed/from-partner--")
    transport.ack(good, ok=True)
    transport.ack(bad, ok=False)
    transport.ack(good, ok=True)  # a second ack does nothing
    assert list(partner.files("archive").values()) == [b"<good/>"]
    assert list(partner.files("error").values()) == [b"<bad/>"]
    assert partner.waiting() == 0


def test_delete_after_ack(partner: SftpHarness) -> None:
    partner.send("one.xml", b"<one/>")
    partner.send("two.xml", b"<two/>")
    transport = inbound(partner, archive=None, delete=True, error=None)
    for envelope in transport.poll():
        transport.ack(envelope, ok=envelope.filename == "one.xml")
    assert partner.waiting() == 0 and partner.files("archive") == {}
    assert partner.files("error") == {}  # failed ones too: no error folder was given
    partner.send("three.xml", b"<three/>")
    transport = inbound(partner, archive=None, delete=True, error="/data/error")
    [envelope] = transport.poll()
    transport.ack(envelope, ok=False)
    assert list(partner.files("error").values()) == [b"<three/>"]


def test_recover_after_a_crash_between_claim_and_ack(partner: SftpHarness) -> None:
    partner.send("po.xml", b"<Order/>")
    crashed = inbound(partner)
    [first] = crashed.poll()
    crashed.close()  # the process died before ack
    del crashed
    assert list(inbound(partner, claim_tag="other-gateway").recover()) == []
    again = inbound(partner)
    assert list(again.poll()) == []  # claimed files are not polled again ...
    [second] = again.recover()  # ... but recovered, under the same source_ref
    assert (second.source_ref, second.payload) == (first.source_ref, b"<Order/>")
    again.ack(second, ok=True)
    assert list(again.recover()) == [] and partner.waiting() == 0


# --- outbound and reconnect -----------------------------------------------------------------


def test_upload_is_atomic_idempotent_and_never_overwrites(partner: SftpHarness) -> None:
    out = outbound(partner)
    assert out.deliver("inv.xml", b"<one/>") == "/data/outbox/inv.xml"
    assert out.deliver("inv.xml", b"<one/>") == "/data/outbox/inv.xml"
    assert out.deliver("inv.xml", b"<two/>") == "/data/outbox/inv-1.xml"
    assert out.deliver("inv.xml", b"<two/>") == "/data/outbox/inv-1.xml"
    assert partner.files("outbox") == {"inv.xml": b"<one/>", "inv-1.xml": b"<two/>"}
    hostile = out.deliver("../../../etc/passwd", b"<x/>")
    assert hostile.startswith("/data/outbox/") and "/" not in hostile[len("/data/outbox/") :]


def test_temporary_files_a_crash_left_are_removed_by_the_next_flush(
    partner: SftpHarness,
) -> None:
    """An upload killed between its temporary file and the rename leaves ``.<name>.<id>.tmp``;
    once nothing touched it for the stale time, the next transport's first delivery removes it.
    A fresh one (a live upload of another gateway) stays."""
    partner.outbox.mkdir(parents=True, exist_ok=True)
    stale = partner.outbox / ".inv.xml.0badc0de.tmp"
    fresh = partner.outbox / ".other.xml.12345678.tmp"
    foreign = partner.outbox / ".not-ours.tmp"
    for path in (stale, fresh, foreign):
        path.write_bytes(b"<half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(foreign, (old, old))
    out = outbound(partner)
    assert out.deliver("inv.xml", b"<one/>") == "/data/outbox/inv.xml"
    left = sorted(p.name for p in partner.outbox.iterdir())
    assert left == [".not-ours.tmp", ".other.xml.12345678.tmp", "inv.xml"]


def test_reconnects_after_a_server_restart(partner: SftpHarness) -> None:
    out, transport = outbound(partner), inbound(partner)
    out.deliver("before.xml", b"<a/>")
    partner.send("before.xml", b"<a/>")
    [envelope] = transport.poll()
    partner.restart()  # every open session is dropped
    out.deliver("after.xml", b"<b/>")  # the dead link is noticed and opened again
    transport.ack(envelope, ok=True)
    partner.send("after.xml", b"<b/>")
    assert [e.payload for e in transport.poll()] == [b"<b/>"]
    assert set(partner.delivered()) == {"before.xml", "after.xml"}


def test_unreachable_server_is_recoverable(partner: SftpHarness, server: SshServer) -> None:
    server.stop()
    try:
        with pytest.raises(TransportError) as caught:
            outbound(partner).deliver("x.xml", b"<x/>")
        assert caught.value.recoverable and caught.value.code == ErrorCode.CONNECTION_FAILED
    finally:
        server.start()
