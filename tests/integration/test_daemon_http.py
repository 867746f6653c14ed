"""`edi-gateway run` as an operator runs it: /healthz and /metrics scraped over real HTTP while
files arrive, JSON log lines with the message ID, SIGTERM ends it with exit 0."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests import factory
from tests.integration.conftest import Project, metric_samples, start_daemon, stop_daemon

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _wait_for(condition: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found = condition()
        except (OSError, ValueError):
            found = None
        if found:
            return found
        time.sleep(0.1)
    return condition()


def test_daemon_serves_health_and_metrics_and_logs_json(
    make_project: Callable[..., Project],
) -> None:
    project = make_project(batch_size=5)
    port = _free_port()
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    inbox = data["connectors"][0]
    inbox["every_seconds"] = 0.2
    # a second inbound connector whose folder is a file: it fails and backs off alone
    data["connectors"].append(
        {"name": "broken", "type": "folder", "direction": "in", "path": "not-a-folder"}
    )
    (project.root / "not-a-folder").write_text("oops")
    data["daemon"] = {
        "http": {"host": "127.0.0.1", "port": port},
        "log_format": "json",
        "backoff": {"initial_seconds": 1, "max_seconds": 2},
    }
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    base = f"http://127.0.0.1:{port}"
    daemon = start_daemon(project)
    try:
        assert _wait_for(lambda: _get(f"{base}/healthz")[0] == 200, 30), "no health endpoint"
        for n in range(3):
            project.drop(f"order-{n}.xml", factory.order(f"H-{n}"))
        project.drop("broken.xml", b"<Order")

        def counted() -> dict[str, float] | None:
            samples = metric_samples(_get(f"{base}/metrics")[2])
            taken = sum(v for k, v in samples.items() if k.startswith("edi_messages_in_total"))
            return samples if taken >= 4 else None

        samples = _wait_for(counted, 30)
        assert samples, "the messages were not counted"
        status, content_type, body = _get(f"{base}/healthz")
        health = json.loads(body)
        status404 = _get(f"{base}/nothing")[0]
    finally:
        out, err = stop_daemon(daemon)
    assert daemon.returncode == 0, err[-3000:]

    assert samples['edi_messages_in_total{connector="inbox",partner="buyer"}'] == 3
    assert samples['edi_messages_in_total{connector="inbox",partner="unknown"}'] == 1
    failed = 'edi_messages_failed_total{code="NOT_WELL_FORMED",connector="inbox",partner="unknown"}'
    assert samples[failed] == 1
    assert samples['edi_processing_seconds_count{connector="inbox"}'] >= 1
    assert samples['edi_connector_up{connector="inbox"}'] == 1
    assert samples['edi_connector_up{connector="broken"}'] == 0
    assert samples['edi_connector_backoff_seconds{connector="broken"}'] in (1, 2)
    assert samples["edi_outbox_pending"] == 0

    assert status == 200 and content_type == "application/json"
    assert health["status"] == "degraded" and health["store"]["reachable"] is True
    assert health["rules"]["checks"] == "off" and health["rules"]["release"] is None
    assert "no Peppol rule release installed" in health["rules"]["problem"]
    assert health["connectors"]["inbox"]["up"] is True
    assert health["connectors"]["inbox"]["messages_taken"] == 4
    assert health["connectors"]["inbox"]["schedule"] == "every 0.2 s"
    broken = health["connectors"]["broken"]
    assert broken["up"] is False and broken["consecutive_failures"] >= 1
    assert "does not exist" in broken["last_error"]["message"]
    assert broken["last_error"]["recoverable"] is True
    assert status404 == 404

    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    about_messages = [line for line in lines if "message_id" in line]
    assert {line["file_name"] for line in about_messages} == {
        "order-0.xml",
        "order-1.xml",
        "order-2.xml",
        "broken.xml",
    }
    for line in about_messages:
        assert {"time", "level", "logger", "message", "connector", "state"} <= line.keys()
        assert str(line["message_id"]) in line["message"]
    rules = [line for line in lines if line["message"].startswith("Peppol rules off")]
    assert rules and rules[0]["level"] == "warning"  # the start-up log says it plainly
    bad = next(line for line in about_messages if line["file_name"] == "broken.xml")
    assert bad["level"] == "warning" and bad["code"] == "NOT_WELL_FORMED"
    good = next(line for line in about_messages if line["file_name"] == "order-0.xml")
    assert good["partner"] == "buyer" and isinstance(good["order_id"], int)
    assert any(line.get("connector") == "broken" and line["level"] == "error" for line in lines)
    assert "Arrived:" in out
