"""Which config file a command uses. Kept apart from :mod:`.load` (and its models): a read-only
command whose config is cached finds the file and its cache without importing pydantic."""

from __future__ import annotations

import os
from pathlib import Path

from edi_gateway.errors import ConfigError

__all__ = ["DEFAULT_NAME", "ENV_VAR", "config_path", "read_bytes"]

ENV_VAR = "EDI_GATEWAY_CONFIG"
DEFAULT_NAME = "gateway.yaml"


def config_path(cli_value: str | None) -> Path:
    """The config file to use: ``--config``, else ``$EDI_GATEWAY_CONFIG``, else ./gateway.yaml.

    Raises ConfigError naming where it looked when that file does not exist.
    """
    if cli_value:
        path, how = Path(cli_value), "--config"
    elif os.environ.get(ENV_VAR):
        path, how = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        path, how = Path(DEFAULT_NAME), "the default (no --config, no $EDI_GATEWAY_CONFIG)"
    path = path.expanduser()
    if not path.is_file():
        raise ConfigError(
            f"no config file at {path.absolute()} (from {how}); "
            "create one with `edi-gateway init DIR` or pass --config FILE"
        )
    return path


def read_bytes(path: Path) -> bytes:
    """The bytes of the config file ``path``; ConfigError when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it as UTF-8 text: {exc}") from None
