"""The safe YAML loader every config, column map and reply map is read with.

libyaml's parser (``yaml.CSafeLoader``) where PyYAML has it, as its wheels do: the pure-Python
one took most of validating a config (docs/adr/0041). PyYAML installed without libyaml (built
from its source where no wheel fits) has no ``CSafeLoader``: naming it there failed every
config load with an AttributeError, so such an install reads with the pure-Python loader,
the same safe constructor and resolver (the same values), only slower.

:func:`read_yaml` reads gateway.yaml with it: for validating the whole config
(:mod:`.load`) and for finding only where the store is (:mod:`.where`, which imports no
model).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from edi_gateway.config.locate import read_bytes
from edi_gateway.errors import ConfigError

__all__ = ["read_yaml", "safe_loader"]


def safe_loader() -> type[yaml.SafeLoader] | type[yaml.CSafeLoader]:
    """libyaml's safe loader when PyYAML was built with it, else PyYAML's own."""
    return yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


@functools.cache
def _unique_key_loader() -> type[yaml.SafeLoader] | type[yaml.CSafeLoader]:
    """The safe loader (:func:`safe_loader`: on libyaml's parser where PyYAML has it, with the
    same safe constructor and the same marks) that refuses a key given twice in one mapping
    (PyYAML keeps the last)."""
    base = safe_loader()

    def construct_mapping(self: Any, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return base.construct_mapping(self, node, deep=deep)

    # made with type(): its base is only known here (mypy refuses a class on a variable base)
    return type("UniqueKeyLoader", (base,), {"construct_mapping": construct_mapping})


def read_yaml(path: Path, raw: bytes | None = None) -> Any:
    """The YAML of the config file ``path`` (of ``raw``, its bytes, when given: what was read
    once); ConfigError naming the file (and the line of a syntax error)."""
    try:
        raw = read_bytes(path) if raw is None else raw
        # as Path.read_text: universal newlines (YAML line numbers stay the same)
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read it as UTF-8 text: {exc}") from None
    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; expected at least partners and connectors")
    return data
