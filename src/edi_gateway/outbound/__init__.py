"""Outbound: compose documents from an order and a decision, queue them, deliver them."""
