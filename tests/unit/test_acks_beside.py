"""A folder's claims and acknowledgements run beside processing (``app._claimed_ahead``,
``app._Acks``, docs/adr/0043).

While a batch is committed and processed, the next one is claimed and read on one thread and
the previous one moved to the archive on another. What must not change: a poll returns only
when every file it took is acknowledged; a batch is reported (``observe``) only once
acknowledged; an acknowledgement that fails is raised by the poll, and what it left claimed is
offered again and stored once; once ``stop`` says so nothing more is claimed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from edi_gateway.app import Gateway
from edi_gateway.envelope import Envelope
from edi_gateway.errors import ErrorCode
from edi_gateway.store.db import Store
from edi_gateway.store.schema import messages
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.claims import original_name
from edi_gateway.transports.folder import FolderInbound
from edi_gateway.transports.folder_spec import FolderConnector
from tests import factory as f
from tests.unit.support import make_settings


class Recording(FolderInbound):
    """A folder whose acknowledgements are slow and say which thread made them; ``fail``: the
    first one raises, as a full disk would."""

    def __init__(self, conn: FolderConnector, fail: bool = False) -> None:
        super().__init__(conn)
        self.acked: list[tuple[str, bool]] = []  # (file name, on the poll's own thread)
        self.claimed: list[tuple[str, bool]] = []
        self.fail = fail

    def _claim(self, name: str) -> tuple[str, str] | None:
        self.claimed.append((name, threading.current_thread() is threading.main_thread()))
        return super()._claim(name)

    def ack(self, envelope: Envelope, *, ok: bool) -> None:
        if self.fail:
            self.fail = False
            raise TransportError("disk full", recoverable=True, code=ErrorCode.SOURCE_UNREADABLE)
        time.sleep(0.02)  # slower than the next batch's claims: a poll must still wait for it
        super().ack(envelope, ok=ok)
        on_main = threading.current_thread() is threading.main_thread()
        self.acked.append((envelope.filename, on_main))


def gateway_with_inbox(store: Store, tmp_path: Path, files: int) -> tuple[Gateway, Path]:
    settings = make_settings(tmp_path)
    small = settings.intake.model_copy(update={"batch_size": 2})
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(1, files + 1):
        (inbox / f"PO-{n}.xml").write_bytes(f.order(f"PO-{n}", f.items(2)))
    return Gateway(settings.model_copy(update={"intake": small}), store), inbox


def connector(inbox: Path) -> FolderConnector:
    return FolderConnector(name="inbox", type="folder", direction="in", path=inbox)


def test_a_poll_returns_with_every_batch_acknowledged_and_reported_after_it(
    store: Store, tmp_path: Path
) -> None:
    gateway, inbox = gateway_with_inbox(store, tmp_path, files=5)
    transport = Recording(connector(inbox))
    reported: list[tuple[int, int]] = []  # (messages in the batch, files acknowledged by then)

    def observe(states: dict[int, str], seconds: float) -> None:
        reported.append((len(states), len(transport.acked)))

    outcome = gateway.poll(transport, observe=observe)

    assert sorted(name for name, _ in transport.acked) == [f"PO-{n}.xml" for n in range(1, 6)]
    assert not any(on_main for _, on_main in transport.acked)  # beside the poll
    claimed_on_main = [name for name, on_main in transport.claimed if on_main]
    assert claimed_on_main == ["PO-1.xml", "PO-2.xml"]  # the first batch; the others beside
    assert reported == [(2, 2), (2, 4), (1, 5)]
    archived = sorted(original_name(p.name) for p in (tmp_path / "archive" / "inbox").iterdir())
    assert archived == [f"PO-{n}.xml" for n in range(1, 6)]
    assert list(inbox.iterdir()) == [inbox / ".claimed"]
    assert list((inbox / ".claimed").iterdir()) == []
    assert sorted(outcome.states.values()) == ["processed"] * 5


def test_a_failed_acknowledgement_is_raised_and_what_it_left_is_stored_once(
    store: Store, tmp_path: Path
) -> None:
    gateway, inbox = gateway_with_inbox(store, tmp_path, files=4)
    reported: list[int] = []
    with pytest.raises(TransportError, match="disk full"):
        gateway.poll(
            Recording(connector(inbox), fail=True), observe=lambda s, _: reported.append(len(s))
        )
    assert reported == []  # the first batch was never acknowledged: nobody was told of it
    assert len(list((inbox / ".claimed").iterdir())) == 4  # nothing archived, nothing lost

    again = gateway.poll(FolderInbound(connector(inbox)))

    assert len(again.states) == 4
    assert len(list((tmp_path / "archive" / "inbox").iterdir())) == 4
    with store.connect() as conn:
        stored = conn.execute(select(messages.c.state, func.count()).group_by(messages.c.state))
        assert dict(stored.all()) == {"processed": 4}


def test_nothing_is_claimed_once_stop_says_so(store: Store, tmp_path: Path) -> None:
    gateway, inbox = gateway_with_inbox(store, tmp_path, files=6)
    transport = Recording(connector(inbox))
    asked: list[int] = []

    def stop() -> bool:  # no before the first batch, yes before the second is claimed
        asked.append(len(transport.claimed))
        return len(asked) > 1

    outcome = gateway.poll(transport, stop)

    assert asked == [0, 2]
    assert sorted(outcome.states.values()) == ["processed"] * 2
    assert sorted(p.name for p in inbox.glob("*.xml")) == [f"PO-{n}.xml" for n in range(3, 7)]
    assert list((inbox / ".claimed").iterdir()) == []


def test_a_stop_that_fails_is_raised_after_the_batch_in_hand(store: Store, tmp_path: Path) -> None:
    gateway, inbox = gateway_with_inbox(store, tmp_path, files=4)
    asked: list[int] = []

    def stop() -> bool:  # the daemon's lease renewal, its store gone on the second ask
        asked.append(1)
        if len(asked) > 1:
            raise ConnectionError("store gone")
        return False

    with pytest.raises(ConnectionError):
        gateway.poll(Recording(connector(inbox)), stop)

    archived = sorted(original_name(p.name) for p in (tmp_path / "archive" / "inbox").iterdir())
    assert archived == ["PO-1.xml", "PO-2.xml"]  # the batch in hand: processed, acknowledged
    assert sorted(p.name for p in inbox.glob("*.xml")) == ["PO-3.xml", "PO-4.xml"]
    assert list((inbox / ".claimed").iterdir()) == []
