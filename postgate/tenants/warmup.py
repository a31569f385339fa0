"""Warm-up of sending domains over the database: which domain a campaign's From is
warming, each day's count per provider group (``warmup_day``, shared by every sender),
the daily review that moves a domain along its ramp, and what a tenant is shown.

The count is taken before a message is sent (a turn), in one transaction per batch and
group, so two senders can never both take the day's last turn; a sender that dies after
taking turns leaves them unused (slower, never over the cap).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Update, func, insert, select, update

from postgate.core import sender_domains as sd
from postgate.core import warmup
from postgate.core.breaker import Window
from postgate.core.clock import aware
from postgate.core.warmup import WarmupState
from postgate.observability.metrics import WARMUP_REVIEWS, WARMUP_WAITING
from postgate.settings import Settings
from postgate.store import day_counts
from postgate.store import tables as t
from postgate.tenants import reputation

log = logging.getLogger("postgate.warmup")
sdc, wd = t.sender_domain.c, t.warmup_day.c
REVIEW_EVERY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Warming:
    """A campaign's From domain while it is on its ramp."""

    domain_id: int
    domain: str
    stage: int
    state: str


def for_from(conn: Connection, tenant_id: int, from_email: str) -> Warming | None:
    """The warming domain that covers ``from_email`` (the one its mail is signed for);
    None when that domain is warm, or the From is not one of the tenant's sender domains."""
    rows = {
        r.domain: r
        for r in conn.execute(
            select(sdc.id, sdc.domain, sdc.warmup_stage, sdc.warmup_state).where(
                sdc.tenant_id == tenant_id, sdc.verified_at.is_not(None)
            )
        )
    }
    domain = sd.covering(from_email.rpartition("@")[2], rows)
    if domain is None or rows[domain].warmup_state == WarmupState.DONE:
        return None
    r = rows[domain]
    return Warming(int(r.id), r.domain, int(r.warmup_stage), r.warmup_state)


def take(engine: Engine, domain_id: int, group: str, now: datetime, want: int, cap: int) -> int:
    """Take up to ``want`` of today's turns of ``group``; how many were granted."""
    key = {"sender_domain_id": domain_id, "group": group, "day": warmup.day_of(now)}
    granted = day_counts.take(engine, t.warmup_day, key, want, cap)
    if granted < want:
        WARMUP_WAITING.labels(group).inc(want - granted)
    return granted


def review_due(engine: Engine, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """Move each warming or held domain whose last review is a day old along its ramp by
    its tenant's figures since that review; each move is audited. The steps taken."""
    schedule = warmup.parse_schedule(settings.warmup_schedule)
    limits = reputation.thresholds(settings)
    steps = []
    with engine.begin() as conn:
        due = conn.execute(
            select(
                sdc.id,
                sdc.tenant_id,
                sdc.domain,
                sdc.warmup_stage,
                sdc.warmup_state,
                sdc.warmup_reviewed_at,
            )
            .where(
                sdc.warmup_state != WarmupState.DONE,
                sdc.verified_at.is_not(None),
                (sdc.warmup_reviewed_at.is_(None)) | (sdc.warmup_reviewed_at <= now - REVIEW_EVERY),
            )
            .with_for_update(skip_locked=True)
        ).all()
        for row in due:
            since = aware(row.warmup_reviewed_at) if row.warmup_reviewed_at else now - REVIEW_EVERY
            window = reputation.measure(conn, row.tenant_id, since, now)
            step = warmup.review(schedule, int(row.warmup_stage), window, limits)
            done = record_step(
                conn,
                update(t.sender_domain).where(sdc.id == row.id),
                row.tenant_id,
                "warmup_reviewed",
                {"domain": row.domain, "from_stage": int(row.warmup_stage)},
                step,
                window,
                now,
            )
            log.info("tenant=%s domain=%s warm-up %s", row.tenant_id, row.domain, done)
            steps.append(done)
    return steps


def record_step(
    conn: Connection,
    target: Update,
    tenant_id: int | None,
    action: str,
    subject: dict[str, Any],
    step: warmup.Step,
    window: Window,
    now: datetime,
) -> dict[str, Any]:
    """Write a review's step to ``target`` (the domain's or address's row), audit it as
    ``action`` and count it; what was done, ``subject`` first."""
    conn.execute(
        target.values(
            warmup_stage=step.stage,
            warmup_state=step.state,
            warmup_reason=step.reason,
            warmup_reviewed_at=now,
        )
    )
    done = subject | {
        "stage": step.stage,
        "state": str(step.state),
        "reason": step.reason,
        "sent": window.sent,
        "complaints": window.complaints,
        "hard_bounces": window.hard_bounces,
    }
    conn.execute(
        insert(t.audit_log).values(
            tenant_id=tenant_id, actor="warmup", action=action, detail=done, created_at=now
        )
    )
    WARMUP_REVIEWS.labels(str(step.state)).inc()
    return done


def status(
    conn: Connection, settings: Settings, tenant_id: int, domain: str, now: datetime
) -> dict[str, Any]:
    """A domain's place on its ramp, today's cap and what each group has used of it."""
    row = conn.execute(
        select(sdc.id, sdc.warmup_state, sdc.warmup_stage, sdc.warmup_reason).where(
            sdc.tenant_id == tenant_id, sdc.domain == sd.normalise(domain)
        )
    ).first()
    if row is None:
        raise LookupError(f"domain {domain!r} is not claimed by this tenant")
    schedule = warmup.parse_schedule(settings.warmup_schedule)
    if row.warmup_state == WarmupState.DONE:
        return {
            "domain": sd.normalise(domain),
            "state": str(WarmupState.DONE),
            "reason": row.warmup_reason,
        }
    used = {
        r.group: int(r.sent)
        for r in conn.execute(
            select(wd.group, wd.sent).where(
                wd.sender_domain_id == row.id, wd.day == warmup.day_of(now)
            )
        )
    }
    return {
        "domain": sd.normalise(domain),
        "state": row.warmup_state,
        "stage": int(row.warmup_stage),
        "stages": len(schedule),
        "cap_per_group_today": warmup.cap(schedule, int(row.warmup_stage)),
        "sent_today": used,
        "resets_at": warmup.next_day(now).isoformat(),
        "reason": row.warmup_reason,
    }


def set_stage(
    engine: Engine, tenant_id: int, domain: str, stage: int | None, actor: str, now: datetime
) -> None:
    """An operator's word: put a domain at ``stage`` of its ramp, or (None) call it warm."""
    target = update(t.sender_domain).where(
        sdc.tenant_id == tenant_id, sdc.domain == sd.normalise(domain)
    )
    audit = {"tenant_id": tenant_id, "action": "warmup_set", "detail": {"domain": domain}}
    if not put_at(engine, target, stage, actor, now, audit):
        raise LookupError(f"domain {domain!r} is not claimed by this tenant")


def put_at(
    engine: Engine,
    target: Update,
    stage: int | None,
    actor: str,
    now: datetime,
    audit: dict[str, Any],
) -> bool:
    """Put the row ``target`` at ``stage`` of its ramp, or (None) call it warm, audited
    as ``audit`` says (its detail gets the stage); False when there is no such row."""
    values: dict[str, Any] = (
        {"warmup_state": WarmupState.DONE, "warmup_reason": f"declared warm by {actor}"}
        if stage is None
        else {
            "warmup_state": WarmupState.WARMING,
            "warmup_stage": stage,
            "warmup_reason": f"set to stage {stage} by {actor}",
        }
    )
    with engine.begin() as conn:
        if not conn.execute(target.values(**values, warmup_reviewed_at=now)).rowcount:
            return False
        detail = audit["detail"] | {"stage": stage}
        conn.execute(
            insert(t.audit_log).values(**audit | {"detail": detail}, actor=actor, created_at=now)
        )
    return True


def warming(conn: Connection, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """Every domain on its ramp, for the operator page: its stage, today's cap and use,
    the rows its campaigns have waiting for a later day and when the last of them will
    have gone if every later day is clean (at worst all on one provider group)."""
    schedule = warmup.parse_schedule(settings.warmup_schedule)
    tn, d, c = t.tenant.c, t.delivery.c, t.campaign.c
    shown = []
    for row in conn.execute(
        select(sdc.id, sdc.tenant_id, sdc.domain, sdc.warmup_state, sdc.warmup_stage)
        .add_columns(sdc.warmup_reason, tn.slug)
        .join(t.tenant, tn.id == sdc.tenant_id)
        .where(sdc.warmup_state != WarmupState.DONE, sdc.verified_at.is_not(None))
        .order_by(tn.slug, sdc.domain)
    ):
        used = dict(
            conn.execute(
                select(wd.group, wd.sent).where(
                    wd.sender_domain_id == row.id, wd.day == warmup.day_of(now)
                )
            ).all()
        )
        waiting = int(
            conn.scalar(
                select(func.count())
                .select_from(t.delivery)
                .join(t.campaign, c.id == d.campaign_id)
                .where(
                    c.tenant_id == row.tenant_id,
                    d.state == "deferred",
                    d.reason == "warmup_cap",
                    c.from_email.like(f"%@{row.domain}") | c.from_email.like(f"%.{row.domain}"),
                )
            )
            or 0
        )
        cap = warmup.cap(schedule, int(row.warmup_stage))
        left = max(cap - max(used.values(), default=0), 0)
        days = warmup.days_to_send(schedule, int(row.warmup_stage), left, waiting)
        shown.append(
            {
                "tenant": row.slug,
                "domain": row.domain,
                "state": row.warmup_state,
                "stage": int(row.warmup_stage) + 1,
                "stages": len(schedule),
                "cap": cap,
                "sent_today": dict(used),
                "waiting": waiting,
                "finished_by": warmup.day_of(now + timedelta(days=days)) if waiting else "",
                "reason": row.warmup_reason,
            }
        )
    return shown
