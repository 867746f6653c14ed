"""One daemon per SQLite store: a second `run` refuses to start in one line (exit 2) naming
the holder; CLI commands next to a running daemon wait for it and succeed; a daemon killed with
SIGKILL leaves no lock behind; several processes opening a new store at once create it once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests import factory
from tests.integration.conftest import EXE, Project, cli_env

pytestmark = pytest.mark.integration


def start_daemon(project: Project) -> subprocess.Popen[str]:
    with (project.root / "daemon.log").open("a") as log:
        return subprocess.Popen(
            [str(EXE), "--config", str(project.config), "run"],
            cwd=project.root,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )


def daemon_log(project: Project) -> str:
    return (project.root / "daemon.log").read_text()


def wait_for(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def holding(project: Project, daemon: subprocess.Popen[str]) -> bool:
    lock = project.root / "gateway.db.run.lock"
    assert daemon.poll() is None, daemon_log(project)
    try:
        return json.loads(lock.read_text() or "{}").get("pid") == daemon.pid
    except (FileNotFoundError, ValueError):
        return False


@pytest.fixture
def daemon(make_project: Callable[..., Project]) -> Iterator[tuple[Project, subprocess.Popen[str]]]:
    project = make_project()
    process = start_daemon(project)
    try:
        wait_for(lambda: holding(project, process))
        yield project, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_a_second_run_on_the_same_sqlite_store_refuses_in_one_line(
    daemon: tuple[Project, subprocess.Popen[str]],
) -> None:
    project, process = daemon
    for args in (("run", "--once"), ("run",)):
        second = project.run(*args, timeout=30)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("error: STORE_BUSY: another `edi-gateway run` holds this store")
        assert f"pid {process.pid} on host {os.uname().nodename} since " in lines[0]
    assert process.poll() is None  # the holder is untouched


def _processes_naming(path: Path) -> list[int]:
    """Processes whose command line names ``path`` (a read-ahead worker is a fork of its
    command, so it carries the command's line)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            line = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not a process
        if entry.name.isdigit() and os.fsencode(path) in line.split(b"\0"):
            found.append(int(entry.name))
    return found


def test_a_refused_run_once_leaves_its_inbox_alone_and_no_worker(
    make_project: Callable[..., Project],
) -> None:
    """``run --once`` starts its read-ahead worker before it takes the store (the worker only
    reads): refused, it stops the worker and has claimed nothing."""
    from edi_gateway.store.instance import hold_store

    project = make_project()
    names = [f"po-{n:02}.xml" for n in range(30)]  # enough files for a worker
    for name in names:
        project.drop(name, factory.order(name[:-4].upper(), factory.items(3)))
    lock = hold_store(f"sqlite:///{project.db}")
    try:
        refused = project.run("run", "--once", timeout=60)
    finally:
        lock.release()
    assert refused.returncode == 2, refused.stderr
    assert "STORE_BUSY" in refused.stderr
    assert sorted(p.name for p in project.inbox.iterdir() if p.is_file()) == names
    assert _processes_naming(project.config) == []
    done = project.run("run", "--once", timeout=120)
    assert done.returncode == 0, done.stderr
    assert not [p for p in project.inbox.iterdir() if p.is_file()]
    assert len(project.messages()) == len(names)


def test_cli_commands_next_to_a_running_daemon_succeed(
    daemon: tuple[Project, subprocess.Popen[str]], tmp_path: Path
) -> None:
    project, _ = daemon
    project.edit_config()
    files = tmp_path / "drop"
    files.mkdir()
    for n in range(20):
        (files / f"o{n}.xml").write_bytes(factory.order(f"PO-{n}", factory.items(3)))
        project.drop(f"i{n}.xml", factory.order(f"PO-IN-{n}", factory.items(3)))
    # the daemon polls its inbox (and writes) while ingest, list and note run next to it
    ingest = project.run("ingest", files, timeout=120)
    assert ingest.returncode == 0, ingest.stderr
    assert "Traceback" not in ingest.stderr
    listed = project.run("orders", "list", timeout=60)
    assert listed.returncode == 0, listed.stderr
    noted = project.run("orders", "note", "buyer:PO-3", "called the buyer", timeout=60)
    assert noted.returncode == 0, noted.stderr
    wait_for(
        lambda: (
            not any(project.inbox.glob("*.xml")) and not any((project.inbox / ".claimed").glob("*"))
        ),
        seconds=60,
    )
    rows = project.json("messages", "list")
    assert len(rows) == 40 and {r["state"] for r in rows} == {"processed"}


def test_a_daemon_killed_with_sigkill_leaves_no_lock(
    daemon: tuple[Project, subprocess.Popen[str]],
) -> None:
    project, process = daemon
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert (project.root / "gateway.db.run.lock").exists()  # the file stays; its lock does not
    again = project.run("run", "--once", timeout=60)
    assert again.returncode == 0, again.stderr


def test_processes_opening_a_new_store_at_once_create_it_once(
    make_project: Callable[..., Project], database_url: str
) -> None:
    project = make_project()
    data = yaml.safe_load(project.config.read_text())
    data["store"] = {"url": database_url if "postgresql" in database_url else "sqlite:///fresh.db"}
    project.config.write_text(yaml.safe_dump(data))
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: project.run("orders", "list", timeout=120), range(4)))
    assert [d.returncode for d in done] == [0, 0, 0, 0], [d.stderr for d in done]
    assert not any("Traceback" in d.stderr for d in done)


def test_an_unreachable_store_is_one_coded_line(make_project: Callable[..., Project]) -> None:
    project = make_project()
    data = yaml.safe_load(project.config.read_text())
    data["store"] = {"url": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    project.config.write_text(yaml.safe_dump(data))
    done = project.run("orders", "list", timeout=60)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: STORE_UNAVAILABLE: the store cannot be used:")
