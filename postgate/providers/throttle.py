"""Where shaping state lives: a group's pace (its bucket), its connection leases and the
automations in force. :class:`LocalThrottle` keeps them in this process (embedded
defaults, one sender); ``throttle_redis.RedisThrottle`` keeps them in Redis so they hold
across every sender process and machine. Both answer alike."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from postgate.core.shaping import Action, ActiveAction, Turn, next_turn, taken


class Unavailable(Exception):
    """The shared state cannot be reached: the send is deferred (fail closed)."""


@dataclass(frozen=True, slots=True)
class Pace:
    rate: float  # messages per second for the whole group (0: no limit)
    burst: int
    share: float  # of ``rate``, for one tenant
    max_wait: float


class Throttle(Protocol):
    async def turn(self, key: str, tenant: str, pace: Pace) -> Turn: ...

    async def lease(self, key: str, limit: int, ttl: float) -> str | None: ...

    async def renew(self, leases: list[tuple[str, str]], ttl: float) -> None: ...

    async def release(self, key: str, lease: str) -> None: ...

    async def act(self, action: ActiveAction) -> bool: ...

    async def active(self) -> list[ActiveAction]: ...

    async def close(self) -> None: ...


def action_id(action: ActiveAction) -> tuple[str, str, str]:
    return (action.key, action.action.value, action.tenant)


class LocalThrottle:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.tats: dict[str, float] = {}
        self.leases: dict[str, dict[str, float]] = {}  # key -> lease -> expires
        self.actions: dict[tuple[str, str, str], ActiveAction] = {}

    def _in_force(self, key: str, action: Action, tenant: str = "") -> ActiveAction | None:
        found = self.actions.get((key, action.value, tenant))
        if found is not None and found.until <= self.clock():
            del self.actions[(key, action.value, tenant)]
            return None
        return found

    async def turn(self, key: str, tenant: str, pace: Pace) -> Turn:
        now = self.clock()
        for action, who in ((Action.SUSPEND, ""), (Action.SUSPEND_TENANT, tenant)):
            if (held := self._in_force(key, action, who)) is not None:
                return Turn(None, held.until - now, action.value)
        if pace.rate <= 0:
            return Turn(0.0)
        slow = self._in_force(key, Action.SLOW)
        rate = pace.rate * (slow.factor if slow is not None else 1.0)
        buckets = [(key, rate)]
        if pace.share < 1:
            buckets.append((f"{key}|{tenant}", rate * pace.share))
        at = max(next_turn(self.tats.get(k, 0.0), now, r, pace.burst) for k, r in buckets)
        if at - now > pace.max_wait:
            return Turn(None, at - now, "rate")
        for k, r in buckets:
            self.tats[k] = taken(self.tats.get(k, 0.0), now, r)
        return Turn(at - now)

    async def lease(self, key: str, limit: int, ttl: float) -> str | None:
        now = self.clock()
        held = {k: v for k, v in self.leases.get(key, {}).items() if v > now}
        self.leases[key] = held
        if len(held) >= limit:
            return None
        lease = uuid.uuid4().hex
        held[lease] = now + ttl
        return lease

    async def renew(self, leases: list[tuple[str, str]], ttl: float) -> None:
        until = self.clock() + ttl
        for key, lease in leases:
            if lease in self.leases.get(key, {}):
                self.leases[key][lease] = until

    async def release(self, key: str, lease: str) -> None:
        self.leases.get(key, {}).pop(lease, None)

    async def act(self, action: ActiveAction) -> bool:
        if self._in_force(action.key, action.action, action.tenant) is not None:
            return False
        self.actions[action_id(action)] = action
        return True

    async def active(self) -> list[ActiveAction]:
        now = self.clock()
        self.actions = {k: a for k, a in self.actions.items() if a.until > now}
        return sorted(self.actions.values(), key=lambda a: (a.key, a.action, a.tenant))

    async def close(self) -> None:
        return None
