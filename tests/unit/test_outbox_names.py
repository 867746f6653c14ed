"""Outbox file names never collide, also when several gateways queue the same name at once
(outbound/outbox.py ``enqueue``): on PostgreSQL their transactions overlap, so a name one of
them took a moment ago may still be uncommitted when another looks for a free one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from edi_gateway.config import Settings
from edi_gateway.outbound.outbox import Outgoing, enqueue
from edi_gateway.store.db import Store
from edi_gateway.store.schema import outbox
from tests.unit.support import at_once, make_settings

RACERS = 4


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def _queue_at_once(store: Store, settings: Settings, filename: str) -> list[int | str]:
    def one(n: int) -> int:
        item = Outgoing(
            partner="buyer",
            connector="to-buyer",
            kind="Invoice",
            doc_number=f"INV-{n}",
            payload=b"<Invoice/>",
            filename=filename,
        )
        with store.session() as session:
            return enqueue(session, item, settings)

    return at_once(one, RACERS)


def test_gateways_queuing_one_name_at_once_each_get_a_name_of_their_own(
    store: Store, settings: Settings
) -> None:
    for round_ in range(6):
        stem = f"Invoice-R{round_}"
        ids = _queue_at_once(store, settings, f"{stem}.xml")
        assert all(isinstance(i, int) for i in ids), ids
        with store.connect() as conn:
            names = conn.scalars(select(outbox.c.filename).where(outbox.c.id.in_(ids))).all()
        wanted = [f"{stem}.xml"] + [f"{stem}-{n}.xml" for n in range(2, RACERS + 1)]
        assert sorted(names) == sorted(wanted), names


QUEUE_ON_SQLITE = """\
import sys
from pathlib import Path

from edi_gateway.config import load_config
from edi_gateway.outbound.outbox import Outgoing, enqueue
from edi_gateway.store.db import open_store

store = open_store(sys.argv[1])
with store.session() as session:
    item = Outgoing(partner="b", connector="c", kind="Invoice", doc_number="1", payload=b"<x/>")
    enqueue(session, item, load_config(Path(sys.argv[2])))
print(sorted(m for m in sys.modules if m.startswith("sqlalchemy.dialects.postgresql")))
"""


def test_queuing_on_sqlite_imports_no_postgresql_dialect(tmp_path: Path) -> None:
    """The ``ON CONFLICT`` insert is built with the store's dialect only: PostgreSQL's, with
    its drivers, costs a SQLite gateway ~40 ms of every run that queues."""
    config = tmp_path / "gateway.yaml"
    config.write_text("store:\n  url: sqlite:///unused.db\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'g.db'}"
    done = subprocess.run(
        [sys.executable, "-c", QUEUE_ON_SQLITE, url, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
