"""Real servers for tests, started on loopback in a temporary folder and stopped by PID.

Recipes: ../shared/RECIPES.md. A server that cannot be started fails the test under CI=true
(never a silent skip) and skips elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

PG_BIN_DIRS = [Path("/usr/lib/postgresql") / v / "bin" for v in ("17", "16", "15")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (under CI a missing server is a failure)")
    pytest.skip(reason)  # never under CI=true: that failed above


def _pg_bin() -> Path | None:
    for folder in PG_BIN_DIRS:
        if (folder / "pg_ctl").exists():
            return folder
    return None


def apt_install(*packages: str) -> None:
    """Install Debian packages a test server needs (as root, where apt-get exists).

    Failures are not raised here: the caller looks for what it needs afterwards and calls
    :func:`unavailable` (a failure under CI=true) when it is still missing.
    """
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=False,
        capture_output=True,
        env=env,
    )


def debian_command(name: str, package: str | None = None) -> str:
    """The path of command ``name``, from Debian ``package`` (default: the same name), which
    is installed with apt when the command is missing; a failure under CI=true without it."""
    found = shutil.which(name)
    if found is None:
        apt_install(package or name)
        found = shutil.which(name)
    if found is None:
        unavailable(f"the {name} command is missing (apt-get install {package or name})")
    return found


def postgresql_ctl(base: Path, url: str, action: str) -> None:
    """``stop`` (fast: sessions are cut) or ``start`` the server :func:`postgresql` runs in
    ``base`` at ``url`` (what it yielded)."""
    bin_dir, data = _pg_bin(), base / "data"
    assert bin_dir is not None
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w"]
    if action == "stop":
        pg_ctl += ["-m", "fast", "stop"]
    else:
        port = url.rsplit(":", 1)[1]
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg_ctl += ["-l", str(base / "log"), "-o", options, "start"]
    user = "postgres" if os.geteuid() == 0 else None
    subprocess.run(pg_ctl, check=True, capture_output=True, user=user)


@contextmanager
def postgresql(base: Path) -> Iterator[str]:
    """A private PostgreSQL server; yields its SQLAlchemy URL prefix (add a database name)."""
    if _pg_bin() is None:
        apt_install("postgresql")
    bin_dir = _pg_bin()
    if bin_dir is None:
        unavailable("PostgreSQL is not installed and could not be installed")
        raise AssertionError("unreachable")
    base.mkdir(parents=True, exist_ok=True)
    shutil.chown(base, user="postgres")
    data, port = base / "data", free_port()
    as_pg = {"user": "postgres"} if os.geteuid() == 0 else {}
    subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        **as_pg,  # type: ignore[arg-type]
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
        **as_pg,  # type: ignore[arg-type]
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
            **as_pg,  # type: ignore[arg-type]
        )
        deadline = time.monotonic() + 10
        while (data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
