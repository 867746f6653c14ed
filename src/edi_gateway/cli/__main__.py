"""``python -m edi_gateway.cli``: the same as the ``edi-gateway`` console script."""

from edi_gateway.cli import entry

entry()
