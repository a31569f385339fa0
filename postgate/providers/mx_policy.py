"""Direct-to-MX decisions, free of I/O: the order to try a domain's MX hosts in, how long
to trust a DNS answer, which replies mean "slow down", and how long a destination domain
that said so is left alone."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

THROTTLE_STATUS = re.compile(r"^\s*4\.7\.\d{1,3}\b")


@dataclass(frozen=True, slots=True)
class MxHost:
    preference: int
    name: str  # lower case, no final dot; "" is the root (a null MX)


def null_mx(records: Iterable[MxHost]) -> bool:
    """RFC 7505: a single MX whose exchange is the root means "accepts no mail"."""
    records = list(records)
    return len(records) == 1 and records[0].name == ""


def order_hosts(records: Iterable[MxHost], rng: random.Random) -> list[str]:
    """Host names, lowest preference first; equal preferences in random order (RFC 5321
    section 5.1) so load spreads over them. Root exchanges and repeats are dropped."""
    by_name: dict[str, int] = {}
    for record in records:
        if record.name and record.preference < by_name.get(record.name, 1 << 16):
            by_name[record.name] = record.preference
    names = list(by_name)
    rng.shuffle(names)
    return sorted(names, key=by_name.__getitem__)  # a stable sort keeps the shuffle in ties


def cache_ttl(ttl: float, floor: float, ceiling: float) -> float:
    """How long to keep a DNS answer: its TTL, but never below ``floor`` (a zero TTL would
    mean one query per message) nor above ``ceiling`` (a moved MX is noticed in time)."""
    return max(floor, min(ceiling, ttl))


def is_throttle(code: int | None, detail: str) -> bool:
    """421 (service not available, closing) or a 4.7.x enhanced status (rate limited,
    reputation, greylisting by policy): the domain wants us to send more slowly."""
    if code == 421:
        return True
    return code is not None and 400 <= code < 500 and bool(THROTTLE_STATUS.match(detail))


@dataclass(frozen=True, slots=True)
class Backoff:
    until: float  # monotonic seconds: sends to the domain are deferred until then
    strikes: int  # throttling replies in a row (successes reset it)


def window(strikes: int, now: float, base: float, ceiling: float) -> Backoff:
    """The window after the ``strikes``-th throttling reply in a row: ``base`` seconds,
    doubled for each strike before it, at most ``ceiling``."""
    return Backoff(now + min(ceiling, base * 2 ** min(strikes - 1, 30)), strikes)


def throttled(previous: Backoff | None, now: float, base: float, ceiling: float) -> Backoff:
    """The window after a throttling reply, by this sender's own strikes. Replies to
    sends that were already in flight when the window opened do not count as new
    strikes."""
    if previous is not None and now < previous.until:
        return previous
    return window(previous.strikes + 1 if previous is not None else 1, now, base, ceiling)


def held_back(state: Backoff | None, now: float) -> float:
    """Seconds left in the domain's window (0: send)."""
    return max(0.0, state.until - now) if state is not None else 0.0
