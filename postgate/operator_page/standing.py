"""How a tenant's window stands against the breaker's thresholds (pure).

A rate is ``over`` when it is strictly above its threshold (what trips the breaker),
``near`` from ``NEAR`` of the threshold on, else ``ok``. Below the breaker's minimum
volume the rates are shown but not judged (``low_volume``), as the breaker does.
"""

from __future__ import annotations

from dataclasses import dataclass

from postgate.core.breaker import Thresholds, Window

NEAR = 0.8


@dataclass(frozen=True, slots=True)
class Standing:
    sent: int
    delivered: int
    complaints: int
    hard_bounces: int
    complaints_per_1000: float
    bounce_percent: float
    complaint_level: str  # ok | near | over | low_volume
    bounce_level: str
    complaint_limit_per_1000: float
    bounce_limit_percent: float
    min_volume: int
    policy_blocks: int = 0  # refused as spam or by policy: not dead addresses
    auth_failures: int = 0  # refused for failed SPF/DKIM/DMARC
    policy_percent: float = 0.0
    auth_percent: float = 0.0
    policy_level: str = "ok"
    auth_level: str = "ok"
    policy_limit_percent: float = 0.0
    auth_limit_percent: float = 0.0

    @property
    def levels(self) -> tuple[str, ...]:
        return (self.complaint_level, self.bounce_level, self.policy_level, self.auth_level)


def level(rate: float, threshold: float, judged: bool) -> str:
    if not judged:
        return "low_volume"
    if rate > threshold:
        return "over"
    return "near" if threshold > 0 and rate >= NEAR * threshold else "ok"


def judge(window: Window, limits: Thresholds) -> Standing:
    judged = window.sent >= limits.min_volume
    complaint, bounce = window.complaint_rate(), window.hard_bounce_rate()
    policy, auth = window.policy_block_rate(), window.auth_failure_rate()
    return Standing(
        sent=window.sent,
        delivered=window.delivered,
        complaints=window.complaints,
        hard_bounces=window.hard_bounces,
        complaints_per_1000=round(complaint * 1000, 2),
        bounce_percent=round(bounce * 100, 2),
        complaint_level=level(complaint, limits.complaint_rate, judged),
        bounce_level=level(bounce, limits.hard_bounce_rate, judged),
        complaint_limit_per_1000=round(limits.complaint_rate * 1000, 3),
        bounce_limit_percent=round(limits.hard_bounce_rate * 100, 3),
        min_volume=limits.min_volume,
        policy_blocks=window.policy_blocks,
        auth_failures=window.auth_failures,
        policy_percent=round(policy * 100, 2),
        auth_percent=round(auth * 100, 2),
        policy_level=level(policy, limits.policy_block_rate, judged),
        auth_level=level(auth, limits.auth_failure_rate, judged),
        policy_limit_percent=round(limits.policy_block_rate * 100, 3),
        auth_limit_percent=round(limits.auth_failure_rate * 100, 3),
    )


def attention(status: str, standing: Standing) -> int:
    """Sort key: stopped or over a threshold first (0), then near one (1), then the rest."""
    levels = standing.levels
    if status != "active" or "over" in levels:
        return 0
    return 1 if "near" in levels else 2
