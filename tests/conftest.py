"""Shared fixtures: a fresh store, a processing policy, the shared corpus location."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edi_gateway.pipeline.process import Policy
from edi_gateway.store.db import Store, open_store

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def shared_dir() -> Path:
    """../shared beside the project; a failure under CI, a skip elsewhere when absent."""
    if not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED} is missing: CI must have ../shared beside the project")
        pytest.skip("../shared is not beside this checkout")
    return SHARED


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'gateway.db'}")
    yield opened
    opened.close()


@pytest.fixture
def policy() -> Policy:
    return Policy(
        max_size=64 * 1024 * 1024, accept_unknown_partners=True, partner_of=lambda k: None
    )
