"""A tenant's reputation, measured from the database, and the breaker's trips.

Counts come from durable rows (deliveries and feedback events), so a restarted worker
or Redis loses nothing. ``check`` locks the tenant row while it decides, so two
workers evaluating the same tenant at once cannot trip it twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, or_, select

from postgate.core import breaker
from postgate.core.bounce_reasons import BounceReason
from postgate.core.clock import aware
from postgate.core.states import BlockSource, FeedbackKind
from postgate.core.states import DeliveryState as S
from postgate.observability.metrics import BREAKER_TRIPS
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.tenants import sending as sending_blocks

log = logging.getLogger("postgate.breaker")
d, e, b = t.delivery.c, t.feedback_event.c, t.sending_block.c


def thresholds(settings: Settings) -> breaker.Thresholds:
    return breaker.Thresholds(
        complaint_rate=settings.breaker_complaint_rate,
        hard_bounce_rate=settings.breaker_hard_bounce_rate,
        policy_block_rate=settings.breaker_policy_block_rate,
        auth_failure_rate=settings.breaker_auth_failure_rate,
        min_volume=settings.breaker_min_volume,
        window=timedelta(days=settings.breaker_window_days),
        repeat=timedelta(days=settings.breaker_repeat_days),
    )


def measure(conn: Connection, tenant_id: int, start: datetime, end: datetime) -> breaker.Window:
    """One tenant's window: sent (accepted or rejected at send time), delivered, and the
    deliveries complained about, hard-bounced, refused by policy or for failed
    authentication (each counted once per kind)."""
    return _windows(conn, start, end, tenant_id).get(
        tenant_id, breaker.Window(start, end, 0, 0, 0, 0)
    )


def measure_all(conn: Connection, start: datetime, end: datetime) -> dict[int, breaker.Window]:
    """Every tenant's window at once, in four grouped queries (the operator page re-reads
    them every few seconds). Tenants with nothing in the window are absent."""
    return _windows(conn, start, end)


def _windows(
    conn: Connection, start: datetime, end: datetime, tenant_id: int | None = None
) -> dict[int, breaker.Window]:
    def grouped(query: Any, column: Any) -> dict[int, int]:
        if tenant_id is not None:
            query = query.where(column == tenant_id)
        return {
            int(tid): int(n) for tid, n in conn.execute(query.group_by(column)) if tid is not None
        }

    delivered = grouped(
        select(d.tenant_id, func.count()).where(d.state == S.SENT, d.sent_at >= start), d.tenant_id
    )
    rejected = grouped(
        select(d.tenant_id, func.count()).where(
            d.state == S.FAILED, d.reason == "smtp_rejected", d.updated_at >= start
        ),
        d.tenant_id,
    )

    def distinct(*when: Any) -> Any:  # deliveries (else events) the condition holds for
        return func.count(func.distinct(case((and_(*when), func.coalesce(e.delivery_id, e.id)))))

    bounce = e.kind == FeedbackKind.BOUNCE
    query = select(
        e.tenant_id,
        distinct(e.kind == FeedbackKind.COMPLAINT),
        distinct(bounce, e.hard.is_(True)),
        distinct(bounce, e.reason == BounceReason.POLICY_BLOCK),
        distinct(bounce, e.reason == BounceReason.AUTH_FAILURE),
    ).where(
        e.created_at >= start,
        e.tenant_id.is_not(None),
        e.kind.in_((FeedbackKind.COMPLAINT, FeedbackKind.BOUNCE)),
    )
    if tenant_id is not None:
        query = query.where(e.tenant_id == tenant_id)
    feedback = {
        int(row[0]): tuple(int(n) for n in row[1:])
        for row in conn.execute(query.group_by(e.tenant_id))
        if any(row[1:])
    }
    none = (0, 0, 0, 0)
    return {
        tid: breaker.Window(
            start,
            end,
            delivered.get(tid, 0) + rejected.get(tid, 0),
            delivered.get(tid, 0),
            *feedback.get(tid, none),
        )
        for tid in delivered.keys() | rejected.keys() | feedback.keys()
    }


WHY = {
    breaker.TripReason.COMPLAINT_RATE: "recipients report its mail as spam",
    breaker.TripReason.HARD_BOUNCE_RATE: "its lists hold dead addresses",
    breaker.TripReason.AUTH_FAILURE_RATE: "receivers refuse its mail for failed SPF/DKIM/DMARC",
    breaker.TripReason.POLICY_BLOCK_RATE: "receivers refuse its mail as spam or by policy",
}


def explain(reason: breaker.TripReason, window: breaker.Window) -> str:
    """The block's reason as an operator reads it: which rate, what it means, the counts."""
    return (
        f"circuit breaker: {reason} ({WHY[reason]}): {window.complaints}/{window.delivered} "
        f"complaints, {window.hard_bounces}/{window.sent} hard bounces, "
        f"{window.policy_blocks}/{window.sent} policy blocks, {window.auth_failures}/"
        f"{window.sent} authentication failures since {window.start.isoformat(timespec='seconds')}"
    )


def check(engine: Engine, settings: Settings, tenant_id: int, now: datetime) -> breaker.Trip | None:
    """Measure the tenant's window and trip the breaker when the policy says so."""
    limits = thresholds(settings)
    with engine.begin() as conn:
        locked = select(t.tenant.c.slug).where(t.tenant.c.id == tenant_id)
        if conn.dialect.name == "postgresql":
            locked = locked.with_for_update()
        slug = conn.scalar(locked)
        if slug is None:
            return None
        breaker_blocks = conn.execute(
            select(b.created_at, b.cleared_at).where(
                b.tenant_id == tenant_id,
                b.source == BlockSource.BREAKER,
                or_(b.cleared_at.is_(None), b.created_at >= now - limits.repeat),
            )
        ).all()
        last_cleared = max((aware(r[1]) for r in breaker_blocks if r[1] is not None), default=None)
        start = breaker.window_start(now, limits, last_cleared)
        window = measure(conn, tenant_id, start, now)
        trip = breaker.evaluate(
            window,
            limits,
            sending_blocks.active_scopes(conn, tenant_id),
            [aware(r[0]) for r in breaker_blocks],
            now,
        )
        if trip is None:
            return None
        why = explain(trip.reason, window)
        for scope in trip.scopes:
            sending_blocks.add_block(
                conn, tenant_id, scope, BlockSource.BREAKER, why, "breaker", trip.detail, now
            )
    BREAKER_TRIPS.labels(
        slug, trip.reason, "suspended" if trip.escalated else "bulk_disabled"
    ).inc()
    log.error(
        "OPERATOR: tenant %s %s by the circuit breaker: %s",
        slug,
        "suspended" if trip.escalated else "bulk email disabled",
        trip.detail,
    )
    return trip


class BreakerWatch:
    """Re-evaluates the tenants that received bounces or complaints since the last look
    (including 5xx replies recorded by senders); run by the sweeper.

    It looks back by time, not by id: ids are taken when a transaction inserts but become
    visible when it commits, so an id cursor would skip a slow transaction's events.
    """

    LOOKBACK = timedelta(seconds=30)  # longer than any feedback transaction takes to commit

    def __init__(self) -> None:
        self.last: datetime | None = None

    def check(self, engine: Engine, settings: Settings, now: datetime) -> list[int]:
        since = (
            self.last - self.LOOKBACK
            if self.last is not None
            else now - timedelta(days=settings.breaker_window_days)
        )
        with engine.connect() as conn:
            tenants = list(
                conn.scalars(
                    select(e.tenant_id)
                    .where(
                        e.created_at >= since,
                        e.tenant_id.is_not(None),
                        e.kind.in_((FeedbackKind.BOUNCE, FeedbackKind.COMPLAINT)),
                    )
                    .distinct()
                )
            )
        self.last = now
        return [
            tenant_id
            for tenant_id in tenants
            if check(engine, settings, tenant_id, now) is not None
        ]
