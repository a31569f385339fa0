"""Direct-to-MX policy, pure: host order, TTL clamping, throttle replies, backoff windows."""

from __future__ import annotations

import random

from postgate.core.bounce import classify_reply
from postgate.providers.mx_policy import (
    Backoff,
    MxHost,
    cache_ttl,
    held_back,
    is_throttle,
    null_mx,
    order_hosts,
    throttled,
)


def test_hosts_go_by_preference_and_ties_are_shuffled() -> None:
    records = [
        MxHost(20, "c.example"),
        MxHost(10, "a.example"),
        MxHost(10, "b.example"),
        MxHost(30, "d.example"),
    ]
    orders = {tuple(order_hosts(records, random.Random(seed))) for seed in range(40)}
    assert orders == {
        ("a.example", "b.example", "c.example", "d.example"),
        ("b.example", "a.example", "c.example", "d.example"),
    }


def test_a_repeated_host_is_tried_once_at_its_best_preference() -> None:
    records = [MxHost(30, "a.example"), MxHost(20, "b.example"), MxHost(5, "a.example")]
    assert order_hosts(records, random.Random(1)) == ["a.example", "b.example"]


def test_null_mx_only_when_it_stands_alone() -> None:
    assert null_mx([MxHost(0, "")])
    assert not null_mx([MxHost(0, ""), MxHost(10, "mx.example")])
    assert order_hosts([MxHost(0, ""), MxHost(10, "mx.example")], random.Random()) == ["mx.example"]
    assert not null_mx([MxHost(10, "mx.example")])


def test_ttl_is_clamped() -> None:
    assert cache_ttl(0, 60, 3600) == 60
    assert cache_ttl(300, 60, 3600) == 300
    assert cache_ttl(86400, 60, 3600) == 3600


def test_which_replies_mean_slow_down() -> None:
    assert is_throttle(421, "4.7.0 Try again later, closing connection")
    assert is_throttle(421, "Service not available")
    assert is_throttle(451, "4.7.1 Rate limited, please retry")
    assert is_throttle(450, "4.7.28 Our system has detected an unusual rate of mail")
    assert not is_throttle(451, "4.3.0 Temporary system problem")
    assert not is_throttle(452, "4.2.2 Mailbox full")
    assert not is_throttle(550, "5.7.1 Message rejected as spam")
    assert not is_throttle(None, "connection refused")


def test_backoff_doubles_per_strike_up_to_the_ceiling() -> None:
    first = throttled(None, 100.0, 60, 300)
    assert first == Backoff(160.0, 1)
    assert held_back(first, 100.0) == 60 and held_back(first, 130.0) == 30
    assert held_back(first, 160.0) == 0
    second = throttled(first, 170.0, 60, 300)
    assert second == Backoff(290.0, 2)
    third = throttled(second, 300.0, 60, 300)
    fourth = throttled(third, 600.0, 60, 300)
    assert (third.until - 300.0, fourth.until - 600.0) == (240.0, 300.0)
    assert held_back(None, 100.0) == 0


def test_replies_from_sends_already_in_flight_are_not_new_strikes() -> None:
    window = throttled(None, 100.0, 60, 600)
    assert throttled(window, 101.0, 60, 600) is window


def test_dns_failures_are_hard_bounces() -> None:
    """The statuses mx_dns gives a missing domain and a null MX suppress the address."""
    assert classify_reply(550, "5.1.2 no such domain: x.example does not exist in DNS").hard
    assert classify_reply(556, "5.1.10 x.example accepts no mail (null MX, RFC 7505)").hard
