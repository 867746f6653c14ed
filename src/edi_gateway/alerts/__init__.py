"""Alerts: what operators are told, grouped, throttled and sent by mail or webhook.

Things worth an alert are recorded as events in the store (``events.py``) where they happen: a
batch's new orders and failed messages, a delivery's first failed attempt and its giving up, a
connector going down, deliveries overdue, a certificate about to expire (``clocks.py``). Each
channel (an ``smtp`` connector with ``notify:``, or a webhook of ``alerts.webhooks``) is told in
digests (``digest.py``): every event of a cause since the channel was last told, grouped by
partner, with what to do; at most one digest per cause and channel per
``alerts.every_minutes``. Throttle and progress live in the store (``alert_cursors``), so
several gateways on one store send each alert once (docs/adr/0033-alerts.md).
"""
