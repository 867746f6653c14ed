"""`edi-gateway init`: a starter deployment that loads and knows the samples' partners."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.config import load_config
from edi_gateway.errors import ConfigError
from edi_gateway.starter import bundled_samples, init_project

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"


def endpoints(path: Path) -> set[str]:
    root = etree.parse(str(path)).getroot()
    return {f"{e.get('schemeID')}:{e.text}" for e in root.iter(f"{{{CBC}}}EndpointID")}


def test_init_writes_a_config_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    created = init_project(target)
    assert target / "gateway.yaml" in created
    for name in ("inbox", "archive", "error", "outbox"):
        assert (target / name).is_dir() and target / name in created
    settings = load_config(target / "gateway.yaml")
    assert settings.store.url == f"sqlite:///{target / 'gateway.db'}"
    inbox, outbox = settings.connector("inbox"), settings.connector("outbox")
    assert (inbox.direction, inbox.path) == ("in", target / "inbox")
    assert (inbox.archive, inbox.error) == (target / "archive", target / "error")
    assert (outbox.direction, outbox.path) == ("out", target / "outbox")
    assert "# " in (target / "gateway.yaml").read_text(encoding="utf-8")  # commented


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "gateway.yaml").write_text("# mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists; refusing to overwrite"):
        init_project(tmp_path)
    assert (tmp_path / "gateway.yaml").read_text(encoding="utf-8") == "# mine\n"


def test_init_copies_samples_into_the_inbox(tmp_path: Path) -> None:
    created = init_project(tmp_path / "d", SAMPLES)
    copied = sorted(p.name for p in (tmp_path / "d" / "inbox").iterdir())
    assert copied == sorted(p.name for p in SAMPLES.glob("*.xml"))
    assert all(tmp_path / "d" / "inbox" / name in created for name in copied)


def test_init_with_missing_samples_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        init_project(tmp_path, tmp_path / "nope")
    assert not (tmp_path / "gateway.yaml").exists()


def test_bundled_samples_is_this_checkouts_folder() -> None:
    assert bundled_samples() == SAMPLES


def test_starter_partners_match_the_samples(tmp_path: Path) -> None:
    init_project(tmp_path)
    settings = load_config(tmp_path / "gateway.yaml")
    good = [p for p in SAMPLES.glob("*.xml") if not p.name.startswith("bad-")]
    assert len(good) >= 8
    for sample in good:
        for key in endpoints(sample):
            assert settings.partner_by_key([key]) is not None, f"{sample.name}: {key}"
    unknown = endpoints(SAMPLES / "bad-unknown-partner.xml")
    assert [k for k in unknown if settings.partner_by_key([k]) is None]
    buyers = {p.id for p in settings.partners if p.role == "buyer"}
    suppliers = {p.id for p in settings.partners if p.role == "supplier"}
    assert len(buyers) == len(suppliers) == 2


def test_the_commented_examples_are_valid_once_uncommented(tmp_path: Path) -> None:
    init_project(tmp_path / "deploy", None)
    config = tmp_path / "deploy" / "gateway.yaml"
    text = config.read_text(encoding="utf-8")
    text = re.sub(r"\n  # - name: ", "\n  - name: ", text)
    text = re.sub(r"\n  #   ", "\n    ", text)
    text = re.sub(r"\n# daemon:\n#   ", "\ndaemon:\n  ", text)
    text = re.sub(r"\n#   log_format", "\n  log_format", text)
    config.write_text(text, encoding="utf-8")
    settings = load_config(config)
    sftp = settings.connector("partner-sftp")
    assert sftp.type == "sftp" and sftp.cron == "*/5 * * * *"
    assert settings.daemon.http is not None and settings.daemon.log_format == "json"
