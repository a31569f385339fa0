"""Time in one place: timezone-aware UTC, and calendar-month arithmetic for consent rules."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """Databases may hand back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def add_months(value: datetime, months: int) -> datetime:
    """Same day-of-month ``months`` later, clamped to the month's last day (Feb 29 -> Feb 28)."""
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)
