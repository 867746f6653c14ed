"""deploy/: the compose file, the sample gateway.yaml and the systemd unit hold together.

Docker cannot run here: the compose file is checked as data (services, volumes, healthchecks,
secrets kept out). The unit is parsed for the keys the daemon relies on, and checked with
``systemd-analyze verify`` when the machine has it.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from edi_gateway.config import load_config
from tests.servers import apt_install, unavailable

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return data


def test_compose_runs_the_gateway_with_postgres_rabbitmq_and_sftp() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"gateway", "postgres", "rabbitmq", "sftp"}
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
    declared = set(compose["volumes"])
    used = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith(".")
    }
    assert used == declared, "every named volume declared and used"

    gateway = services["gateway"]
    assert gateway["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / "Dockerfile").is_file()
    assert {dep: c["condition"] for dep, c in gateway["depends_on"].items()} == {
        "postgres": "service_healthy",
        "rabbitmq": "service_healthy",
        "sftp": "service_healthy",
    }
    assert gateway["stop_signal"] == "SIGTERM" and gateway["stop_grace_period"]
    assert "/healthz" in " ".join(gateway["healthcheck"]["test"])
    assert "./gateway.yaml:/etc/edi-gateway/gateway.yaml:ro" in gateway["volumes"]
    assert gateway["ports"] == ["127.0.0.1:9464:9464"]
    # secrets come from an env file, never from the compose file itself
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert not re.search(r"PASSWORD\s*:", text), "a password written in compose.yaml"
    assert "gateway.env" in gateway["env_file"]


def test_the_compose_gateway_yaml_is_valid_and_serves_health_on_the_published_port() -> None:
    settings = load_config(DEPLOY / "gateway.yaml")
    http = settings.daemon.http
    assert http is not None and http.host == "0.0.0.0" and http.port == 9464
    assert settings.daemon.log_format == "json"
    assert settings.store.url.startswith("postgresql+psycopg://edi@postgres")
    assert ":" not in settings.store.url.split("//", 1)[1].split("@")[0], "no password in URL"
    kinds = {c.type for c in settings.connectors}
    assert {"sftp", "amqp"} <= kinds
    assert any(c.cron for c in settings.connectors)
    env_names = set(re.findall(r"^([A-Z_]+)=", (DEPLOY / "gateway.env.example").read_text(), re.M))
    referenced = set(re.findall(r"env: ([A-Z_]+)", (DEPLOY / "gateway.yaml").read_text()))
    assert referenced <= env_names, "every {env: NAME} of gateway.yaml is in gateway.env.example"


def test_dockerfile_installs_the_project_and_runs_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install '.[postgres]'" in text
    assert re.search(r"^USER edi$", text, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert 'ENTRYPOINT ["edi-gateway"]' in text


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "edi-gateway.service", encoding="utf-8")
    return parser


def test_systemd_unit_stops_gracefully_restarts_on_failure_and_is_hardened() -> None:
    unit = _unit()
    service = unit["Service"]
    expected = {
        "Type": "simple",
        "KillSignal": "SIGTERM",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/edi-gateway",
        "EnvironmentFile": "/etc/edi-gateway/edi-gateway.env",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert int(service["TimeoutStopSec"]) >= 30
    assert service["ExecStart"].endswith("edi-gateway run")
    assert service["User"] != "root"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        apt_install("systemd")
        analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable(
            "systemd-analyze is missing and could not be installed (apt-get install systemd)"
        )
        return
    exe = Path(sys.executable).with_name("edi-gateway")
    text = (DEPLOY / "edi-gateway.service").read_text(encoding="utf-8")
    unit = tmp_path / "edi-gateway.service"
    unit.write_text(text.replace("/opt/edi-gateway/venv/bin/edi-gateway", str(exe)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
