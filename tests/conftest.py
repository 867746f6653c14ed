"""Shared fixtures: a fresh store (SQLite and PostgreSQL), a processing policy, the corpus."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from edi_gateway.pipeline.process import Policy
from edi_gateway.store.db import Store, open_store
from tests.servers import postgresql

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
_databases = itertools.count()


def shared_dir() -> Path:
    """../shared beside the project; a failure under CI, a skip elsewhere when absent."""
    if not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED} is missing: CI must have ../shared beside the project")
        pytest.skip("../shared is not beside this checkout")  # never under CI=true (above)
    return SHARED


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    # not under pytest's tmp folder: that is private to root, and the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="edi-gateway-pg-"))
    try:
        with postgresql(base) as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


def new_postgres_database(server: str) -> str:
    """A new, empty database on the session's PostgreSQL server; its URL."""
    name = f"t{os.getpid()}_{next(_databases)}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty database on each backend the product supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return new_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The URL of a new, empty PostgreSQL database."""
    return new_postgres_database(postgres_server)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A new store, schema created, on each backend the product supports."""
    opened = open_store(database_url)
    yield opened
    opened.close()


@pytest.fixture
def policy() -> Policy:
    return Policy(
        max_size=64 * 1024 * 1024, accept_unknown_partners=True, partner_of=lambda k: None
    )
