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


def paced(
    created_at: datetime, now: datetime, retry_after: float, deadline_s: float
) -> datetime | None:
    """A send our own pacing put off: due ``retry_after`` seconds from now (at least one),
    within the same deadline as any retry; None once it has passed."""
    deadline = aware(created_at) + timedelta(seconds=deadline_s)
    if now >= deadline:
        return None
    return min(now + timedelta(seconds=max(1.0, retry_after)), deadline)
