"""The planner: campaign.v1 message -> campaign row -> gated delivery rows -> send batches."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, or_, select, update

from postgate.campaigns import canary
from postgate.campaigns.accept import accept, judged
from postgate.consent import audience
from postgate.core.clock import utcnow
from postgate.core.gate import GateCampaign, gate
from postgate.core.message import parse_campaign
from postgate.core.states import CampaignState, DeliveryState
from postgate.observability.metrics import BLOCKED, PLANNED
from postgate.runtime.broker import Broker
from postgate.runtime.publish import publish_batches
from postgate.runtime.runner import Runner
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.store.dialect import insert_ignore
from postgate.tenants import preflight

log = logging.getLogger("postgate.planner")


@dataclass
class PlanReport:
    campaign_id: int
    queued: int = 0
    blocked: Counter[str] | None = None


def take_lease(engine: Engine, settings: Settings, campaign_id: int) -> bool:
    """Become the one planner of a campaign in ``planning``: true unless another planner's
    lease is still running. The lease is renewed with every page; a planner that dies
    leaves it to run out, and the sweeper then plans the campaign again."""
    c, now = t.campaign.c, utcnow()
    with engine.begin() as conn:
        return bool(
            conn.execute(
                update(t.campaign)
                .where(
                    c.id == campaign_id,
                    c.state == CampaignState.PLANNING,
                    or_(c.plan_lease_until.is_(None), c.plan_lease_until < now),
                )
                .values(plan_lease_until=now + timedelta(seconds=settings.plan_lease_s))
            ).rowcount
        )


def abandoned(engine: Engine, settings: Settings, now: datetime) -> list[int]:
    """Campaigns left in ``planning`` by a planner that died: its lease ran out, or it
    died before it took one."""
    c = t.campaign.c
    before = now - timedelta(seconds=settings.plan_lease_s)
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(c.id)
                .where(
                    c.state == CampaignState.PLANNING,
                    or_(
                        c.plan_lease_until < now,
                        and_(c.plan_lease_until.is_(None), c.created_at < before),
                    ),
                )
                .order_by(c.id)
            )
        )


def plan_campaign(
    engine: Engine, broker: Broker, settings: Settings, campaign_id: int
) -> PlanReport:
    """Gate the audience page by page and write one delivery row per recipient.

    Safe to run again after a crash: rows already written are kept (insert-or-ignore),
    queued rows are published again, and the sender's row guards make that harmless.
    """
    c = t.campaign.c
    with engine.connect() as conn:
        row = conn.execute(
            select(c.tenant_id, c.channel, c.topic, c.kind, c.list_ids, c.state, t.tenant.c.slug)
            .join(t.tenant, t.tenant.c.id == c.tenant_id)
            .where(c.id == campaign_id)
        ).one()
    tenant_id, channel, topic, kind, list_ids, state, slug = row
    report = PlanReport(campaign_id, blocked=Counter())
    if state != CampaignState.PLANNING or not take_lease(engine, settings, campaign_id):
        return report  # not to plan, or a live planner is at it
    spec = audience.AudienceSpec(tenant_id, channel, topic, tuple(list_ids))
    policy = GateCampaign(tenant_id=tenant_id, kind=kind)
    canary_left = canary.first_slice(engine, settings, tenant_id, kind, list_ids)
    after = 0
    while True:
        now = utcnow()
        with engine.begin() as conn:
            leased = conn.execute(
                update(t.campaign)
                .where(c.id == campaign_id, c.state != CampaignState.CANCELLED)
                .values(plan_lease_until=now + timedelta(seconds=settings.plan_lease_s))
            ).rowcount
            if not leased:  # cancelled meanwhile: plan no more of its audience
                log.info("campaign %s (%s) cancelled while planning: stopped", campaign_id, slug)
                break
            recipients = audience.page(conn, spec, after, settings.page_size, now)
            if not recipients:
                break
            rows = []
            for recipient, reason in gate(policy, recipients, now):
                held = canary_left is not None and not reason and canary_left <= 0
                if canary_left is not None and not reason:
                    canary_left -= 1
                rows.append(
                    {
                        "tenant_id": tenant_id,
                        "campaign_id": campaign_id,
                        "contact_id": recipient.contact_id,
                        "address": recipient.address or "",
                        "state": DeliveryState.BLOCKED
                        if reason
                        else (DeliveryState.HELD if held else DeliveryState.QUEUED),
                        "reason": reason.value
                        if reason
                        else (canary.CANARY_HELD if held else None),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                if reason:
                    report.blocked[reason.value] += 1  # type: ignore[index]
                    BLOCKED.labels(slug, channel, reason.value).inc()
            insert_ignore(conn, t.delivery, rows, ("campaign_id", "contact_id"))
            first, after = after, recipients[-1].contact_id
            d = t.delivery.c
            # this page's rows by the (campaign_id, contact_id) key range: the state is
            # filtered here, not in SQL, so the unique index serves the query at any size
            queued = sorted(
                row.id
                for row in conn.execute(
                    select(d.id, d.state).where(
                        d.campaign_id == campaign_id, d.contact_id > first, d.contact_id <= after
                    )
                )
                if row.state == DeliveryState.QUEUED
            )
        publish_batches(broker, campaign_id, queued, settings.batch_size)
        report.queued += len(queued)
        PLANNED.labels(slug, channel).inc(len(rows))
    with engine.begin() as conn:  # a campaign paused meanwhile stays paused
        conn.execute(
            update(t.campaign)
            .where(c.id == campaign_id)
            .values(planned_at=utcnow(), plan_lease_until=None)
        )
        conn.execute(
            update(t.campaign)
            .where(c.id == campaign_id, c.state == CampaignState.PLANNING)
            .values(state=CampaignState.SENDING)
        )
    log.info(
        "campaign %s (%s) planned: %s queued, blocked %s",
        campaign_id,
        slug,
        report.queued,
        dict(report.blocked or {}),
    )
    return report


class Planner(Runner):
    queue = "campaigns"

    async def dispose(self, body: bytes) -> None:
        await asyncio.to_thread(self.handle, body)

    def handle(self, body: bytes) -> None:
        settings = self.ctx.settings
        msg = parse_campaign(body, settings.max_message_bytes)
        if settings.preflight_enforce and judged(msg):  # DNS, outside the transaction
            preflight.first_checks(self.ctx.engine, settings, msg.tenant, utcnow())
        with self.ctx.engine.begin() as conn:
            accepted = accept(conn, msg, utcnow(), settings.lexicon_dir, settings.preflight_enforce)
        log.info(
            "campaign %s/%s accepted as %s (%s)",
            msg.tenant,
            msg.campaign_id,
            accepted.campaign_id,
            accepted.state,
        )
        if accepted.state == CampaignState.PLANNING:
            plan_campaign(self.ctx.engine, self.broker, settings, accepted.campaign_id)
