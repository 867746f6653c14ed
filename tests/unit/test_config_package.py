"""``edi_gateway.config`` imports its names when first asked for (PEP 562): the package's light
modules (``locate``, ``cache``) come without pydantic, which a cached read-only command never
imports (tests/integration/test_startup.py checks that end to end)."""

from __future__ import annotations

import subprocess
import sys

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
    PyYAML's pure-Python parser): the pinned PyYAML wheel carries it, and a build without it
    would fail every config load, so it fails here first."""
    import yaml

    assert yaml.__with_libyaml__
    assert yaml.load("a: [1, 2]", Loader=yaml.CSafeLoader) == {"a": [1, 2]}
