"""Business clocks the daemon keeps: SLA timers on orders (``sla.py``)."""
