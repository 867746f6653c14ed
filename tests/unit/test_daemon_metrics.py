"""The daemon's metrics are built only where ``/metrics`` is served (docs/adr/0043, section
"``run --once`` toward 1.1x ``ingest``"): ``run --once`` and a daemon without ``daemon.http``
count into a :class:`Tally` and never import prometheus_client, and still log every failed
message; a daemon serving ``/metrics`` counts every message, as before."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edi_gateway.app import Gateway
from edi_gateway.config import Settings, load_config
from edi_gateway.daemon import Daemon
from edi_gateway.daemon.metrics import Metrics, Tally, for_daemon
from tests import factory
from tests.servers import free_port


def _config(tmp_path: Path, http: str = "") -> Path:
    """A gateway.yaml with the factory's parties and one inbound folder ``in``; ``http``: the
    ``daemon.http`` mapping, if any."""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "store: {url: 'sqlite:///gateway.db'}\n"
        "partners:\n"
        f"  - {{id: buyer, name: B, role: buyer, endpoint: {{scheme: '0088', "
        f"value: '{factory.BUYER_GLN}'}}}}\n"
        f"  - {{id: seller, name: S, role: supplier, endpoint: {{scheme: '0088', "
        f"value: '{factory.SELLER_GLN}'}}}}\n"
        "connectors:\n  - {name: inbox, type: folder, direction: in, path: in}\n"
        + (f"daemon: {{http: {http}}}\n" if http else ""),
        encoding="utf-8",
    )
    return config


def _settings(tmp_path: Path, http: str = "") -> Settings:
    return load_config(_config(tmp_path, http))


def _inbox(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a-good.xml").write_bytes(factory.order("M-1"))
    (tmp_path / "in" / "b-bad.xml").write_bytes(b"not xml at all")


def test_prometheus_metrics_only_where_a_daemon_serves_them(tmp_path: Path) -> None:
    served = _settings(tmp_path, f"{{port: {free_port()}}}")
    plain = _settings(tmp_path)
    assert type(for_daemon(served, once=False)) is Metrics
    assert type(for_daemon(served, once=True)) is Tally  # --once serves no /metrics
    assert type(for_daemon(plain, once=False)) is Tally
    assert type(for_daemon(plain, once=True)) is Tally


def test_a_daemon_counting_into_a_tally_serves_prometheus_metrics_once_it_serves_http(
    tmp_path: Path,
) -> None:
    gateway = Gateway.open(_settings(tmp_path, f"{{port: {free_port()}}}"))
    try:
        daemon = Daemon(gateway, lambda s, o: None, threading.Event(), metrics=Tally())
        http = daemon._start_http()
        try:
            assert isinstance(daemon.metrics, Metrics)
            daemon.metrics.taken("inbox", "buyer", None)
            exposition = daemon.metrics.exposition()[0].decode()
            assert 'edi_messages_in_total{connector="inbox",partner="buyer"} 1.0' in exposition
        finally:
            http.close()
    finally:
        gateway.close()


def test_a_tally_daemon_logs_every_message_at_info_and_the_failed_ones_at_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _inbox(tmp_path)
    gateway = Gateway.open(_settings(tmp_path))
    try:
        daemon = Daemon(gateway, lambda s, o: None, threading.Event(), metrics=Tally())
        with caplog.at_level(logging.INFO, logger="edi_gateway.messages"):
            total = daemon.run(once=True)
    finally:
        gateway.close()
    assert sorted(total.states.values()) == ["failed", "processed"]
    lines = {r.getMessage(): r.levelno for r in caplog.records if r.name == "edi_gateway.messages"}
    assert len(lines) == 2
    processed = next(text for text in lines if "a-good.xml" in text)
    failed = next(text for text in lines if "b-bad.xml" in text)
    assert lines[processed] == logging.INFO and "Order M-1, processed" in processed
    assert lines[failed] == logging.WARNING and "failed: NOT_WELL_FORMED" in failed


def test_run_once_imports_no_prometheus_and_still_logs_the_failed_message(
    tmp_path: Path,
) -> None:
    """A real ``run --once`` (warnings only): the failed file is one warning line with its
    code, the processed one is silent, and prometheus_client is never imported."""
    _inbox(tmp_path)
    config = _config(tmp_path)
    code = (
        "import sys; from edi_gateway.cli import main; "
        "rc = main(['--config', sys.argv[1], 'run', '--once']); "
        "assert 'prometheus_client' not in sys.modules, 'prometheus_client imported'; "
        "sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    messages = [line for line in done.stderr.splitlines() if "edi_gateway.messages" in line]
    assert len(messages) == 1, done.stderr
    assert "b-bad.xml" in messages[0] and "failed: NOT_WELL_FORMED" in messages[0]
    assert "1 processed" in done.stdout and "1 failed" in done.stdout
