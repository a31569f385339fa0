"""The sweeper: the clock-driven half of the pipeline.

Every ``sweep_interval_s`` it plans scheduled campaigns that fell due and campaigns a
dead planner left in ``planning`` (its lease ran out), republishes
deferred rows whose retry time came, recovers rows whose sending lease expired (a
sender died mid-batch), republishes queued rows whose batch message was lost (a sender
died between taking the message and claiming its rows)
and marks campaigns finished once no row is left to send. Every step claims its rows
with a guarded UPDATE, so any number of sweepers can run.

Beside the sweep, every ``PREFLIGHT_SCAN_S`` it re-runs the authentication preflight of
sender domains whose result is ``PREFLIGHT_INTERVAL_S`` (a day) old, in its own task so
that a slow DNS server never delays the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, exists, select, update

from postgate.campaigns import canary
from postgate.core.clock import utcnow
from postgate.core.states import SENDABLE_CAMPAIGN, CampaignState
from postgate.core.states import DeliveryState as S
from postgate.platform import source_warmup
from postgate.runtime.announce import announce
from postgate.runtime.broker import Broker
from postgate.runtime.context import Context
from postgate.runtime.publish import publish_batches, publisher
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.tenants import preflight, warmup
from postgate.tenants.reputation import BreakerWatch
from postgate.tenants.sending import release_held
from postgate.workers.planner import abandoned, plan_campaign

log = logging.getLogger("postgate.sweeper")
d, c = t.delivery.c, t.campaign.c
SWEEP_LIMIT = 20_000
LATE_HOLD_WINDOW_S = 60.0
PREFLIGHT_SCAN_S = 60.0
OPEN_STATES = (S.QUEUED, S.SENDING, S.DEFERRED, S.HELD)


def _republish(broker: Broker, settings: Settings, rows: list[tuple[int, int]]) -> int:
    by_campaign: dict[int, list[int]] = defaultdict(list)
    for delivery_id, campaign_id in rows:
        by_campaign[campaign_id].append(delivery_id)
    for campaign_id, ids in by_campaign.items():
        publish_batches(broker, campaign_id, sorted(ids), settings.batch_size)
    return len(rows)


def _release_late_holds(engine: Engine, now: datetime) -> list[tuple[int, int]]:
    """Rows a sender held just as an operator re-enabled the tenant would otherwise wait
    for the next re-enable: for a minute after any clear, release what the tenant's
    remaining blocks allow."""
    sb = t.sending_block.c
    with engine.connect() as conn:
        tenants = list(
            conn.scalars(
                select(sb.tenant_id)
                .where(sb.cleared_at >= now - timedelta(seconds=LATE_HOLD_WINDOW_S))
                .distinct()
            )
        )
    return [row for tenant_id in tenants for row in release_held(engine, tenant_id, now)]


def sweep_once(engine: Engine, broker: Broker, settings: Settings, now: datetime) -> dict[str, int]:
    done: dict[str, int] = {}
    with engine.begin() as conn:
        due = list(
            conn.scalars(
                update(t.campaign)
                .where(c.state == CampaignState.SCHEDULED, c.scheduled_at <= now)
                .values(state=CampaignState.PLANNING)
                .returning(c.id)
            )
        )
    for campaign_id in due:
        plan_campaign(engine, broker, settings, campaign_id)
    done["planned"] = len(due)
    replanned = abandoned(engine, settings, now)
    for campaign_id in replanned:  # a planner died mid-way: rows written stay (exactly once)
        log.warning(
            "campaign %s was left in planning by a planner that died; planning it", campaign_id
        )
        plan_campaign(engine, broker, settings, campaign_id)
    done["replanned"] = len(replanned)

    # Queued rows whose batch message is gone (a sender died between taking the message
    # and claiming its rows): soon when the send queue is empty, else after a long wait.
    idle_queue = broker.depth("send") == 0
    orphan_after = settings.orphan_after_s if idle_queue else settings.requeue_queued_after_s
    steps = {
        "retried": and_(d.state == S.DEFERRED, d.next_attempt_at <= now),
        "recovered": and_(d.state == S.SENDING, d.lease_until < now),
        "requeued": and_(d.state == S.QUEUED, d.updated_at < now - timedelta(seconds=orphan_after)),
    }
    sendable = d.campaign_id.in_(select(c.id).where(c.state.in_(SENDABLE_CAMPAIGN)))
    for name, condition in steps.items():
        condition = and_(condition, sendable)
        with engine.begin() as conn:
            ids = select(d.id).where(condition).limit(SWEEP_LIMIT).scalar_subquery()
            rows = conn.execute(
                update(t.delivery)
                .where(d.id.in_(ids), condition)
                .values(state=S.QUEUED, updated_at=now, lease_until=None)
                .returning(d.id, d.campaign_id)
            ).all()
        done[name] = _republish(broker, settings, [(r[0], r[1]) for r in rows])

    with engine.begin() as conn:  # rows of cancelled campaigns that came back from flight
        done["cancelled"] = conn.execute(
            update(t.delivery)
            .where(
                d.state.in_((S.QUEUED, S.DEFERRED, S.HELD)),
                d.campaign_id.in_(select(c.id).where(c.state == CampaignState.CANCELLED)),
            )
            .values(state=S.CANCELLED, reason="campaign_cancelled", updated_at=now)
        ).rowcount
    done["warmup_reviewed"] = len(warmup.review_due(engine, settings, now))
    done["source_warmup_reviewed"] = len(source_warmup.review_due(engine, settings, now))
    publish = publisher(broker, settings.batch_size)
    done["canary"] = len(canary.review(engine, publish, settings, now))
    done["released"] = _republish(broker, settings, _release_late_holds(engine, now))

    with engine.begin() as conn:
        pending = exists().where(d.campaign_id == c.id, d.state.in_(OPEN_STATES))
        finished = conn.execute(
            update(t.campaign)
            .where(c.state == CampaignState.SENDING, ~pending)
            .values(state=CampaignState.FINISHED, finished_at=now)
            .returning(c.id)
        ).all()
    done["finished"] = len(finished)
    if any(done.values()):
        log.info("sweep: %s", done)
    return done


class Sweeper:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.breaker = BreakerWatch()

    def _breaker(self) -> None:
        """Trip tenants whose new bounces or complaints crossed a threshold; tell senders."""
        for tenant_id in self.breaker.check(self.ctx.engine, self.ctx.settings, utcnow()):
            announce(self.ctx.settings, tenant_id)

    async def _preflights(self, stop: asyncio.Event) -> None:
        """Re-check sender domains whose preflight result is a day old."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(
                    preflight.recheck_due, self.ctx.engine, self.ctx.settings, utcnow()
                )
            except Exception:
                log.exception("preflight re-check failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PREFLIGHT_SCAN_S)

    async def run(self, stop: asyncio.Event) -> None:
        broker = self.ctx.broker()
        rechecks = asyncio.create_task(self._preflights(stop))
        try:
            while not stop.is_set():
                try:
                    await asyncio.to_thread(
                        sweep_once, self.ctx.engine, broker, self.ctx.settings, self.ctx.clock()
                    )
                    await asyncio.to_thread(self._breaker)
                except Exception:
                    log.exception("sweep failed; trying again")
                    broker.close()
                    broker = self.ctx.broker()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.ctx.settings.sweep_interval_s)
        finally:
            broker.close()
            rechecks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rechecks
