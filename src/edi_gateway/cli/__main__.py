"""``python -m edi_gateway.cli``: the same as the ``edi-gateway`` console script."""

import sys

from edi_gateway.cli import main

sys.exit(main())
