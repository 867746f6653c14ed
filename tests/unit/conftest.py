"""Fixtures of the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from edi_gateway.app import Gateway
from edi_gateway.store.db import Store
from tests.unit.support import make_settings


@pytest.fixture
def gateway(store: Store, tmp_path: Path) -> Gateway:
    """A gateway on the ``store`` fixture whose buyer has an outbound folder ``tmp_path/out``."""
    (tmp_path / "out").mkdir()
    return Gateway(make_settings(tmp_path), store)
