"""The sender's side of source-address warm-up: with ``MX_SOURCES`` configured, every
email row of a batch is given the source address its connection is made from
(``Claimed.source``; the MX provider binds to it).

Per provider group, promotional rows first fill what is left of today's cap of each
warming address (``platform/source_warmup.take``: so a new address ramps up), the rest
goes round-robin over the warm addresses; with no warm address, what the caps do not
cover is put off to the next UTC day as deferred rows (``source_warmup_cap``).
Transactional mail takes no turns and never waits: it goes from the warm addresses, or,
while every address is warming, from any of them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Engine

from postgate.campaigns import deliveries as store
from postgate.core import warmup
from postgate.core.states import Kind
from postgate.platform import source_warmup
from postgate.settings import Settings
from postgate.workers.warmup_turns import GroupOf

log = logging.getLogger("postgate.sender")
REFRESH_S = 5.0  # how often the addresses' states are re-read (a review moves them daily)


class SourcePlan:
    def __init__(
        self, engine: Engine, settings: Settings, configured: Sequence[tuple[str, bool]]
    ) -> None:
        self.engine, self.settings = engine, settings
        self.configured = list(configured)
        self.sources: list[source_warmup.Source] = []
        self.read_at = 0.0
        self.turn = itertools.count()

    async def start(self, now: datetime) -> None:
        self.sources = await asyncio.to_thread(
            source_warmup.enrol, self.engine, self.configured, now
        )
        self.read_at = time.monotonic()

    async def _fresh(self) -> list[source_warmup.Source]:
        if time.monotonic() - self.read_at > REFRESH_S:
            addresses = [a for a, _ in self.configured]
            self.sources = await asyncio.to_thread(source_warmup.current, self.engine, addresses)
            self.read_at = time.monotonic()
        return self.sources

    async def assign(
        self,
        claimed: list[store.Claimed],
        kind: str,
        group_of: GroupOf,
        now: datetime,
        tenant: str,
    ) -> list[store.Claimed]:
        """The rows that go now, each with its source address; the others put off."""
        sources = await self._fresh()
        if not sources:
            return claimed
        warm = [s.address for s in sources if not s.warming] or (
            [s.address for s in sources] if kind != Kind.PROMOTIONAL else []
        )
        if kind != Kind.PROMOTIONAL:
            return [self._rotate(c, warm) for c in claimed]
        by_group: dict[str, list[store.Claimed]] = defaultdict(list)
        for c in claimed:
            by_group[await group_of(c.recipient.address.rpartition("@")[2].lower())].append(c)
        go: list[store.Claimed] = []
        later: list[int] = []
        schedule = warmup.parse_schedule(self.settings.warmup_schedule)
        for group, rows in by_group.items():
            for source in (s for s in sources if s.warming):
                if not rows:
                    break
                cap = warmup.cap(schedule, source.stage)
                granted = await asyncio.to_thread(
                    source_warmup.take, self.engine, source.address, group, now, len(rows), cap
                )
                go += [replace(c, source=source.address) for c in rows[:granted]]
                rows = rows[granted:]
            if warm:
                go += [self._rotate(c, warm) for c in rows]
            elif rows:
                later += [c.recipient.delivery_id for c in rows]
                log.info(
                    "tenant=%s group=%s every source address is warming and at its cap: "
                    "%d put off to %s",
                    tenant,
                    group,
                    len(rows),
                    warmup.next_day(now).isoformat(),
                )
        if later:
            await asyncio.to_thread(
                store.postpone, self.engine, later, warmup.next_day(now), "source_warmup_cap", now
            )
        return go

    def _rotate(self, claimed: store.Claimed, addresses: list[str]) -> store.Claimed:
        return replace(claimed, source=addresses[next(self.turn) % len(addresses)])
