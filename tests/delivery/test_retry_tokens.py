from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postgate.delivery import tokens
from postgate.delivery.retry import next_attempt

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_backoff_doubles_up_to_the_cap_and_stops_at_the_deadline() -> None:
    delays = [
        (next_attempt(n, T0, T0, 60, 600, 86400) - T0).total_seconds()  # type: ignore[operator]
        for n in range(1, 7)
    ]
    assert delays == [60, 120, 240, 480, 600, 600]
    near = T0 + timedelta(seconds=86400 - 10)
    assert next_attempt(3, T0, near, 60, 600, 86400) == T0 + timedelta(seconds=86400)
    assert next_attempt(3, T0, T0 + timedelta(days=2), 60, 600, 86400) is None


def test_verp_round_trip_and_forgery() -> None:
    address = tokens.verp_address("k", 4711, "bounces.example")
    assert tokens.verp_decode("k", address) == 4711
    assert tokens.verp_decode("k", address.replace("4711", "4712")) is None
    assert tokens.verp_decode("other", address) is None
    assert tokens.verp_decode("k", "someone@else.example") is None


def test_unsubscribe_token_round_trip_and_forgery() -> None:
    token = tokens.unsubscribe_token("k", 99)
    assert tokens.unsubscribe_decode("k", token) == 99
    assert tokens.unsubscribe_decode("k", "100" + token[2:]) is None
    assert tokens.unsubscribe_decode("k", "garbage") is None
    assert len(token.split(".")[1]) * 4 >= 128
