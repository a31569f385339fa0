"""Retry policy (pure): when a deferred delivery is tried again, or given up."""

from __future__ import annotations

from datetime import datetime, timedelta

from postgate.core.clock import aware


def next_attempt(
    attempts: int,
    created_at: datetime,
    now: datetime,
    base_s: float,
    max_s: float,
    deadline_s: float,
) -> datetime | None:
    """Exponential backoff after ``attempts`` tries; None once the deadline has passed."""
    delay = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    when = now + timedelta(seconds=delay)
    deadline = aware(created_at) + timedelta(seconds=deadline_s)
    if now >= deadline:
        return None
    return min(when, deadline)
