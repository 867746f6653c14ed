"""The ``connectors:`` entries of gateway.yaml: the registry of connector types and the
:data:`Connector` union.

Each connector's model lives beside its transport, in a light module of its own
(``transports/<name>_spec.py``: :mod:`~edi_gateway.transports.folder_spec`,
:mod:`~edi_gateway.transports.sftp_spec`, :mod:`~edi_gateway.transports.email_spec`,
:mod:`~edi_gateway.transports.amqp_spec`, :mod:`~edi_gateway.transports.as2_spec`,
:mod:`~edi_gateway.transports.http_spec`) that imports no protocol library. Every one shares
:class:`~edi_gateway.config.base.ConnectorBase` (name, direction, schedule, partner, reply
layouts). Secrets (passwords, private keys, tokens) are never written in the YAML: a
:class:`~edi_gateway.config.base.Secret` names an environment variable or a file, read when the
connector opens. Adding a type: its model (a class with ``type: Literal[...]``) in its spec
module, one line in :data:`CONNECTOR_TYPES`, and its member of the :data:`Connector` union below
(for the type checker).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from edi_gateway.config.base import ConnectorBase

if TYPE_CHECKING:
    from edi_gateway.transports.amqp_spec import AmqpConnector
    from edi_gateway.transports.as2_spec import As2Connector
    from edi_gateway.transports.email_spec import ImapConnector, SmtpConnector
    from edi_gateway.transports.folder_spec import FolderConnector
    from edi_gateway.transports.http_spec import HttpConnector
    from edi_gateway.transports.sftp_spec import SftpConnector

__all__ = ["CONNECTOR_TYPES", "Connector", "connector_model"]

CONNECTOR_TYPES: dict[str, str] = {
    "folder": "edi_gateway.transports.folder_spec:FolderConnector",
    "sftp": "edi_gateway.transports.sftp_spec:SftpConnector",
    "imap": "edi_gateway.transports.email_spec:ImapConnector",
    "smtp": "edi_gateway.transports.email_spec:SmtpConnector",
    "amqp": "edi_gateway.transports.amqp_spec:AmqpConnector",
    "as2": "edi_gateway.transports.as2_spec:As2Connector",
    "http": "edi_gateway.transports.http_spec:HttpConnector",
}
"""The registry: ``type:`` -> the model class (``module:Class``), imported when a config uses
that type: each pydantic model costs start-up time to build, and ``ingest`` should not pay for
seven."""


def connector_model(kind: str) -> type[ConnectorBase] | None:
    """The model class of connector ``type: kind``, or None for an unknown type."""
    target = CONNECTOR_TYPES.get(kind)
    if target is None:
        return None
    module, name = target.split(":")
    model: type[ConnectorBase] = getattr(importlib.import_module(module), name)
    return model


def _by_type(value: Any, info: ValidationInfo) -> Any:
    """Validate one ``connectors:`` entry with the model its ``type`` names (a tagged union
    whose members are imported on demand; errors keep their locations inside the entry)."""
    if not isinstance(value, dict):
        return value  # ConnectorBase then reports "expected a mapping"
    kind = value.get("type")
    if kind is None:
        raise PydanticCustomError(
            "union_tag_not_found",
            "Unable to extract tag using discriminator {discriminator}",
            {"discriminator": "'type'"},
        )
    model = connector_model(kind) if isinstance(kind, str) else None
    if model is None:
        expected = ", ".join(repr(k) for k in CONNECTOR_TYPES)
        raise PydanticCustomError(
            "union_tag_invalid",
            "Input tag {tag} found using {discriminator} does not match any of the expected "
            "tags: {expected_tags}",
            {"discriminator": "'type'", "tag": str(kind), "expected_tags": expected},
        )
    return model.model_validate(value, context=info.context)


if TYPE_CHECKING:
    Connector = (
        FolderConnector
        | SftpConnector
        | ImapConnector
        | SmtpConnector
        | AmqpConnector
        | As2Connector
        | HttpConnector
    )
else:  # at run time: one entry validated as the class its `type` names (and dumped as the
    # class it is: ConnectorBase's polymorphic_serialization)
    Connector = Annotated[ConnectorBase, BeforeValidator(_by_type)]
