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

WANT_S = 1.0  # a refused lease asks the holders to give a connection back for this long


class Unavailable(Exception):
    """The shared state cannot be reached: the send is deferred (fail closed)."""


@dataclass(frozen=True, slots=True)
class Pace:
    rate: float  # messages per second for the whole group (0: no limit)
    burst: int
    share: float  # of ``rate``, for one tenant
    max_wait: float


class Throttle(Protocol):
    async def turn(self, key: str, tenant: str, pace: Pace, stage: Stage) -> Turn:
        """At ``Stage.TENANT`` the suspensions and the tenant's share, at ``Stage.GROUP``
        the suspensions and the group's rate (both slowed by a ``slow`` in force)."""
        ...

    async def lease(self, key: str, limit: int, ttl: float) -> str | None:
        """A lease on one of ``limit`` connections; refused, the key is marked wanted."""
        ...

    async def wanted(self, keys: list[str]) -> set[str]:
        """Those of ``keys`` whose connections some sender was refused just now."""
        ...

    async def renew(self, leases: list[tuple[str, str]], ttl: float) -> None: ...

    async def release(self, key: str, lease: str) -> None: ...

    async def act(self, action: ActiveAction) -> bool:
        """Start ``action`` unless one like it is in force; True when it started."""
        ...

    async def active(self) -> list[ActiveAction]: ...

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
        self.wants: dict[str, float] = {}  # key -> until when a refused lease wants one
        self.actions: dict[tuple[str, str, str], ActiveAction] = {}

    def _in_force(self, key: str, action: Action, tenant: str = "") -> ActiveAction | None:
        found = self.actions.get((key, action.value, tenant))
        if found is not None and found.until <= self.clock():
            del self.actions[(key, action.value, tenant)]
            return None
        return found

    async def turn(self, key: str, tenant: str, pace: Pace, stage: Stage) -> Turn:
        now = self.clock()
        for action, who in ((Action.SUSPEND, ""), (Action.SUSPEND_TENANT, tenant)):
            if (held := self._in_force(key, action, who)) is not None:
                return Turn(None, held.until - now, action.value)
        wanted = stage is Stage.GROUP and self.wants.get(key, 0.0) > now
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

    async def lease(self, key: str, limit: int, ttl: float) -> str | None:
        now = self.clock()
        held = {k: v for k, v in self.leases.get(key, {}).items() if v > now}
        self.leases[key] = held
        if len(held) >= limit:
            self.wants[key] = now + WANT_S
            return None
        self.wants.pop(key, None)
        lease = uuid.uuid4().hex
        held[lease] = now + ttl
        return lease

    async def wanted(self, keys: list[str]) -> set[str]:
        now = self.clock()
        return {k for k in keys if self.wants.get(k, 0.0) > now}

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
