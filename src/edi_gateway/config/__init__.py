"""gateway.yaml -> typed, validated :class:`Settings`: what callers import.

- :mod:`.load`: finding the file, reading the YAML, one :class:`~edi_gateway.errors.ConfigError`
  listing every problem with its key path;
- :mod:`.base`: the strict base model, value checks, secret references, what every connector has;
- :mod:`.models`: partners, routes and :class:`Settings` with its cross-checks;
- :mod:`.profiles`: a partner's legal data and forwarding profile;
- :mod:`.daemon`: the ``daemon:`` section;
- :mod:`.connectors`: the registry of connector types (each one's model lives beside its
  transport, ``transports/<name>_spec.py``, imported only when a config uses that type).
"""

from __future__ import annotations

from edi_gateway.config.base import ConnectorBase, IntakeSettings, PeppolId, Secret, StoreSettings
from edi_gateway.config.connectors import Connector
from edi_gateway.config.load import DEFAULT_NAME, ENV_VAR, check_config, config_path, load_config
from edi_gateway.config.models import Partner, Route, RouteMatch, Settings, reply_map_path
from edi_gateway.config.profiles import ForwardProfile, LegalProfile

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
