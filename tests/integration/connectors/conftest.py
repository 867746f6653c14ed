"""Fixtures of the connector contract suite: one harness per connector type.

Adding a connector type: write ``harness_<type>.py`` (a class satisfying ``harness.Harness``
that starts the real server), add a fixture ``<type>_harness`` below that yields it (module or
session scope: servers start once), and add ``"<type>"`` to ``KINDS`` (and to ``CREDENTIALS``
when the type has credentials a server can refuse). The suite in ``test_contract.py`` then runs
every test for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.connectors.harness import Harness
from tests.integration.connectors.harness_amqp import AmqpHarness, rabbitmq
from tests.integration.connectors.harness_as2 import As2Harness
from tests.integration.connectors.harness_email import mail_partner
from tests.integration.connectors.harness_folder import FolderHarness
from tests.integration.connectors.harness_http import HttpHarness
from tests.integration.connectors.harness_sftp import SftpHarness, sshd

KINDS = ["folder", "sftp", "amqp", "email", "as2", "http"]
"""Every connector type the contract suite runs for."""
CREDENTIALS = [kind for kind in KINDS if kind != "folder"]
"""Types whose server can refuse credentials."""


@pytest.fixture(scope="module")
def folder_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    yield FolderHarness(tmp_path_factory.mktemp("folder-partner"))


@pytest.fixture(scope="module")
def sftp_harness() -> Iterator[Harness]:
    with sshd() as server:
        yield SftpHarness(server)


@pytest.fixture(scope="module")
def amqp_harness() -> Iterator[Harness]:
    with rabbitmq() as node:
        partner = AmqpHarness(node)
        try:
            yield partner
        finally:
            partner.close()


@pytest.fixture(scope="module")
def email_harness() -> Iterator[Harness]:
    with mail_partner() as partner:
        yield partner


@pytest.fixture(scope="module")
def as2_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    partner = As2Harness(tmp_path_factory.mktemp("as2-partner"))
    try:
        yield partner
    finally:
        partner.close()


@pytest.fixture(scope="module")
def http_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    partner = HttpHarness(tmp_path_factory.mktemp("http-partner"))
    try:
        yield partner
    finally:
        partner.close()


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Harness:
    """The harness of each connector type in turn."""
    found: Harness = request.getfixturevalue(f"{request.param}_harness")
    return found


@pytest.fixture(params=CREDENTIALS)
def credentialed(request: pytest.FixtureRequest) -> Harness:
    """The harness of each type with credentials."""
    found: Harness = request.getfixturevalue(f"{request.param}_harness")
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
