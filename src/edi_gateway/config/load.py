"""gateway.yaml -> typed, validated :class:`~edi_gateway.config.models.Settings`.

Every problem becomes one :class:`ConfigError` that names the file, the key path
(``partners[1].endpoint.scheme``), what was found and what is expected, listing all problems at
once. The models themselves live in the modules beside this one (and, for connectors, beside
their transports); :mod:`edi_gateway.config` re-exports what callers use.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edi_gateway.config.base import ConnectorBase
from edi_gateway.config.cache import StoreAt, cached, recording, remember
from edi_gateway.config.connectors import connector_model
from edi_gateway.config.locate import DEFAULT_NAME, ENV_VAR, config_path
from edi_gateway.config.locate import read_bytes as _read_bytes
from edi_gateway.config.models import Settings
from edi_gateway.errors import ConfigError

if TYPE_CHECKING:  # PyYAML is imported when a config is parsed, not when it comes from cache
    import yaml

__all__ = ["DEFAULT_NAME", "ENV_VAR", "check_config", "config_path", "load_config"]

_NOT_KEYS = {"path"}  # Settings fields that are not YAML keys


def load_config(path: Path, raw: bytes | None = None) -> Settings:
    """Read, parse and validate the config file (``raw``: its bytes, when the caller read them
    already and must have those judged); ConfigError listing every problem (each with its
    line in the file where it has one). The settings of a config that validated before, with
    nothing it read changed since, come from :mod:`edi_gateway.config.cache`."""
    path = path.expanduser().absolute()
    raw = _read_bytes(path) if raw is None else raw
    known = cached(path, raw)
    if isinstance(known, Settings):
        return known
    from edi_gateway.config.yamlsafe import read_yaml

    with recording() as reads:
        settings = _validated(path, read_yaml(path, raw))
    _remember(path, raw, reads, settings)
    return settings


def _remember(path: Path, raw: bytes, reads: Any, settings: Settings) -> None:
    """Keep ``settings``, validated from ``raw`` with ``reads``, in the config cache (where
    their store is too, when it has no password: secrets are never cached)."""
    store = settings.store
    at = StoreAt(store.url, settings.daemon.lease_seconds) if store.password is None else None
    remember(path, raw, reads, settings, store=at)


def _validated(path: Path, data: Any) -> Settings:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys at the top level, found "
            f"{type(data).__name__}; allowed keys: {_keys_of(Settings)}"
        )
    misplaced = sorted(_NOT_KEYS & data.keys())
    if misplaced:
        raise ConfigError(
            f"{path}: {misplaced[0]}: unknown key; allowed keys: {_keys_of(Settings)}"
        )
    try:
        return Settings.model_validate({**data, "path": path}, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc, data, _nodes(path))) from None


def check_config(path: Path) -> list[dict[str, Any]]:
    """Every problem of the config file as ``{line, message}`` (``line`` None when a problem
    has no one place); [] when it loads, and the validated settings are then cached as
    :func:`load_config` caches them, so the next command starts without validating again.
    Nothing is opened or run."""
    from edi_gateway.config.yamlsafe import read_yaml

    path = path.expanduser().absolute()
    try:
        raw = _read_bytes(path)
        with recording() as reads:
            data = read_yaml(path, raw)
            if not isinstance(data, dict) or _NOT_KEYS & data.keys():
                load_config(path)  # its one problem, worded as at start-up
            settings = Settings.model_validate(
                {**data, "path": path}, context={"base_dir": path.parent}
            )
    except ConfigError as exc:
        return [_located(exc.message.removeprefix(f"{path}:").strip())]
    except ValidationError as exc:
        nodes = _nodes(path)
        return [
            {"line": line, "message": text}
            for err in exc.errors(include_url=False)
            for line, text in _described(err, data, nodes)
        ]
    _remember(path, raw, reads, settings)
    return []


def _located(message: str) -> dict[str, Any]:
    """A read error's own ``LINE:COLUMN: text`` as ``{line, message}``."""
    where, sep, rest = message.partition(": ")
    line = where.split(":")[0]
    if sep and line.isdigit():
        return {"line": int(line), "message": rest}
    return {"line": None, "message": message}


def _nodes(path: Path) -> yaml.Node | None:
    """The YAML node tree (with line marks) of a file that already parsed, by the parser that
    parsed it: PyYAML's own refuses some files libyaml reads (a tab after ``key:``), whose
    problems were then listed without their lines."""
    import yaml

    from edi_gateway.config.yamlsafe import safe_loader

    try:
        return yaml.compose(path.read_text(encoding="utf-8"), Loader=safe_loader())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (or of the nearest parent that exists)."""
    import yaml

    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, _ in node.value if k.value == part), None)
            line = key.start_mark.line + 1 if key is not None else line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if -len(node.value) <= part < len(node.value) else None
            line = child.start_mark.line + 1 if child is not None else line
        if child is None:
            return line
        node = child
    return line


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _path_of(text: str) -> tuple[int | str, ...]:
    """``partners[1].outbound: ...`` -> ("partners", 1, "outbound")."""
    head = text.split(":", 1)[0].strip()
    if not head or " " in head:
        return ()
    return tuple(int(i) if i else name for name, i in _PATH_PART.findall(head))


def _format_errors(
    path: Path, exc: ValidationError, data: Any = None, nodes: yaml.Node | None = None
) -> str:
    found = [
        f"{text} (line {line})" if line else text
        for err in exc.errors(include_url=False)
        for line, text in _described(err, data, nodes)
    ]
    head = f"{path}: {len(found)} problem{'s' if len(found) != 1 else ''}"
    return "\n".join([head, *(f"  - {line}" for line in found)])


def _described(
    err: ErrorDetails, data: Any, nodes: yaml.Node | None
) -> list[tuple[int | None, str]]:
    """Each line :func:`_describe` says of ``err``, with the YAML line it is about."""
    loc, _ = _walk(err["loc"], data)
    return [(_line_of(nodes, loc or _path_of(text)), text) for text in _describe(err, data)]


def _describe(err: ErrorDetails, data: Any) -> list[str]:  # noqa: PLR0911 - a branch a type
    loc, _ = _walk(err["loc"], data)
    where = _dotted(loc) or "(top level)"
    kind, msg, found = err["type"], err["msg"], _short(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind == "value_error" and not loc:  # cross-field problems, already "key: message"
        return str(ctx.get("error", msg)).splitlines()
    if kind == "value_error":
        return [f"{where}: {ctx.get('error', msg)}"]
    if kind == "extra_forbidden":
        _, parent = _walk(err["loc"][:-1], data)
        return [f"{where}: unknown key (value {found}); allowed keys: {_keys_of(parent)}"]
    if kind == "missing":
        return [f"{where}: missing; this key is required"]
    if kind == "union_tag_invalid":
        tag, expected = ctx.get("tag"), ctx.get("expected_tags", "")
        return [f"{where}.type: found {tag!r}, expected one of {expected}"]
    if kind == "union_tag_not_found":
        return [f"{where}.type: missing; every connector needs a type, such as type: folder"]
    if kind in ("model_type", "dict_type"):
        return [
            f"{where}: found {found}, expected a mapping with keys "
            f"{_keys_of(_walk(err['loc'], data)[1])}"
        ]
    return [f"{where}: found {found}, expected {msg.removeprefix('Input should be ')}"]


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    return text.lstrip(".")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _models(tp: Any) -> list[type[BaseModel]]:
    """The pydantic models ``tp`` stands for (one, the members of a union, or none)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    members = typing.get_args(tp) if typing.get_origin(tp) in (Union, UnionType) else (tp,)
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def _step(tp: Any, part: int | str) -> tuple[Any, bool]:
    """The type one location step below ``tp``, and whether ``part`` was a union tag."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if isinstance(part, int):
        return (typing.get_args(tp)[0] if typing.get_origin(tp) is list else None), False
    models = _models(tp)
    for model in models:
        if part in model.model_fields:
            return model.model_fields[part].annotation, False
    for model in models:
        tag = model.model_fields.get("type")
        if tag is not None and part in typing.get_args(tag.annotation):
            return model, True
    return None, False


def _walk(loc: tuple[int | str, ...], data: Any = None) -> tuple[tuple[int | str, ...], Any]:
    """Follow a pydantic error location from Settings: (location without union tags, type).

    ``data`` is what was validated: a connector entry's model is the one its ``type`` names.
    """
    clean: list[int | str] = []
    tp: Any = Settings
    raw = data
    for part in loc:
        tp = _concrete(tp, raw)
        tp, is_tag = _step(tp, part)
        raw = _child(raw, part)
        if not is_tag:
            clean.append(part)
    return tuple(clean), _concrete(tp, raw)


def _child(raw: Any, part: int | str) -> Any:
    if isinstance(part, int):
        return raw[part] if isinstance(raw, list) and -len(raw) <= part < len(raw) else None
    return raw.get(part) if isinstance(raw, dict) else None


def _concrete(tp: Any, raw: Any) -> Any:
    """A connector entry's own model, from its ``type``, where ``tp`` is the connector base."""
    if _models(tp) == [ConnectorBase] and isinstance(raw, dict):
        kind = raw.get("type")
        model = connector_model(kind) if isinstance(kind, str) else None
        return model or tp
    return tp


def _keys_of(tp: Any) -> str:
    """The YAML keys the model ``tp`` accepts, comma-separated."""
    models = _models(tp)
    if not models:
        return "(none)"
    return ", ".join(
        k for k in models[0].model_fields if not (models[0] is Settings and k in _NOT_KEYS)
    )
