"""`edi-gateway run`: the daemon.

- :mod:`.loop`: the loop that polls, processes and flushes (:func:`run`, :class:`Daemon`);
- :mod:`.schedule`: when each connector is due, and how a failing one backs off (no I/O);
- :mod:`.leases`: which connectors this gateway polls when several share a store;
- :mod:`.events`: one log line and its metrics per message and delivery;
- :mod:`.metrics`: the Prometheus metrics;
- :mod:`.http`: ``/healthz`` and ``/metrics``, served from a background thread.
"""

from __future__ import annotations

from edi_gateway.daemon.loop import Daemon, make_receive, run

__all__ = ["Daemon", "make_receive", "run"]
