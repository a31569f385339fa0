"""Traffic shaping for direct-to-MX: which provider group a destination domain is in,
whether a send may go now (the group's and the tenant's pace, suspensions), connection
leases counted against the group's limit, and the automation rules a reply sets off.

The state lives in a :class:`~postgate.providers.throttle.Throttle`: Redis when
``REDIS_URL`` is set (every sender shares it), else this process. A send that may not go
is deferred with a due time (``SendResult.retry_after``), never failed; when the state
cannot be reached it is deferred too (fail closed: slower, never faster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from postgate.core.outcome import Outcome, SendResult
from postgate.core.shaping import (
    BACKOFF,
    DEFAULT,
    Action,
    ActiveAction,
    Group,
    Shaping,
    Stage,
    shaping_key,
)
from postgate.observability.metrics import SHAPING_ACTIONS, SHAPING_DEFERRED
from postgate.providers.mx_policy import MxHost
from postgate.providers.throttle import LocalThrottle, Pace, Throttle, Unavailable
from postgate.providers.throttle_redis import RedisThrottle
from postgate.settings import Settings

log = logging.getLogger("postgate.shaping")
UNAVAILABLE_RETRY_S = 30.0  # a send deferred because the shared state is away: try then


@dataclass(frozen=True, slots=True)
class Started:
    """An automation a reply has just set off (not one already in force): for the audit."""

    action: ActiveAction
    group: str
    tenant: str  # whose message got the reply
    domain: str
    code: int | None
    reply: str


@dataclass(frozen=True, slots=True)
class Place:
    """Where one destination domain stands: its group and the key its limits count by."""

    domain: str
    group: str
    key: str
    limits: Group
    connections: int


def throttle_for(settings: Settings) -> Throttle:
    """Redis when ``REDIS_URL`` is set, else this process's own state."""
    if settings.redis_url:
        return RedisThrottle(settings.redis_url, settings.queue_prefix)
    return LocalThrottle()


class Pacing:
    """One send's turn in its group's bucket: taken once, however many connections the
    send goes through (a reused one may turn out closed and be replaced)."""

    def __init__(self, shaper: Shaper, place: Place, tenant: str) -> None:
        self.shaper, self.place, self.tenant = shaper, place, tenant
        self.taken = False
        self.wanted = False  # another sender waits for a connection: give one back

    async def ready(self) -> SendResult | None:
        if self.taken:
            return None
        deferred, self.wanted = await self.shaper.pace(self.place, self.tenant)
        self.taken = deferred is None
        return deferred


class Shaper:
    def __init__(
        self,
        shaping: Shaping,
        throttle: Throttle,
        default_connections: int,
        rng: random.Random | None = None,
    ) -> None:
        self.shaping = shaping
        self.throttle = throttle
        self.default_connections = default_connections
        self.rng = rng or random.Random()
        self.who = uuid.uuid4().hex  # this sender, as a waiter for connections
        self.leases: dict[str, str] = {}  # lease -> key: this process's open connections
        # told of each automation this process starts (the sender audits them)
        self.on_action: Callable[[Started], Awaitable[None]] | None = None

    def place(self, domain: str, records: list[MxHost]) -> Place:
        hosts = [r.name for r in sorted(records, key=lambda r: r.preference)]
        group = self.shaping.group_of(hosts)
        limits = self.shaping.groups[group]
        return Place(
            domain,
            group,
            shaping_key(group, domain),
            limits,
            limits.connections or self.default_connections,
        )

    def _deferred(self, place: Place, reason: str, after: float, detail: str) -> SendResult:
        SHAPING_DEFERRED.labels(place.group, reason).inc()
        jitter = self.rng.uniform(0, max(1.0, self.shaping.max_wait_s))
        return SendResult(Outcome.DEFERRED, None, detail, retry_after=after + jitter)

    async def admit(self, place: Place, tenant: str) -> SendResult | None:
        """Before a connection slot is taken: the suspensions, and the tenant's turn under
        its share (waited for, at most ``max_wait_s``). None: go on; else the deferral."""
        deferred, _ = await self._turn(place, tenant, Stage.TENANT)
        return deferred

    async def pace(self, place: Place, tenant: str) -> tuple[SendResult | None, bool]:
        """With a connection in hand: the group's turn (waited for), or the deferral; and
        whether another sender waits for one of the group's connections."""
        return await self._turn(place, tenant, Stage.GROUP)

    async def _turn(
        self, place: Place, tenant: str, stage: Stage
    ) -> tuple[SendResult | None, bool]:
        pace = Pace(
            place.limits.rate,
            place.limits.burst,
            place.limits.tenant_share,
            self.shaping.max_wait_s,
        )
        try:
            turn = await self.throttle.turn(place.key, tenant, pace, stage, self.who)
        except Unavailable as exc:
            return self.unavailable(place, exc), False
        if turn.wait is None:
            where = (
                f"provider group {place.group}"
                if place.group != DEFAULT
                else f"{place.domain} (no provider group)"
            )
            what = {
                "rate": f"over the pace of {where}"
                + (" for this tenant" if stage is Stage.TENANT else ""),
                "suspend": f"{where} is suspended",
                "suspend_tenant": f"this tenant is suspended on {where}",
            }.get(turn.why, turn.why)
            return self._deferred(
                place, turn.why, turn.retry_after, f"{what}: deferred {turn.retry_after:.0f}s"
            ), turn.wanted
        if turn.wait > 0:
            await asyncio.sleep(turn.wait)
        return None, turn.wanted

    async def wanted(self, keys: list[str]) -> set[str]:
        """Keys another sender waits for a connection to (none if the state is away)."""
        try:
            return await self.throttle.wanted(keys, self.who) if keys else set()
        except Unavailable:
            return set()

    def held(self, key: str) -> int:
        """How many of ``key``'s connections this process holds."""
        return sum(1 for k in self.leases.values() if k == key)

    async def lease(self, place: Place) -> str | None:
        """A lease for one more connection to the group, None when all are taken."""
        lease = await self.throttle.lease(
            place.key, place.connections, self.shaping.lease_s, self.who
        )
        if lease is not None:
            self.leases[lease] = place.key
        return lease

    def connections_full(self, place: Place) -> SendResult:
        return self._deferred(
            place,
            "connections",
            self.shaping.max_wait_s,
            f"provider group {place.group} has all its {place.connections} connections open",
        )

    def unavailable(self, place: Place, exc: Unavailable) -> SendResult:
        return self._deferred(place, "unavailable", UNAVAILABLE_RETRY_S, str(exc))

    async def release(self, lease: str) -> None:
        key = self.leases.pop(lease, None)
        if key is not None:
            with contextlib.suppress(Unavailable):  # it lapses by itself after lease_s
                await self.throttle.release(key, lease)

    async def renew(self) -> None:
        """Keep this process's connections counted (every ``lease_s`` / 3)."""
        try:
            await self.throttle.renew(
                [(key, lease) for lease, key in self.leases.items()], self.shaping.lease_s
            )
        except Unavailable as exc:
            log.warning("connection leases not renewed: %s", exc)

    async def learn(self, place: Place, tenant: str, result: SendResult) -> bool:
        """Act on a reply a rule matches; True when one did (whether or not its action was
        already in force)."""
        rule = self.shaping.rule_for(place.group, result.code, result.detail)
        if rule is None:
            return False
        action = ActiveAction(
            place.key,
            rule.action,
            rule.name,
            time.time() + rule.minutes * 60,
            tenant if rule.action is Action.SUSPEND_TENANT else "",
            rule.factor if rule.action is Action.SLOW else 1.0,
        )
        try:
            started = await self.throttle.act(action)
        except Unavailable as exc:
            log.error("shaping rule %s not applied to %s: %s", rule.name, place.key, exc)
            return True
        if started:
            SHAPING_ACTIONS.labels(place.group, rule.name, rule.action.value).inc()
            if self.on_action is not None:
                news = Started(
                    action, place.group, tenant, place.domain, result.code, result.detail
                )
                try:
                    await self.on_action(news)
                except Exception:  # the audit is not worth a send
                    log.exception("shaping action %s not audited", rule.name)
            log.warning(
                "shaping: rule=%s action=%s group=%s key=%s tenant=%s for %.0f min "
                "after %s %s from %s",
                rule.name,
                rule.action.value,
                place.group,
                place.key,
                tenant or "-",
                rule.minutes,
                result.code,
                result.detail,
                place.domain,
            )
        return True

    async def hold(self, place: Place, seconds: float) -> None:
        """Suspend the key for every sender while a backoff window opened here lasts (a
        421 or 4.7.x that no rule matched: rule ``backoff``); not audited, it is routine."""
        action = ActiveAction(place.key, Action.SUSPEND, BACKOFF, time.time() + seconds)
        try:
            started = await self.throttle.act(action)
        except Unavailable as exc:
            log.error("backoff of %s not shared: %s", place.key, exc)
            return
        if started:
            SHAPING_ACTIONS.labels(place.group, BACKOFF, Action.SUSPEND.value).inc()

    async def strike(self, place: Place, forget_s: float) -> int | None:
        """The key's strikes in a row counted for every sender (``Throttle.strike``: 0 when
        a suspension is in force already); None when the shared state is unreachable."""
        try:
            return await self.throttle.strike(place.key, forget_s)
        except Unavailable as exc:
            log.error("strikes of %s not shared: %s", place.key, exc)
            return None

    async def forgive(self, place: Place) -> None:
        try:
            await self.throttle.forgive(place.key)
        except Unavailable as exc:
            log.error("strikes of %s not reset: %s", place.key, exc)

    async def active(self) -> list[ActiveAction]:
        return await self.throttle.active()

    async def close(self) -> None:
        for lease in list(self.leases):
            await self.release(lease)
        await self.throttle.close()
