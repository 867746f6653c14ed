"""Helpers for the outbound tests: settings with an outbound folder, receiving documents; and
for the race tests, work started in several threads at once."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from edi_gateway.app import Gateway
from edi_gateway.config import Settings
from edi_gateway.envelope import Envelope
from edi_gateway.pipeline.intake import intake
from edi_gateway.pipeline.process import process_messages
from edi_gateway.store.queries import order_detail, resolve_order
from tests import factory as f

_refs = itertools.count()
T = TypeVar("T")


def make_settings(
    tmp_path: Path,
    auto: str = "none",
    out: Path | None = None,
    buyer: dict[str, Any] | None = None,
) -> Settings:
    """Settings with the factory's buyer (plus ``buyer``: more of its keys) and seller."""
    return Settings.model_validate(
        {
            "path": tmp_path / "gateway.yaml",
            "partners": [
                f.buyer_partner(outbound="to-buyer", auto_response=auto, **(buyer or {})),
                f.seller_partner(),
            ],
            "connectors": [
                {
                    "name": "to-buyer",
                    "type": "folder",
                    "direction": "out",
                    "path": str(out or tmp_path / "out"),
                },
            ],
        },
        context={"base_dir": tmp_path},
    )


def receive(gateway: Gateway, payload: bytes) -> int:
    env = Envelope(payload=payload, source="t", source_ref=f"r{next(_refs)}", filename="x.xml")
    [mid] = intake(gateway.store, [env])
    process_messages(gateway.store, gateway.policy, [mid], react=gateway.react)
    return mid


def detail(gateway: Gateway, ref: str = "PO-1") -> dict[str, Any]:
    with gateway.store.session() as session:
        return order_detail(session, resolve_order(session, ref))


def at_once(run: Callable[[int], T], racers: int) -> list[T | str]:
    """``run(n)`` in ``racers`` threads started together; what each returned, or the
    exception it raised as ``Type: text`` (what the race did is the finding)."""
    start = threading.Barrier(racers)

    def one(n: int) -> T | str:
        start.wait()
        try:
            return run(n)
        except Exception as exc:  # noqa: BLE001 - counted by the test
            return f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(racers) as pool:
        return list(pool.map(one, range(racers)))
