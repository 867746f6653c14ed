"""The cache of validated configs (config/cache.py, docs/adr/0041): used only when it is
exactly what validating now would give; anything it depends on changing means validating again.

Each test works on the starter project (``edi-gateway init``), whose config names layouts on
disk, with its own cache folder (``XDG_CACHE_HOME``).
"""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from edi_gateway.config import Settings, load_config
from edi_gateway.config import cache as config_cache
from edi_gateway.config.load import _validated, check_config
from edi_gateway.config.yamlsafe import read_yaml
from edi_gateway.errors import ConfigError
from edi_gateway.starter import init_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The starter's gateway.yaml, with a cache folder of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    init_project(tmp_path / "gw")
    return tmp_path / "gw" / "gateway.yaml"


def fresh(path: Path) -> Settings:
    """What validating the file gives, never from the cache."""
    return _validated(path, read_yaml(path))


def cache_file(path: Path) -> Path:
    return config_cache._where(path.absolute())


def hits(path: Path, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether ``load_config`` takes the settings from the cache (validation is not run)."""
    ran: list[Path] = []
    import edi_gateway.config.load as load

    original = load._validated

    def counting(p: Path, data: object) -> Settings:
        ran.append(p)
        return original(p, data)

    monkeypatch.setattr(load, "_validated", counting)
    try:
        load_config(path)
    finally:
        monkeypatch.setattr(load, "_validated", original)
    return not ran


def test_a_second_load_is_a_hit_and_gives_the_same_settings(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_config(project)
    mode = stat.S_IMODE(cache_file(project).stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_IMODE(cache_file(project).parent.stat().st_mode) == 0o700
    assert hits(project, monkeypatch)
    again = load_config(project)
    assert again == first == fresh(project)
    assert again.partners[2].forward is not None
    assert again.partners[2].forward.formats == ["layout:inkop"]


def test_a_changed_config_is_validated_again(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_config(project)
    text = project.read_text(encoding="utf-8")
    project.write_text(text.replace("batch_size: 200", "batch_size: 300"), encoding="utf-8")
    assert not hits(project, monkeypatch)  # (and cached again: the next one hits)
    assert load_config(project).intake.batch_size == 300
    project.write_text(text.replace("batch_size: 200", "batch_size: 0"), encoding="utf-8")
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(project)


def test_a_changed_layout_file_is_validated_again(project: Path) -> None:
    """The column map the config names is read while validating: breaking it afterwards
    fails the next load exactly as without a cache."""
    load_config(project)
    columns = project.parent / "mappings" / "nordisk" / "inkop.columns.yaml"
    columns.write_text(
        columns.read_text(encoding="utf-8").replace("line.item_name", "line.no_such_field"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="no_such_field") as caught:
        load_config(project)
    with pytest.raises(ConfigError) as uncached:
        fresh(project)
    assert caught.value.message == uncached.value.message


def test_a_second_layout_beside_the_first_is_seen(project: Path) -> None:
    """A folder listed while validating is compared too: another file named like the layout
    makes it ambiguous, which validation refuses."""
    load_config(project)
    (project.parent / "mappings" / "nordisk" / "inkop.csv.j2").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="more than one layout"):
        load_config(project)


def test_a_changed_home_is_validated_again(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~`` in a path is ``$HOME``: the cached settings hold the expanded path, so another
    ``$HOME`` validates again."""
    text = project.read_text(encoding="utf-8")
    project.write_text(text + "\nrules:\n  dir: ~/rules\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(tmp_path / "one"))
    assert load_config(project).rules.dir == tmp_path / "one" / "rules"
    monkeypatch.setenv("HOME", str(tmp_path / "two"))
    assert not hits(project, monkeypatch)
    assert load_config(project).rules.dir == tmp_path / "two" / "rules"


def test_a_moved_symlink_is_resolved_again(project: Path, tmp_path: Path) -> None:
    """A relative folder is resolved (symlinks followed) while validating: pointing the link
    elsewhere gives the new target, not the cached one."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    link = project.parent / "outbox-link"
    link.symlink_to(tmp_path / "a")
    text = project.read_text(encoding="utf-8")
    project.write_text(text + "\nrules:\n  dir: outbox-link\n", encoding="utf-8")
    assert load_config(project).rules.dir == tmp_path / "a"
    link.unlink()
    link.symlink_to(tmp_path / "b")
    assert load_config(project).rules.dir == tmp_path / "b"


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"not a pickle at all",
        pickle.dumps({"key": "another version's"}),
        pickle.dumps(["a", "list"]),
    ],
    ids=["empty", "garbage", "foreign-key", "not-a-dict"],
)
def test_a_corrupt_cache_is_ignored(
    project: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes
) -> None:
    first = load_config(project)
    cache_file(project).write_bytes(damage)
    assert not hits(project, monkeypatch)
    assert load_config(project) == first  # validated, and cached again
    assert hits(project, monkeypatch)


def test_a_truncated_cache_is_ignored(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_config(project)
    data = cache_file(project).read_bytes()
    cache_file(project).write_bytes(data[: len(data) // 2])
    assert not hits(project, monkeypatch)


def test_a_cache_others_can_write_is_not_trusted(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_config(project)
    cache_file(project).chmod(0o666)
    assert not hits(project, monkeypatch)
    assert stat.S_IMODE(cache_file(project).stat().st_mode) == 0o600  # written afresh


def test_a_bad_config_is_never_cached(project: Path) -> None:
    cache_file(project).unlink(missing_ok=True)  # `init` checked the starter config it wrote
    project.write_text("store:\n  url: mysql://x\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(ConfigError, match="expected sqlite"):
            load_config(project)
    assert not cache_file(project).exists()


def test_a_config_check_that_passes_fills_the_cache_and_one_that_fails_does_not(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``config check`` (edit, check, run) leaves the settings cached, so the next command
    starts without validating again; a config with problems leaves nothing."""
    text = project.read_text(encoding="utf-8")
    project.write_text(text + "daemon:\n  lease_seconds: 45\n", encoding="utf-8")
    raw = project.read_bytes()
    assert config_cache.cached_store(project, raw) is None  # changed: never validated
    assert check_config(project) == []
    at = config_cache.cached_store(project, raw)
    assert at == config_cache.StoreAt(fresh(project).store.url, 45)
    assert hits(project, monkeypatch)
    assert load_config(project) == fresh(project)
    cache_file(project).unlink()
    project.write_text("store:\n  url: mysql://x\n", encoding="utf-8")
    assert check_config(project) and not cache_file(project).exists()


def test_an_unwritable_cache_folder_costs_only_time(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "blocked").write_text("a file where the folder would be", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    assert load_config(project) == fresh(project)
    assert not hits(project, monkeypatch)


def test_old_cache_files_are_pruned(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_cache, "KEEP", 3)
    for n in range(5):
        copy = project.with_name(f"gateway{n}.yaml")
        copy.write_text(project.read_text(encoding="utf-8"), encoding="utf-8")
        load_config(copy)
    assert len(os.listdir(cache_file(project).parent)) == 3


def test_a_validation_that_wrote_a_file_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a validation wrote could matter to the next: such a config is validated each time
    (none does today; the recorder sees it if one ever does)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = tmp_path / "gateway.yaml"
    with config_cache.recording() as reads:
        (tmp_path / "written").write_text("x", encoding="utf-8")
    assert reads.wrote
    config_cache.remember(config, b"text", reads, {"settings": 1})
    assert not config_cache._where(config).exists()
    with config_cache.recording() as reads:
        (tmp_path / "written").read_text(encoding="utf-8")
    assert not reads.wrote and str(tmp_path / "written") in reads.files


def test_only_the_validating_thread_is_recorded(tmp_path: Path) -> None:
    """Two threads validating at once (the console and a reload) each record their own reads."""
    import threading

    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.write_text("m", encoding="utf-8")
    theirs.write_text("t", encoding="utf-8")
    seen: dict[str, set[str]] = {}

    def other() -> None:
        with config_cache.recording() as reads:
            theirs.read_text(encoding="utf-8")
        seen["other"] = reads.files

    with config_cache.recording() as reads:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        mine.read_text(encoding="utf-8")
    assert reads.files == {str(mine)}
    assert seen["other"] == {str(theirs)}


def test_where_the_store_is_comes_from_the_cache_without_the_models(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only command opens the store from the cache entry alone (cli/common.py): its
    URL is the one validating gave (the SQLite path resolved), its lease the daemon's."""
    text = project.read_text(encoding="utf-8")
    project.write_text(text + "daemon:\n  lease_seconds: 45\n", encoding="utf-8")
    raw = project.read_bytes()
    assert config_cache.cached_store(project, raw) is None  # never validated
    settings = load_config(project)
    at = config_cache.cached_store(project, raw)
    assert at == config_cache.StoreAt(settings.store.url, 45)
    assert at.url == f"sqlite:///{project.parent.resolve() / 'gateway.db'}"
    project.write_text(text, encoding="utf-8")  # changed since: not known for certain
    assert config_cache.cached_store(project, project.read_bytes()) is None


def test_a_store_with_a_password_is_never_taken_from_the_cache(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password is read when the store is opened, so a read-only command loads the
    settings as usual; nothing of the secret is written into the cache."""
    monkeypatch.setenv("PGPASS_FOR_TEST", "s3cret-value")
    text = project.read_text(encoding="utf-8").replace(
        "  url: sqlite:///gateway.db",
        "  url: postgresql+psycopg://edi@db.example/edi\n  password: {env: PGPASS_FOR_TEST}",
    )
    project.write_text(text, encoding="utf-8")
    settings = load_config(project)
    assert settings.store.password is not None
    assert hits(project, monkeypatch)
    assert config_cache.cached_store(project, project.read_bytes()) is None
    assert b"s3cret-value" not in cache_file(project).read_bytes()


def test_a_corrupt_settings_pickle_in_a_sound_entry_is_validated_again(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_config(project)
    with cache_file(project).open("rb") as handle:
        entry = pickle.load(handle)
    entry["settings"] = b"not a pickle"
    cache_file(project).write_bytes(pickle.dumps(entry))
    assert config_cache.cached_store(project, project.read_bytes()) is not None
    assert not hits(project, monkeypatch)
    assert load_config(project) == first
