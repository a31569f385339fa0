"""Canary sending: a large promotional campaign goes to a small slice first.

The planner queues the first ``canary_fraction`` of a campaign whose audience reaches
``canary_min_audience`` and holds the rest (reason ``canary``). Once the slice has been
sent and ``canary_wait_s`` has passed since planning, the sweeper judges it with the
breaker's rates (no minimum volume: the slice is sized to be meaningful): below the
thresholds the held rows are queued and sent; above, they stay held as
``canary_halted`` (an operator may cancel them), and the halt is audited, logged for the
operator and counted.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from postgate.campaigns.control import Publish
from postgate.core import breaker
from postgate.core.bounce_reasons import BounceReason
from postgate.core.states import DeliveryState as S
from postgate.core.states import FeedbackKind
from postgate.observability.metrics import CANARY
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.tenants import sending as sending_blocks
from postgate.tenants.reputation import thresholds

log = logging.getLogger("postgate.canary")
d, c, e = t.delivery.c, t.campaign.c, t.feedback_event.c
CANARY_HELD, CANARY_HALTED = "canary", "canary_halted"
OPEN = (S.QUEUED, S.SENDING, S.DEFERRED)


def slice_size(audience: int, settings: Settings) -> int | None:
    """How many to send first, or None when the campaign is too small for a canary."""
    if settings.canary_min_audience <= 0 or audience < settings.canary_min_audience:
        return None
    return max(1, math.ceil(audience * settings.canary_fraction))


def first_slice(
    engine: Engine, settings: Settings, tenant_id: int, kind: str, list_ids: list[int]
) -> int | None:
    """The canary slice of a promotional campaign, sized on its lists' membership."""
    if kind != "promotional" or settings.canary_min_audience <= 0:
        return None
    m = t.list_member.c
    with engine.connect() as conn:
        audience = (
            conn.scalar(
                select(func.count(func.distinct(m.contact_id))).where(
                    m.tenant_id == tenant_id, m.list_id.in_(list_ids)
                )
            )
            or 0
        )
    return slice_size(int(audience), settings)


def verdict(window: breaker.Window, limits: breaker.Thresholds) -> str:
    """'continue' or 'halt' for a finished slice (pure)."""
    trip = breaker.evaluate(window, replace(limits, min_volume=0), (), (), window.end)
    return "halt" if trip is not None else "continue"


def measure(conn: Connection, campaign_id: int, start: datetime, end: datetime) -> breaker.Window:
    sent = (
        conn.scalar(
            select(func.count()).where(
                d.campaign_id == campaign_id, d.state.in_((S.SENT, S.FAILED))
            )
        )
        or 0
    )
    delivered = (
        conn.scalar(select(func.count()).where(d.campaign_id == campaign_id, d.state == S.SENT))
        or 0
    )
    ids = select(d.id).where(d.campaign_id == campaign_id)

    def events(*where: Any) -> int:
        return int(
            conn.scalar(
                select(func.count(func.distinct(e.delivery_id))).where(
                    e.delivery_id.in_(ids), *where
                )
            )
            or 0
        )

    return breaker.Window(
        start,
        end,
        int(sent),
        int(delivered),
        events(e.kind == FeedbackKind.COMPLAINT),
        events(e.kind == FeedbackKind.BOUNCE, e.hard.is_(True)),
        events(e.kind == FeedbackKind.BOUNCE, e.reason == BounceReason.POLICY_BLOCK),
        events(e.kind == FeedbackKind.BOUNCE, e.reason == BounceReason.AUTH_FAILURE),
    )


def review(engine: Engine, publish: Publish, settings: Settings, now: datetime) -> dict[int, str]:
    """Judge every canary whose slice is done and whose wait is over; a slice that passes
    hands the rest of its campaign to ``publish``."""
    due = now - timedelta(seconds=settings.canary_wait_s)
    open_rows = select(d.id).where(d.campaign_id == c.id, d.state.in_(OPEN)).exists()
    with engine.connect() as conn:
        campaigns = list(
            conn.execute(
                select(c.id, c.tenant_id, c.planned_at).where(
                    c.planned_at <= due,
                    ~open_rows,
                    select(d.id)
                    .where(d.campaign_id == c.id, d.state == S.HELD, d.reason == CANARY_HELD)
                    .exists(),
                )
            )
        )
    decided = {}
    for campaign_id, tenant_id, planned_at in campaigns:
        with engine.begin() as conn:
            window = measure(conn, campaign_id, planned_at, now)
            outcome = verdict(window, thresholds(settings))
            rows = list(
                conn.scalars(
                    update(t.delivery)
                    .where(d.campaign_id == campaign_id, d.state == S.HELD, d.reason == CANARY_HELD)
                    .values(
                        state=S.QUEUED if outcome == "continue" else S.HELD,
                        reason=None if outcome == "continue" else CANARY_HALTED,
                        updated_at=now,
                    )
                    .returning(d.id)
                )
            )
            detail = {
                "campaign": campaign_id,
                "outcome": outcome,
                "rows": len(rows),
                "sent": window.sent,
                "delivered": window.delivered,
                "complaints": window.complaints,
                "hard_bounces": window.hard_bounces,
            }
            sending_blocks.audit(conn, tenant_id, "canary", f"canary.{outcome}", detail, now)
        if outcome == "continue":
            publish(campaign_id, sorted(rows))
        else:
            log.error(
                "OPERATOR: canary of campaign %s (tenant %s) halted: %s",
                campaign_id,
                tenant_id,
                detail,
            )
        CANARY.labels(outcome).inc()
        decided[campaign_id] = outcome
    return decided
