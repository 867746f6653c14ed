"""gateway.yaml -> typed, validated :class:`Settings`: what callers import.

- :mod:`.load`: finding the file, reading the YAML, one :class:`~edi_gateway.errors.ConfigError`
  listing every problem with its key path;
- :mod:`.base`: the strict base model, value checks, secret references, what every connector has;
- :mod:`.models`: partners, routes and :class:`Settings` with its cross-checks;
- :mod:`.profiles`: a partner's legal data and forwarding profile;
- :mod:`.daemon`: the ``daemon:`` section;
- :mod:`.connectors`: the registry of connector types (each one's model lives beside its
  transport, ``transports/<name>_spec.py``, imported only when a config uses that type).

The names below are imported from their modules when first asked for (PEP 562): importing a
light module of this package (:mod:`.locate`, :mod:`.cache`) costs no pydantic, which is what
lets a read-only command with a cached config start without it (docs/adr/0041).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edi_gateway.config.base import (
        ConnectorBase,
        IntakeSettings,
        PeppolId,
        Secret,
        StoreSettings,
    )
    from edi_gateway.config.connectors import Connector
    from edi_gateway.config.load import check_config, load_config
    from edi_gateway.config.locate import DEFAULT_NAME, ENV_VAR, config_path
    from edi_gateway.config.models import Partner, Route, RouteMatch, Settings, reply_map_path
    from edi_gateway.config.profiles import ForwardProfile, LegalProfile

_HOME = {
    "DEFAULT_NAME": "locate",
    "ENV_VAR": "locate",
    "config_path": "locate",
    "Connector": "connectors",
    "ConnectorBase": "base",
    "IntakeSettings": "base",
    "PeppolId": "base",
    "Secret": "base",
    "StoreSettings": "base",
    "ForwardProfile": "profiles",
    "LegalProfile": "profiles",
    "Partner": "models",
    "Route": "models",
    "RouteMatch": "models",
    "Settings": "models",
    "reply_map_path": "models",
    "check_config": "load",
    "load_config": "load",
}

__all__ = [
    "DEFAULT_NAME",
    "ENV_VAR",
    "Connector",
    "ConnectorBase",
    "ForwardProfile",
    "IntakeSettings",
    "LegalProfile",
    "Partner",
    "PeppolId",
    "Route",
    "RouteMatch",
    "Secret",
    "Settings",
    "StoreSettings",
    "check_config",
    "config_path",
    "load_config",
    "reply_map_path",
]


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # asked once
    return value
