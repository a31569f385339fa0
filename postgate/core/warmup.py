"""Warm-up of a new sending domain, free of I/O: its ramp of daily volume caps, when a
day's cap resets, and how a day's reputation moves it along the ramp.

A domain verified through the API starts at stage 0 of ``WARMUP_SCHEDULE`` (messages per
provider group per day, e.g. ``500,1000,2500,…``). Each day whose complaint and hard-bounce
rates stay under the breaker's thresholds moves it one stage on; a day over either holds
it where it is, and one over twice a threshold steps it one stage back. Past the last
stage the domain is warm and has no cap. Days are UTC days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise

from postgate.core.breaker import Thresholds, Window

ALL_GROUPS = "all"  # the group of every recipient when the provider knows no groups
MIN_VOLUME = 50  # a day with fewer sent emails says nothing about reputation


class WarmupState(StrEnum):
    WARMING = "warming"  # on the ramp, moving on each clean day
    HELD = "held"  # on the ramp, kept at its stage by a bad day
    DONE = "done"  # warm (or established before warm-up existed): no cap


def parse_schedule(spec: str) -> tuple[int, ...]:
    """``"500,1000,2500"`` as caps; each positive and none smaller than the one before."""
    try:
        caps = tuple(int(part) for part in spec.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"WARMUP_SCHEDULE must be comma-separated numbers, not {spec!r}") from None
    if not caps or any(c < 1 for c in caps):
        raise ValueError("WARMUP_SCHEDULE needs at least one cap, each at least 1")
    if any(b < a for a, b in pairwise(caps)):
        raise ValueError("WARMUP_SCHEDULE caps may not shrink from one day to the next")
    return caps


def cap(schedule: tuple[int, ...], stage: int) -> int:
    """Today's messages per provider group at ``stage``."""
    return schedule[min(max(stage, 0), len(schedule) - 1)]


def day_of(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


def next_day(now: datetime) -> datetime:
    """When the day's caps reset: the next UTC midnight."""
    tomorrow = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Step:
    stage: int
    state: WarmupState
    reason: str


def review(schedule: tuple[int, ...], stage: int, window: Window, limits: Thresholds) -> Step:
    """Where a day's figures put a domain on its ramp."""
    over = [
        (name, rate, limit)
        for name, rate, limit in (
            ("complaint rate", window.complaint_rate(), limits.complaint_rate),
            ("hard-bounce rate", window.hard_bounce_rate(), limits.hard_bounce_rate),
        )
        if window.sent >= MIN_VOLUME and rate > limit
    ]
    if over:
        name, rate, limit = over[0]
        why = f"{name} {rate:.2%} over {limit:.2%} on {window.sent} sent"
        if rate > 2 * limit and stage > 0:
            return Step(stage - 1, WarmupState.HELD, f"stepped back: {why}")
        return Step(stage, WarmupState.HELD, f"held: {why}")
    if stage + 1 >= len(schedule):
        return Step(stage + 1, WarmupState.DONE, "warm: the last stage passed cleanly")
    return Step(stage + 1, WarmupState.WARMING, "")


def days_to_send(schedule: tuple[int, ...], stage: int, left_today: int, count: int) -> int:
    """Days (0: today) until ``count`` more messages to one group have gone at this
    stage's pace, assuming every later day is clean."""
    if count <= left_today:
        return 0
    count -= left_today
    days = 0
    while count > 0:
        days += 1
        stage += 1
        if stage >= len(schedule):
            return days
        count -= cap(schedule, stage)
    return days
