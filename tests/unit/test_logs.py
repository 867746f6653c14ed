"""Log filtering: at info the daemon writes one line per message and per delivery, not the
libraries' connection chatter (pika logged ~18 INFO lines per RabbitMQ publish)."""

from __future__ import annotations

import logging

import pytest

from edi_gateway.logs import LibraryFilter


def _record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, "x", 1, "text", (), None)


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_library_info_lines_are_dropped_above_debug(level: int) -> None:
    keep = LibraryFilter(level).filter
    assert not keep(_record("pika.connection", logging.INFO))
    assert not keep(_record("paramiko.transport", logging.INFO))
    assert not keep(_record("edi_gatewayx", logging.INFO))  # not our package
    assert keep(_record("pika.connection", logging.WARNING))
    assert keep(_record("paramiko.transport", logging.ERROR))
    assert keep(_record("edi_gateway.messages", logging.INFO))
    assert keep(_record("edi_gateway", logging.INFO))


def test_debug_lets_every_library_line_through() -> None:
    keep = LibraryFilter(logging.DEBUG).filter
    assert keep(_record("pika.connection", logging.INFO))
    assert keep(_record("paramiko.transport", logging.DEBUG))
