"""`edi-gateway run` as a daemon: picks up files as they arrive, stops cleanly on SIGTERM;
`ingest` shows a progress bar on a terminal and nothing on a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import factory
from tests.integration.conftest import EXE, Project, cli_env, original_name, start_daemon

pytestmark = pytest.mark.integration


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _archived(project: Project) -> set[str]:
    folder = project.archive
    return {original_name(p.name) for p in folder.iterdir()} if folder.is_dir() else set()


def test_daemon_takes_new_files_and_stops_cleanly_on_sigterm(
    make_project: Callable[..., Project],
) -> None:
    project = make_project(batch_size=5)
    text = project.config.read_text(encoding="utf-8").replace(
        "every_seconds: 5", "every_seconds: 0.2"
    )
    project.config.write_text(text, encoding="utf-8")
    daemon = start_daemon(project)
    try:
        project.drop("first.xml", factory.order("D-1"))
        assert _wait_for(lambda: "first.xml" in _archived(project), 30), "first file not taken"
        for n in range(2, 40):  # arrives while the daemon runs
            project.drop(f"order-{n}.xml", factory.order(f"D-{n}"))
        assert _wait_for(lambda: len(_archived(project)) >= 3, 30)
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, err
    # the batch in hand was finished: nothing is left half-done in .claimed
    assert not [p for p in (project.inbox / ".claimed").iterdir()]
    states = {m["filename"]: m["state"] for m in project.messages()}
    assert all(state == "processed" for state in states.values()), states
    assert set(states) == _archived(project)
    # what it had not claimed yet is still waiting in the inbox for the next run
    waiting = {p.name for p in project.inbox.iterdir() if p.is_file()}
    assert waiting | set(states) == {"first.xml"} | {f"order-{n}.xml" for n in range(2, 40)}
    assert "Arrived:" in out


def _run_on_terminal(command: list[str], cwd: Path) -> str:
    """Run ``command`` with stderr on a pseudo-terminal; return what the terminal showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        command, cwd=cwd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    process.wait(timeout=60)
    os.close(master)
    return shown.decode("utf-8", "replace")


def test_ingest_shows_progress_on_a_terminal_and_stays_quiet_on_a_pipe(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    project = make_project(batch_size=10)
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(60):
        (folder / f"o{n:03d}.xml").write_bytes(factory.order(f"P-{n}"))
    shown = _run_on_terminal(
        [str(EXE), "--config", str(project.config), "ingest", str(folder)], project.root
    )
    assert "/60 [" in shown and "file/s" in shown, shown[-500:]
    piped = project.run("ingest", str(folder))  # the same files again: all duplicates
    assert piped.returncode == 0
    assert piped.stderr == ""
    assert "60 duplicates of earlier messages" in piped.stdout
