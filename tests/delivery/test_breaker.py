"""The breaker and soft-bounce policies are pure: thresholds, minimum volume, escalation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from postgate.core.breaker import (
    SoftBounceRule,
    Thresholds,
    TripReason,
    Window,
    evaluate,
    scored,
    soft_bounce_suppresses,
    window_start,
)
from postgate.core.sending_policy import held_reason
from postgate.core.sending_policy import may_send as allows

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
LIMITS = Thresholds()


def window(sent: int, complaints: int = 0, hard: int = 0) -> Window:
    return Window(NOW - LIMITS.window, NOW, sent, sent - hard, complaints, hard)


def test_complaints_trip_strictly_above_one_per_thousand() -> None:
    assert evaluate(window(2000, complaints=2), LIMITS, (), (), NOW) is None
    trip = evaluate(window(2000, complaints=3), LIMITS, (), (), NOW)
    assert trip is not None and trip.scopes == ("bulk_email",) and trip.reason == "complaint_rate"
    assert trip.detail["complaints"] == 3 and trip.detail["delivered"] == 2000


def test_hard_bounces_trip_above_five_percent() -> None:
    assert evaluate(window(1000, hard=50), LIMITS, (), (), NOW) is None
    trip = evaluate(window(1000, hard=51), LIMITS, (), (), NOW)
    assert trip is not None and trip.reason == "hard_bounce_rate"


def test_no_verdict_below_minimum_volume() -> None:
    assert evaluate(window(999, complaints=50, hard=500), LIMITS, (), (), NOW) is None


def test_repeat_within_thirty_days_suspends() -> None:
    earlier = [NOW - timedelta(days=29)]
    trip = evaluate(window(2000, complaints=5), LIMITS, (), earlier, NOW)
    assert trip is not None and trip.escalated and trip.scopes == ("bulk_email", "bulk_sms")
    old = evaluate(window(2000, complaints=5), LIMITS, (), [NOW - timedelta(days=31)], NOW)
    assert old is not None and not old.escalated


def test_already_blocked_tenant_is_not_tripped_again() -> None:
    assert evaluate(window(2000, complaints=9), LIMITS, ("bulk_email",), (), NOW) is None
    assert evaluate(window(2000, complaints=9), LIMITS, ("all",), (), NOW) is None


def test_window_starts_at_the_last_re_enable() -> None:
    cleared = NOW - timedelta(hours=2)
    assert window_start(NOW, LIMITS, cleared) == cleared
    assert window_start(NOW, LIMITS, NOW - timedelta(days=30)) == NOW - LIMITS.window


def test_soft_bounces_need_score_and_distinct_days() -> None:
    rule = SoftBounceRule()
    same_day = [NOW - timedelta(minutes=i) for i in range(10)]
    assert not soft_bounce_suppresses(same_day, rule, NOW)
    spread = [NOW - timedelta(days=d) for d in (0, 0, 1, 2, 2)]
    assert soft_bounce_suppresses(spread, rule, NOW)
    assert soft_bounce_suppresses(list(reversed(spread)), rule, NOW)  # order does not matter
    assert not soft_bounce_suppresses(spread[:4], rule, NOW)
    stale = [NOW - timedelta(days=d) for d in (40, 41, 42, 43, 44)]
    assert not soft_bounce_suppresses(stale, rule, NOW)


def test_delays_and_policy_rejections_do_not_score() -> None:
    assert scored("5.2.2", "failed") and scored("4.4.7", "failed") and scored("", "failed")
    assert not scored("4.4.1", "delayed") and not scored("5.7.1", "failed")


def test_scopes_keep_transactional_mail_flowing() -> None:
    bulk = frozenset({"bulk_email"})
    assert not allows(bulk, "email", "promotional") and allows(bulk, "email", "transactional")
    assert allows(bulk, "sms", "promotional")
    assert not allows(frozenset({"all"}), "email", "transactional")
    assert allows(frozenset(), "email", "promotional")


def test_canary_slice_and_verdict() -> None:
    from postgate.campaigns.canary import slice_size, verdict
    from postgate.settings import Settings

    settings = Settings(canary_min_audience=5000, canary_fraction=0.02)
    assert slice_size(4999, settings) is None
    assert slice_size(5000, settings) == 100 and slice_size(5001, settings) == 101
    assert slice_size(10**6, Settings(canary_min_audience=0)) is None
    assert verdict(window(100), LIMITS) == "continue"  # far below the minimum volume
    assert verdict(window(100, complaints=1), LIMITS) == "halt"
    assert verdict(window(100, hard=6), LIMITS) == "halt"
    assert verdict(window(100, hard=5), LIMITS) == "continue"


def refused(sent: int, policy: int = 0, auth: int = 0) -> Window:
    return Window(NOW - LIMITS.window, NOW, sent, sent - policy - auth, 0, 0, policy, auth)


def test_policy_blocks_trip_above_five_percent_with_their_own_reason() -> None:
    assert evaluate(refused(1000, policy=50), LIMITS, (), (), NOW) is None
    trip = evaluate(refused(1000, policy=51), LIMITS, (), (), NOW)
    assert trip is not None and trip.reason == TripReason.POLICY_BLOCK_RATE
    assert trip.scopes == ("bulk_email",)
    assert (trip.detail["policy_blocks"], trip.detail["policy_block_rate"]) == (51, 0.051)
    assert trip.detail["hard_bounces"] == 0 and trip.detail["policy_block_threshold"] == 0.05


def test_auth_failures_trip_above_two_percent_with_their_own_reason() -> None:
    assert evaluate(refused(1000, auth=20), LIMITS, (), (), NOW) is None
    trip = evaluate(refused(1000, auth=21), LIMITS, (), (), NOW)
    assert trip is not None and trip.reason == TripReason.AUTH_FAILURE_RATE
    assert (trip.detail["auth_failures"], trip.detail["auth_failure_rate"]) == (21, 0.021)
    # both over: the authentication failure names the trip (the sender can fix it)
    both = evaluate(refused(1000, policy=80, auth=30), LIMITS, (), (), NOW)
    assert both is not None and both.reason == TripReason.AUTH_FAILURE_RATE
    # complaints and dead addresses still come first
    worse = Window(NOW - LIMITS.window, NOW, 1000, 1000, 5, 0, 80, 30)
    assert (t := evaluate(worse, LIMITS, (), (), NOW)) is not None
    assert t.reason == TripReason.COMPLAINT_RATE


def test_refusals_are_judged_only_on_enough_volume_and_their_own_thresholds() -> None:
    assert evaluate(refused(999, policy=500, auth=500), LIMITS, (), (), NOW) is None
    lenient = replace(LIMITS, policy_block_rate=0.2, auth_failure_rate=0.2)
    assert evaluate(refused(1000, policy=150, auth=150), lenient, (), (), NOW) is None
    strict = replace(LIMITS, policy_block_rate=0.001)
    trip = evaluate(refused(1000, policy=2), strict, (), (), NOW)
    assert trip is not None and trip.reason == "policy_block_rate"


def test_rows_held_by_a_refusal_trip_say_why() -> None:
    policy = ("bulk_email", "breaker", "policy_block_rate")
    auth = ("bulk_email", "breaker", "auth_failure_rate")
    operator = ("bulk_email", "operator", "")
    assert held_reason([policy], "email", "promotional") == "policy_blocked"
    assert held_reason([auth, policy], "email", "promotional") == "auth_failing"
    assert held_reason([operator], "email", "promotional") == "tenant_disabled"
    assert held_reason([("bulk_email", "breaker", "complaint_rate")], "email", "promotional") == (
        "tenant_disabled"
    )
    # a bulk email block does not stop SMS: an operator's full stop does
    assert held_reason([policy, ("all", "operator", "")], "sms", "promotional") == (
        "tenant_disabled"
    )
