"""Where the store is, read from gateway.yaml alone (config/where.py, docs/adr/0041 amendment):
for every config it answers, the answer is what validating the whole config gives; for every
store setting the models refuse, it does not answer (the command then validates the whole
config, which reports the problem).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edi_gateway.cli import main
from edi_gateway.cli.common import _open_at, _store_at
from edi_gateway.config import load as load_module
from edi_gateway.config import load_config
from edi_gateway.config.cache import StoreAt, cached_store
from edi_gateway.config.validating import Validating
from edi_gateway.config.where import store_location
from edi_gateway.errors import ConfigError

REST = "intake: {unknown_partner: accept}\n"
"""The rest of a valid config."""

ANSWERED = {
    "no store": "",
    "the default": "store: {}\n",
    "a relative file": "store: {url: 'sqlite:///data/gw.db'}\n",
    "a relative file with options": "store: {url: 'sqlite:///gw.db?timeout=5'}\n",
    "an absolute file": "store: {url: 'sqlite:////var/lib/gw.db'}\n",
    "in memory": "store: {url: 'sqlite:///:memory:'}\n",
    "PostgreSQL": "store: {url: 'postgresql+psycopg://gw@db.example/gw'}\n",
    "a lease": "daemon: {lease_seconds: 45}\n",
    "a lease in fractions": "daemon: {lease_seconds: 7.5, log_format: json}\n",
    "the least lease": "daemon: {lease_seconds: 5}\n",
    "the greatest lease": "daemon: {lease_seconds: 600}\n",
}
REFUSED = {
    "another scheme": "store: {url: 'mysql://gw@db/gw'}\n",
    "a password in the URL": "store: {url: 'postgresql+psycopg://gw:s3cret@db/gw'}\n",
    "an unknown store key": "store: {url: 'sqlite:///gw.db', pool: 5}\n",
    "a store that is no mapping": "store: sqlite:///gw.db\n",
    "a store left empty": "store:\n",
    "a URL that is no text": "store: {url: 42}\n",
    "a lease too short": "daemon: {lease_seconds: 4}\n",
    "a lease too long": "daemon: {lease_seconds: 601}\n",
    "a lease that is a bool": "daemon: {lease_seconds: true}\n",
    "a lease that is not a number": "daemon: {lease_seconds: .nan}\n",
    "a daemon that is no mapping": "daemon: [lease_seconds]\n",
    "a key given twice": "store: {}\nstore: {}\n",
    "a path key": "path: /elsewhere\n",
}


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw" / "gateway.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.parametrize("text", list(ANSWERED.values()), ids=list(ANSWERED))
def test_the_store_read_alone_is_the_validated_one(tmp_path: Path, text: str) -> None:
    path = config(tmp_path, text + REST)
    settings = load_config(path)
    expected = StoreAt(settings.store.url, settings.daemon.lease_seconds)
    assert store_location(path, path.read_bytes()) == expected


@pytest.mark.parametrize("text", list(REFUSED.values()), ids=list(REFUSED))
def test_a_store_the_models_refuse_is_left_to_them(tmp_path: Path, text: str) -> None:
    path = config(tmp_path, text + REST)
    assert store_location(path, path.read_bytes()) is None
    with pytest.raises(ConfigError):
        load_config(path)


LEFT = {
    "a password reference": "store: {url: 'postgresql+psycopg://gw@db/gw', password: {env: DB}}\n",
    "a lease written as text": "daemon: {lease_seconds: '30'}\n",
}
"""Valid, but left to the settings: a secret is read when it is used, never here; a number
written as text is what the models' own coercion makes of it."""


@pytest.mark.parametrize("text", list(LEFT.values()), ids=list(LEFT))
def test_what_it_is_unsure_of_is_left_to_the_settings(tmp_path: Path, text: str) -> None:
    path = config(tmp_path, text + REST)
    assert store_location(path, path.read_bytes()) is None
    load_config(path)


def test_the_rest_of_the_config_is_not_read(tmp_path: Path) -> None:
    """A problem elsewhere does not hide where the store is: a read-only command still shows
    what the store holds (commands that use the settings report it)."""
    path = config(tmp_path, "store: {url: 'sqlite:///gw.db'}\npartners: [{id: Not A Slug}]\n")
    with pytest.raises(ConfigError, match="partners"):
        load_config(path)
    assert store_location(path, path.read_bytes()) == StoreAt(
        f"sqlite:///{(path.parent / 'gw.db').resolve()}", 30.0
    )


@pytest.mark.parametrize(
    "raw",
    [b"store: {url: [\n", b"", b"- a list\n", b"\xff\xfe"],
    ids=["syntax", "empty", "list", "not UTF-8"],
)
def test_a_file_that_is_no_yaml_is_left_to_validation(tmp_path: Path, raw: bytes) -> None:
    path = config(tmp_path, "")
    path.write_bytes(raw)
    assert store_location(path, path.read_bytes()) is None, raw
    with pytest.raises(ConfigError):
        load_config(path)


def test_the_child_refuses_as_validating_in_line_does(tmp_path: Path) -> None:
    path = config(tmp_path, "store: {}\nintake: {max_size_mb: lots}\n")
    with pytest.raises(ConfigError) as in_line:
        load_config(path)
    validating = Validating.start(path, path.read_bytes())
    assert validating is not None
    with pytest.raises(ConfigError) as forked:
        validating.verdict()
    assert forked.value.message == in_line.value.message
    assert "intake.max_size_mb" in forked.value.message


def test_the_child_caches_what_passes(tmp_path: Path) -> None:
    path = config(tmp_path, "store: {}\n" + REST)
    validating = Validating.start(path, path.read_bytes())
    assert validating is not None
    validating.verdict()
    assert cached_store(path, path.read_bytes()) == store_location(path, path.read_bytes())


@pytest.mark.parametrize("valid", [True, False], ids=["valid", "invalid"])
def test_a_child_gone_without_a_word_leaves_validating_to_the_caller(
    tmp_path: Path, valid: bool
) -> None:
    path = config(tmp_path, REST if valid else "not_a_key: 1\n")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child killed before its verdict
        os._exit(1)
    os.close(write_fd)
    gone = Validating(path, path.read_bytes(), pid, read_fd)
    if valid:
        gone.verdict()
    else:
        with pytest.raises(ConfigError, match="not_a_key"):
            gone.verdict()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped


def test_a_child_no_longer_wanted_is_stopped_and_reaped(tmp_path: Path) -> None:
    path = config(tmp_path, REST)
    validating = Validating.start(path, path.read_bytes())
    assert validating is not None
    validating.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(validating._pid, os.WNOHANG)


def test_a_config_saved_while_the_child_starts_is_judged_as_the_parent_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent reads where the store is from the bytes it read; the verdict must be on those
    bytes. Forced: an editor saves the config just before the fork (a good config naming another
    store). Before, the child judged the new bytes good and the parent opened, and made, the
    store of the old ones, which do not validate."""
    path = config(tmp_path, "store: {url: 'sqlite:///unchecked.db'}\nnot_a_key: 1\n")
    real = Validating.start.__func__  # type: ignore[attr-defined]

    def saved_then_started(cls: type[Validating], where: Path, *rest: Any) -> Any:
        where.write_text("store: {url: 'sqlite:///checked.db'}\n" + REST, encoding="utf-8")
        return real(cls, where, *rest)

    monkeypatch.setattr(Validating, "start", classmethod(saved_then_started))
    code = main(["--config", str(path), "orders", "list"])
    assert not (path.parent / "unchecked.db").exists()
    assert code == 2


def _slow_child(monkeypatch: pytest.MonkeyPatch) -> int:
    """``load_config`` in a forked child says on the returned pipe that it started, then takes
    its time (a big config): the parent is surely waiting for its verdict."""
    started, tell = os.pipe()
    real = load_module.load_config
    parent = os.getpid()

    def slow(where: Path, *rest: Any) -> Any:
        if os.getpid() != parent:
            os.write(tell, b"!")
            time.sleep(30)
        return real(where, *rest)

    monkeypatch.setattr(load_module, "load_config", slow)
    return started


def test_ctrl_c_while_the_child_validates_stops_and_reaps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (SIGINT to the command; the child ignores it) while the command waits for the
    child's verdict: the command stops, and so does the child, reaped (none left behind)."""
    import argparse

    path = config(tmp_path, REST)
    started = _slow_child(monkeypatch)
    at, validating = _store_at(argparse.Namespace(config=str(path)))
    assert at is not None and validating is not None
    try:
        os.read(started, 1)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            _open_at(at, validating)
        with pytest.raises(ChildProcessError):  # stopped and reaped
            os.waitpid(validating._pid, os.WNOHANG)
    finally:
        try:
            os.kill(validating._pid, signal.SIGKILL)
            os.waitpid(validating._pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_a_child_stopped_while_it_writes_the_cache_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:meth:`Validating.close` stops the child with SIGTERM whenever it is: forced at the
    worst moment, its cache entry written to a temporary file and not yet renamed. The cache
    folder keeps no temporary file (nothing prunes them); the caller validates in line."""
    path = config(tmp_path, REST)
    parent, real = os.getpid(), os.replace

    def stopped_first(src: Any, dst: Any) -> None:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)  # as close() does, at this moment
        real(src, dst)

    monkeypatch.setattr(os, "replace", stopped_first)
    validating = Validating.start(path, path.read_bytes())
    assert validating is not None
    validating.verdict()  # no word from the child: validated here, and cached
    monkeypatch.undo()
    folder = tmp_path / "cache" / "edi-gateway"
    assert [p.name for p in folder.iterdir() if not p.name.startswith("config-")] == []


@pytest.mark.parametrize("valid", [True, False], ids=["valid", "invalid"])
def test_a_fork_that_fails_leaves_validating_in_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], valid: bool
) -> None:
    """``fork`` fails when the user has as many processes as allowed (EAGAIN) or memory is
    short: the command validates in line, as where there is no fork, and refuses a config that
    does not validate, naming the key, before the store is made."""
    import errno

    path = config(tmp_path, "store: {url: 'sqlite:///made.db'}\n" + (REST if valid else "x: 1\n"))

    def no_more_processes() -> int:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_more_processes)
    code = main(["--config", str(path), "orders", "list"])
    assert code == (0 if valid else 2)
    assert (path.parent / "made.db").exists() is valid
    if not valid:
        assert "x: unknown key" in capsys.readouterr().err
