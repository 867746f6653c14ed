"""UBL 2.1 knowledge without I/O: hardened parsing, the verified XSD set, validation.

The parser is ``edi_gateway.ubl.parse.parse``; it is not re-exported here so that
``edi_gateway.ubl.parse`` keeps naming the module.
"""

from edi_gateway.ubl.schemas import SchemaSet, schema_for, supported_root_names
from edi_gateway.ubl.validate import (
    Validated,
    XsdInvalid,
    XsdIssue,
    identify,
    validate_document,
    xsd_errors,
)

__all__ = [
    "SchemaSet",
    "Validated",
    "XsdInvalid",
    "XsdIssue",
    "identify",
    "schema_for",
    "supported_root_names",
    "validate_document",
    "xsd_errors",
]
