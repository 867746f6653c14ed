"""The operator console: server-rendered pages over the same application functions the CLI
calls (store/queries.py, pipeline/operator.py, outbound/outbox.py, accounts.py); no SQL and no
business rules here (docs/adr/0031).

Starlette routes (:mod:`.pages` read, :mod:`.actions` act, :mod:`.auth` signs in and out),
Jinja2 templates with autoescape, one vendored stylesheet and no JavaScript. Served by
``edi-gateway run`` on ``daemon.http`` beside ``/healthz`` and ``/metrics``
(:mod:`edi_gateway.daemon.http`), or alone by ``edi-gateway console``.
"""

from __future__ import annotations

from edi_gateway.web.app import console_app

__all__ = ["console_app"]
