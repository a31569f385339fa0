"""Where shaping state lives: a group's pace (its buckets), its connection leases and the
automations in force. :class:`LocalThrottle` keeps them in this process (embedded
defaults, one sender); ``throttle_redis.RedisThrottle`` keeps them in Redis so they hold
across every sender process and machine. Both answer alike."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from postgate.core.shaping import Action, ActiveAction, Stage, Turn, next_turn, taken

WANT_S = 1.0  # a sender refused a lease stays a waiter this long after it last asked


class Unavailable(Exception):
    """The shared state cannot be reached: the send is deferred (fail closed)."""


@dataclass(frozen=True, slots=True)
class Pace:
    rate: float  # messages per second for the whole group (0: no limit)
    burst: int
    share: float  # of ``rate``, for one tenant
    max_wait: float


class Throttle(Protocol):
    async def turn(self, key: str, tenant: str, pace: Pace, stage: Stage, who: str) -> Turn:
        """At ``Stage.TENANT`` the suspensions and the tenant's share, at ``Stage.GROUP``
        the suspensions and the group's rate (both slowed by a ``slow`` in force); the
        turn is ``wanted`` when a sender other than ``who`` waits for a connection."""
        ...

    async def lease(self, key: str, limit: int, ttl: float, who: str) -> str | None:
        """A lease on one of ``limit`` connections for sender ``who``. Refused, ``who``
        becomes a waiter (for ``WANT_S``); a free connection goes to waiters first."""
        ...

    async def wanted(self, keys: list[str], who: str) -> set[str]:
        """Those of ``keys`` that a sender other than ``who`` waits for."""
        ...

    async def renew(self, leases: list[tuple[str, str]], ttl: float) -> None: ...

    async def release(self, key: str, lease: str) -> None: ...

    async def act(self, action: ActiveAction) -> bool:
        """Start ``action`` unless one like it is in force; True when it started."""
        ...

    async def active(self) -> list[ActiveAction]: ...

    async def strike(self, key: str, forget_s: float) -> int:
        """One more throttling reply for ``key`` that no rule matched, counted for every
        sender: the strikes in a row with this one, or 0 when a suspension of the key is
        in force already (a reply to a send made before it began: not a new strike). The
        count lapses ``forget_s`` after the last strike."""
        ...

    async def forgive(self, key: str) -> None:
        """A success after throttling: the strikes of ``key`` start over."""
        ...

    async def close(self) -> None: ...


def action_id(action: ActiveAction) -> tuple[str, str, str]:
    return (action.key, action.action.value, action.tenant)


def bucket_of(key: str, tenant: str, pace: Pace, stage: Stage) -> tuple[str, float]:
    """The bucket a stage paces by and its rate before any slow-down (0: none)."""
    if stage is Stage.GROUP:
        return key, pace.rate
    return f"{key}|{tenant}", pace.rate * pace.share if pace.share < 1 else 0.0


class LocalThrottle:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.tats: dict[str, float] = {}
        self.leases: dict[str, dict[str, float]] = {}  # key -> lease -> expires
        self.waiters: dict[str, dict[str, float]] = {}  # key -> sender -> waits until
        self.actions: dict[tuple[str, str, str], ActiveAction] = {}
        self.strikes: dict[str, tuple[int, float]] = {}  # key -> (strikes, forgotten at)

    def _in_force(self, key: str, action: Action, tenant: str = "") -> ActiveAction | None:
        found = self.actions.get((key, action.value, tenant))
        if found is not None and found.until <= self.clock():
            del self.actions[(key, action.value, tenant)]
            return None
        return found

    def _others(self, key: str, who: str) -> int:
        now = self.clock()
        waiting = {w: t for w, t in self.waiters.get(key, {}).items() if t > now}
        if waiting:
            self.waiters[key] = waiting
        else:  # nothing kept for the many destinations no one waits for
            self.waiters.pop(key, None)
        return len(waiting) - (who in waiting)

    async def turn(self, key: str, tenant: str, pace: Pace, stage: Stage, who: str) -> Turn:
        now = self.clock()
        for action, who in ((Action.SUSPEND, ""), (Action.SUSPEND_TENANT, tenant)):
            if (held := self._in_force(key, action, who)) is not None:
                return Turn(None, held.until - now, action.value)
        wanted = stage is Stage.GROUP and self._others(key, who) > 0
        bucket, rate = bucket_of(key, tenant, pace, stage)
        if rate <= 0:
            return Turn(0.0, wanted=wanted)
        if (slow := self._in_force(key, Action.SLOW)) is not None:
            rate *= slow.factor
        at = next_turn(self.tats.get(bucket, 0.0), now, rate, pace.burst)
        if at - now > pace.max_wait:
            return Turn(None, at - now, "rate", wanted)
        self.tats[bucket] = taken(self.tats.get(bucket, 0.0), now, rate)
        return Turn(at - now, wanted=wanted)

    async def lease(self, key: str, limit: int, ttl: float, who: str) -> str | None:
        now = self.clock()
        held = {k: v for k, v in self.leases.get(key, {}).items() if v > now}
        self.leases[key] = held
        free, others = limit - len(held), self._others(key, who)
        waiting = who in self.waiters.get(key, {})
        if free <= 0 or (not waiting and others >= free):
            self.waiters.setdefault(key, {})[who] = now + WANT_S
            return None
        if waiting:
            self.waiters[key].pop(who)
        lease = uuid.uuid4().hex
        held[lease] = now + ttl
        return lease

    async def wanted(self, keys: list[str], who: str) -> set[str]:
        return {k for k in keys if self._others(k, who) > 0}

    async def renew(self, leases: list[tuple[str, str]], ttl: float) -> None:
        until = self.clock() + ttl
        for key, lease in leases:
            if lease in self.leases.get(key, {}):
                self.leases[key][lease] = until

    async def release(self, key: str, lease: str) -> None:
        held = self.leases.get(key, {})
        held.pop(lease, None)
        if not held:
            self.leases.pop(key, None)

    async def act(self, action: ActiveAction) -> bool:
        if self._in_force(action.key, action.action, action.tenant) is not None:
            return False
        self.actions[action_id(action)] = action
        return True

    async def active(self) -> list[ActiveAction]:
        now = self.clock()
        self.actions = {k: a for k, a in self.actions.items() if a.until > now}
        return sorted(self.actions.values(), key=lambda a: (a.key, a.action, a.tenant))

    async def strike(self, key: str, forget_s: float) -> int:
        now = self.clock()
        if self._in_force(key, Action.SUSPEND) is not None:
            return 0
        count, lapses = self.strikes.get(key, (0, 0.0))
        count = count + 1 if lapses > now else 1
        self.strikes[key] = (count, now + forget_s)
        return count

    async def forgive(self, key: str) -> None:
        self.strikes.pop(key, None)

    async def close(self) -> None:
        return None
