"""Helpers for the end-to-end tests: the real ``edi-gateway`` console script in subprocesses.

Every test works in its own ``tmp_path`` project made by ``edi-gateway init``; its gateway.yaml
is then edited to add the parties of ``tests/factory.py`` and the intake settings a test needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

VENV_BIN = Path(sys.executable).parent
EXE = VENV_BIN / "edi-gateway"
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"

BUYER = "7300010000001"  # tests/factory.py BUYER_GLN
SELLER = "7310000000003"  # tests/factory.py SELLER_GLN
BUYER2 = "7300010000025"  # a second buyer, for ambiguous order numbers
FACTORY_PARTNERS: list[dict[str, Any]] = [
    {
        "id": "buyer",
        "name": "Buyer AB",
        "role": "buyer",
        "endpoint": {"scheme": "0088", "value": BUYER},
    },
    {
        "id": "buyer2",
        "name": "Second Buyer AB",
        "role": "buyer",
        "endpoint": {"scheme": "0088", "value": BUYER2},
    },
    {
        "id": "supplier",
        "name": "Seller BV",
        "role": "supplier",
        "endpoint": {"scheme": "0088", "value": SELLER},
    },
]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: UTF-8 I/O, no inherited config."""
    env = {k: v for k, v in os.environ.items() if k != "EDI_GATEWAY_CONFIG"}
    env.update(PYTHONUTF8="1", PYTHONIOENCODING="utf-8", **extra)
    return env


def cli(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``edi-gateway ARGS`` (``input`` on its stdin) and return the finished process
    (never raises on exit code)."""
    return subprocess.run(
        [str(EXE), *map(str, args)],
        input=input,
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


def cli_json(*args: str | Path, ok_codes: tuple[int, ...] = (0,), **kwargs: Any) -> Any:
    """Run a ``--json`` command and parse its stdout; fail the test on an unexpected exit."""
    done = cli(*args, "--json", **kwargs)
    assert done.returncode in ok_codes, (
        f"edi-gateway {' '.join(map(str, args))} --json exited {done.returncode}\n"
        f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
    )
    return json.loads(done.stdout)


@dataclass
class Project:
    """An ``edi-gateway init``-ed deployment in a temporary folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "gateway.yaml"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def error(self) -> Path:
        return self.root / "error"

    @property
    def db(self) -> Path:
        return self.root / "gateway.db"

    def run(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """``edi-gateway --config THIS ARGS``."""
        return cli("--config", self.config, *args, cwd=self.root, **kwargs)

    def json(self, *args: str | Path, **kwargs: Any) -> Any:
        """``edi-gateway --config THIS ARGS --json``, parsed."""
        return cli_json("--config", self.config, *args, cwd=self.root, **kwargs)

    def edit_config(self, **intake: Any) -> None:
        """Add the factory's partners and set intake options in gateway.yaml."""
        data = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        known = {p["id"] for p in data["partners"]}
        data["partners"] += [p for p in FACTORY_PARTNERS if p["id"] not in known]
        data.setdefault("intake", {}).update(intake)
        self.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def drop(self, name: str | bytes, payload: bytes) -> None:
        """Put a file in the inbox the way a well-behaved writer does: write, then rename."""
        raw_dir = os.fsencode(self.inbox)
        raw_name = name if isinstance(name, bytes) else os.fsencode(name)
        partial = os.path.join(raw_dir, b"." + raw_name[:200] + b".part")
        with open(partial, "wb") as handle:
            handle.write(payload)
        os.rename(partial, os.path.join(raw_dir, raw_name))

    def messages(self, *extra: str) -> list[dict[str, Any]]:
        """``messages list --json`` (every message, any state)."""
        rows: list[dict[str, Any]] = self.json("messages", "list", *extra)
        return rows


def original_name(claimed: str) -> str:
    """The original file name inside a claimed name ``<stamp>-<uuid>[@<instance>]--<original>``."""
    from edi_gateway.transports.claims import original_name as inside

    original = inside(claimed)
    assert original is not None, f"not a claimed name: {claimed!r}"
    return original


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    """Factory: ``edi-gateway init`` a project (optionally with samples), partners added."""
    counter = iter(range(1000))

    def make(samples: Path | None = None, **intake: Any) -> Project:
        root = tmp_path / f"project{next(counter)}"
        args: list[str | Path] = ["init", root]
        if samples is not None:
            args += ["--samples", samples]
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        project = Project(root)
        project.edit_config(**intake)
        return project

    return make


def metric_samples(metrics: str) -> dict[str, float]:
    """A Prometheus text exposition as ``{'name{labels}': value}``."""
    found = {}
    for line in metrics.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def start_daemon(project: Project) -> subprocess.Popen[str]:
    """``edi-gateway run`` on ``project``, its output captured (end it with :func:`stop_daemon`)."""
    return subprocess.Popen(
        [str(EXE), "--config", str(project.config), "run"],
        cwd=project.root,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_daemon(daemon: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM, then what it wrote (stdout, stderr); killed if it has not ended in 30 s."""
    import signal

    daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
