"""``edi_gateway.config`` imports its names when first asked for (PEP 562): the package's light
modules (``locate``, ``cache``) come without pydantic, which a cached read-only command never
imports (tests/integration/test_startup.py checks that end to end)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import edi_gateway.config as config


def test_every_exported_name_is_found_in_its_module() -> None:
    assert sorted(config.__all__) == sorted(config._HOME)
    for name in config.__all__:
        value = getattr(config, name)
        module = sys.modules[f"edi_gateway.config.{config._HOME[name]}"]
        assert value is getattr(module, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        config.NoSuchThing
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_the_light_modules_import_no_model() -> None:
    code = (
        "import sys\n"
        "import edi_gateway.config.cache, edi_gateway.config.locate\n"
        "print(sorted(m for m in ('pydantic', 'edi_gateway.config.models', 'yaml')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_yaml_is_read_by_libyaml() -> None:
    """gateway.yaml, column maps and reply maps are parsed by libyaml (``CSafeLoader``, ~9x
    PyYAML's pure-Python parser): the pinned PyYAML wheel carries it (a build without it
    reads with the pure-Python loader, slower: the test below)."""
    import yaml

    from edi_gateway.config.yamlsafe import safe_loader

    assert yaml.__with_libyaml__
    assert safe_loader() is yaml.CSafeLoader
    assert yaml.load("a: [1, 2]", Loader=yaml.CSafeLoader) == {"a": [1, 2]}


def test_a_pyyaml_without_libyaml_still_reads_configs(tmp_path: Path) -> None:
    """PyYAML built from its source where libyaml is missing has no ``CSafeLoader``: naming it
    failed every config load (AttributeError). A process whose PyYAML cannot import its
    libyaml binding, as such an install, reads a config and refuses a key given twice."""
    (tmp_path / "gateway.yaml").write_text("store: {}\nintake: {}\n", encoding="utf-8")
    (tmp_path / "twice.yaml").write_text("intake: {}\nstore: {}\nintake: {}\n", "utf-8")
    code = (
        "import sys\n"
        "sys.modules['yaml._yaml'] = None\n"  # PyYAML's own fallback: no libyaml
        "import yaml\n"
        "from pathlib import Path\n"
        "from edi_gateway.config.yamlsafe import read_yaml\n"
        "from edi_gateway.errors import ConfigError\n"
        "print(yaml.__with_libyaml__, read_yaml(Path(sys.argv[1])))\n"
        "try:\n"
        "    read_yaml(Path(sys.argv[2]))\n"
        "except ConfigError as exc:\n"
        "    print(exc.message.split(': ', 1)[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, tmp_path / "gateway.yaml", tmp_path / "twice.yaml"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.splitlines() == [
        "False {'store': {}, 'intake': {}}",
        "YAML syntax error: key 'intake' given twice",
    ], done.stdout + done.stderr
