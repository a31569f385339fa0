"""How rates are judged against the breaker's thresholds, and campaign progress counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postgate.campaigns.progress import tally
from postgate.core.breaker import Thresholds, Window, evaluate
from postgate.operator_page.standing import attention, judge, level

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
LIMITS = Thresholds(complaint_rate=0.001, hard_bounce_rate=0.05, min_volume=1000)


def window(sent: int, delivered: int, complaints: int, hard_bounces: int) -> Window:
    return Window(NOW - timedelta(days=7), NOW, sent, delivered, complaints, hard_bounces)


def test_levels_match_what_trips_the_breaker() -> None:
    at_limit = judge(window(2000, 2000, 2, 100), LIMITS)  # exactly 1/1000 and 5 %
    assert (at_limit.complaint_level, at_limit.bounce_level) == ("near", "near")
    assert evaluate(window(2000, 2000, 2, 100), LIMITS, (), (), NOW) is None
    over = judge(window(2000, 2000, 3, 101), LIMITS)
    assert (over.complaint_level, over.bounce_level) == ("over", "over")
    assert evaluate(window(2000, 2000, 3, 101), LIMITS, (), (), NOW) is not None
    assert over.complaints_per_1000 == 1.5 and over.bounce_percent == 5.05
    calm = judge(window(10_000, 9_990, 7, 10), LIMITS)
    assert (calm.complaint_level, calm.bounce_level) == ("ok", "ok")
    assert calm.complaint_limit_per_1000 == 1.0 and calm.bounce_limit_percent == 5.0


def test_small_volume_is_shown_but_not_judged() -> None:
    small = judge(window(999, 990, 5, 90), LIMITS)
    assert small.complaints_per_1000 == 5.05 and small.complaint_level == "low_volume"
    assert small.bounce_level == "low_volume"
    assert evaluate(window(999, 990, 5, 90), LIMITS, (), (), NOW) is None
    empty = judge(window(0, 0, 0, 0), Thresholds(min_volume=0))
    assert (empty.complaints_per_1000, empty.complaint_level) == (0.0, "ok")


def test_near_starts_at_eighty_percent_of_the_threshold() -> None:
    assert level(0.00079, 0.001, True) == "ok"
    assert level(0.0008, 0.001, True) == "near"
    assert level(0.0010001, 0.001, True) == "over"
    assert level(0.0, 0.0, True) == "ok"


def test_progress_counts_final_rows_as_done() -> None:
    p = tally(
        7,
        "spring",
        "sending",
        {
            "sent": 50,
            "blocked": 5,
            "failed": 2,
            "held": 30,
            "queued": 10,
            "sending": 2,
            "deferred": 1,
            "cancelled": 0,
        },
    )
    assert (p.total, p.done, p.open, p.held) == (100, 57, 13, 30)
    assert p.percent == 57.0 and not p.terminal
    assert tally(7, "spring", "finished", {}).terminal
    assert tally(7, "spring", "planning", {}).percent == 0.0


def test_tenants_needing_attention_come_first() -> None:
    calm, near = judge(window(5000, 5000, 0, 0), LIMITS), judge(window(5000, 5000, 4, 0), LIMITS)
    over = judge(window(5000, 5000, 6, 0), LIMITS)
    assert attention("active", over) == attention("killed", calm) == 0
    assert attention("active", near) == 1 and attention("active", calm) == 2
