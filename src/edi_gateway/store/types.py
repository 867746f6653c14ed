"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from edi_gateway.store.widths import NUMBER, decimal_text


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal stored as its exact text, so no backend rounds it through a float."""

    impl = String(NUMBER)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        """Decimal -> canonical text."""
        return None if value is None else decimal_text(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        """The same conversion without TypeDecorator's per-value indirection (hot path)."""
        return decimal_text

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Text -> Decimal."""
        return None if value is None else Decimal(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store in UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back as aware UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
