"""The tenant circuit breaker and soft-bounce scoring: pure decisions, no I/O.

The breaker looks at one tenant's rolling window (emails delivered and sent,
complaints, hard bounces, policy blocks and authentication failures received) and
decides whether bulk sending must stop. Above the complaint rate (default 1 per 1000
delivered), the hard-bounce rate (default 5% of sent), the policy-block rate (receivers
refusing the mail as spam, for reputation or content: default 5% of sent) or the
authentication-failure rate (SPF, DKIM, DMARC refusals: default 2% of sent), with at
least ``min_volume`` sent, bulk email is disabled; a trip within ``repeat_days`` of an
earlier one suspends all bulk sending. Each trip names which of the four it was
(:class:`TripReason`), so an operator knows whether the tenant's list is dead, its
recipients complain, or receivers refuse its mail. Policy blocks and authentication
failures say nothing about the recipients' addresses: they are never suppressions,
only counts against the tenant. The window
starts no earlier than the last operator re-enable, so the counts that caused a trip
do not trip it again the moment it is cleared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from postgate.core.bounce import is_policy
from postgate.core.states import Scope

BULK_EMAIL, BULK_SMS, ALL = Scope.BULK_EMAIL, Scope.BULK_SMS, Scope.ALL
SCOPES = (BULK_EMAIL, BULK_SMS, ALL)


class TripReason(StrEnum):
    """Why the breaker stopped a tenant: stored on the block, its audit entry and metrics."""

    COMPLAINT_RATE = "complaint_rate"  # recipients report the mail as spam
    HARD_BOUNCE_RATE = "hard_bounce_rate"  # the list holds dead addresses
    AUTH_FAILURE_RATE = "auth_failure_rate"  # refused for failed SPF/DKIM/DMARC
    POLICY_BLOCK_RATE = "policy_block_rate"  # refused as spam, blocklisted, bad reputation


@dataclass(frozen=True, slots=True)
class Thresholds:
    complaint_rate: float = 0.001
    hard_bounce_rate: float = 0.05
    policy_block_rate: float = 0.05
    auth_failure_rate: float = 0.02
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
    policy_blocks: int = 0  # deliveries refused with reason policy_block
    auth_failures: int = 0  # deliveries refused with reason auth_failure

    def complaint_rate(self) -> float:
        return self.complaints / self.delivered if self.delivered else 0.0

    def hard_bounce_rate(self) -> float:
        return self.hard_bounces / self.sent if self.sent else 0.0

    def policy_block_rate(self) -> float:
        return self.policy_blocks / self.sent if self.sent else 0.0

    def auth_failure_rate(self) -> float:
        return self.auth_failures / self.sent if self.sent else 0.0


@dataclass(frozen=True, slots=True)
class Trip:
    scopes: tuple[str, ...]
    reason: TripReason
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
    policy, auth = window.policy_block_rate(), window.auth_failure_rate()
    # the first one over its threshold names the trip; the detail carries all four
    if complaint > thresholds.complaint_rate:
        reason = TripReason.COMPLAINT_RATE
    elif bounce > thresholds.hard_bounce_rate:
        reason = TripReason.HARD_BOUNCE_RATE
    elif auth > thresholds.auth_failure_rate:
        reason = TripReason.AUTH_FAILURE_RATE
    elif policy > thresholds.policy_block_rate:
        reason = TripReason.POLICY_BLOCK_RATE
    else:
        return None
    escalated = any(now - at <= thresholds.repeat for at in previous_trips)
    scopes = (BULK_EMAIL, BULK_SMS) if escalated else (BULK_EMAIL,)
    detail = {
        "reason": str(reason),
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "sent": window.sent,
        "delivered": window.delivered,
        "complaints": window.complaints,
        "hard_bounces": window.hard_bounces,
        "policy_blocks": window.policy_blocks,
        "auth_failures": window.auth_failures,
        "complaint_rate": round(complaint, 6),
        "hard_bounce_rate": round(bounce, 6),
        "policy_block_rate": round(policy, 6),
        "auth_failure_rate": round(auth, 6),
        "complaint_threshold": thresholds.complaint_rate,
        "hard_bounce_threshold": thresholds.hard_bounce_rate,
        "policy_block_threshold": thresholds.policy_block_rate,
        "auth_failure_threshold": thresholds.auth_failure_rate,
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
