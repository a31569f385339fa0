"""The tenant circuit breaker and soft-bounce scoring: pure decisions, no I/O.

The breaker looks at one tenant's rolling window (emails delivered and sent,
complaints and hard bounces received) and decides whether bulk sending must stop.
Above the complaint rate (default 1 per 1000 delivered) or the hard-bounce rate
(default 5% of sent), with at least ``min_volume`` sent, bulk email is disabled; a
trip within ``repeat_days`` of an earlier one suspends all bulk sending. The window
starts no earlier than the last operator re-enable, so the counts that caused a trip
do not trip it again the moment it is cleared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from postgate.core.bounce import is_policy
from postgate.core.states import Scope

BULK_EMAIL, BULK_SMS, ALL = Scope.BULK_EMAIL, Scope.BULK_SMS, Scope.ALL
SCOPES = (BULK_EMAIL, BULK_SMS, ALL)


@dataclass(frozen=True, slots=True)
class Thresholds:
    complaint_rate: float = 0.001
    hard_bounce_rate: float = 0.05
    min_volume: int = 1000
    window: timedelta = timedelta(days=7)
    repeat: timedelta = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    sent: int  # accepted by the smarthost or rejected at send time
    delivered: int  # accepted (state sent)
    complaints: int
    hard_bounces: int

    def complaint_rate(self) -> float:
        return self.complaints / self.delivered if self.delivered else 0.0

    def hard_bounce_rate(self) -> float:
        return self.hard_bounces / self.sent if self.sent else 0.0


@dataclass(frozen=True, slots=True)
class Trip:
    scopes: tuple[str, ...]
    reason: str  # complaint_rate | hard_bounce_rate
    escalated: bool
    detail: dict[str, Any]


def window_start(now: datetime, thresholds: Thresholds, last_cleared: datetime | None) -> datetime:
    start = now - thresholds.window
    return max(start, last_cleared) if last_cleared is not None else start


def evaluate(
    window: Window,
    thresholds: Thresholds,
    active_scopes: Iterable[str],
    previous_trips: Iterable[datetime],
    now: datetime,
) -> Trip | None:
    """A trip when a rate is strictly above its threshold on enough volume, else None."""
    active = set(active_scopes)
    if BULK_EMAIL in active or ALL in active or window.sent < thresholds.min_volume:
        return None
    complaint, bounce = window.complaint_rate(), window.hard_bounce_rate()
    if complaint > thresholds.complaint_rate:
        reason = "complaint_rate"
    elif bounce > thresholds.hard_bounce_rate:
        reason = "hard_bounce_rate"
    else:
        return None
    escalated = any(now - at <= thresholds.repeat for at in previous_trips)
    scopes = (BULK_EMAIL, BULK_SMS) if escalated else (BULK_EMAIL,)
    detail = {
        "reason": reason,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "sent": window.sent,
        "delivered": window.delivered,
        "complaints": window.complaints,
        "hard_bounces": window.hard_bounces,
        "complaint_rate": round(complaint, 6),
        "hard_bounce_rate": round(bounce, 6),
        "complaint_threshold": thresholds.complaint_rate,
        "hard_bounce_threshold": thresholds.hard_bounce_rate,
        "min_volume": thresholds.min_volume,
        "escalated": escalated,
    }
    return Trip(scopes, reason, escalated, detail)


@dataclass(frozen=True, slots=True)
class SoftBounceRule:
    score: int = 5
    distinct_days: int = 3
    window: timedelta = timedelta(days=30)


def soft_bounce_suppresses(
    bounced_at: Iterable[datetime], rule: SoftBounceRule, now: datetime
) -> bool:
    """Mailman-style: enough soft bounces, spread over enough days, within the window.

    Built from the stored events alone, so duplicates (deduplicated before) and the
    order they arrived in change nothing.
    """
    recent = [at for at in bounced_at if now - at <= rule.window]
    return len(recent) >= rule.score and len({at.date() for at in recent}) >= rule.distinct_days


def scored(status: str, action: str) -> bool:
    """Soft bounces that speak about the address: not delays, not policy rejections."""
    return action != "delayed" and not is_policy(status)
