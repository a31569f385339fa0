"""The sender's side of warm-up: a batch From a warming domain is split by provider
group, each group takes what is left of today's cap (``tenants/warmup.take``), and the
rest is put off to the next UTC day as deferred rows."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import Engine

from postgate.campaigns import deliveries as store
from postgate.core import warmup
from postgate.settings import Settings
from postgate.tenants import warmup as warmup_store

log = logging.getLogger("postgate.sender")
GroupOf = Callable[[str], Awaitable[str]]


async def no_groups(domain: str) -> str:
    """A provider that knows no provider groups (a smarthost): one cap for every domain."""
    return warmup.ALL_GROUPS


async def split(
    engine: Engine,
    settings: Settings,
    warming: warmup_store.Warming,
    claimed: list[store.Claimed],
    group_of: GroupOf,
    now: datetime,
    tenant: str,
) -> list[store.Claimed]:
    """The rows that may go today; the others are postponed to the next day."""
    cap = warmup.cap(warmup.parse_schedule(settings.warmup_schedule), warming.stage)
    by_group: dict[str, list[store.Claimed]] = defaultdict(list)
    for c in claimed:
        by_group[await group_of(c.recipient.address.rpartition("@")[2].lower())].append(c)
    go: list[store.Claimed] = []
    later: list[int] = []
    for group, rows in by_group.items():
        granted = await asyncio.to_thread(
            warmup_store.take, engine, warming.domain_id, group, now, len(rows), cap
        )
        go += rows[:granted]
        later += [c.recipient.delivery_id for c in rows[granted:]]
        if granted < len(rows):
            log.info(
                "tenant=%s domain=%s group=%s warm-up cap %d reached: %d put off to %s",
                tenant,
                warming.domain,
                group,
                cap,
                len(rows) - granted,
                warmup.next_day(now).isoformat(),
            )
    if later:
        await asyncio.to_thread(
            store.postpone, engine, later, warmup.next_day(now), "warmup_cap", now
        )
    return go
