"""Warm-up of source IP addresses (``MX_SOURCES``) over the database: which addresses a
sender may use and where each stands on its ramp (``source_address``), each day's count
per provider group (``source_day``, shared by every sender), and the daily review that
moves an address along its ramp by the figures of the mail it sent.

An address configured with ``warmup`` starts at stage 0 of ``WARMUP_SCHEDULE`` the first
time a sender starts with it; one without is established ("done"). The operator can set
either with ``postgate sources warmup``. The review is the domains' (``core/warmup.py``):
a clean day moves the address on, a day over the breaker's complaint or hard-bounce
threshold holds it, one over twice a threshold steps it back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select, update

from postgate.core import breaker, warmup
from postgate.core.clock import aware
from postgate.core.states import DeliveryState as S
from postgate.core.states import FeedbackKind
from postgate.core.warmup import WarmupState
from postgate.observability.metrics import WARMUP_WAITING
from postgate.settings import Settings
from postgate.store import day_counts
from postgate.store import tables as t
from postgate.store.dialect import insert_ignore
from postgate.tenants import reputation
from postgate.tenants import warmup as warmup_store

log = logging.getLogger("postgate.warmup")
sa_, sd_ = t.source_address.c, t.source_day.c
d, e = t.delivery.c, t.feedback_event.c
REVIEW_EVERY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Source:
    address: str
    state: str
    stage: int

    @property
    def warming(self) -> bool:
        return self.state != WarmupState.DONE


def enrol(engine: Engine, configured: Sequence[tuple[str, bool]], now: datetime) -> list[Source]:
    """Each configured (address, warmup) known in the table (a new one with warmup starts
    on its ramp), and the configured addresses as they stand."""
    rows = [
        {
            "address": address,
            "warmup_state": WarmupState.WARMING if warm_up else WarmupState.DONE,
            "warmup_stage": 0,
            "warmup_reason": "new source address" if warm_up else "",
            "warmup_reviewed_at": now,
            "created_at": now,
        }
        for address, warm_up in configured
    ]
    with engine.begin() as conn:
        insert_ignore(conn, t.source_address, rows, ("address",))
    return current(engine, [address for address, _ in configured])


def current(engine: Engine, addresses: Sequence[str]) -> list[Source]:
    """The addresses' states, in the order given."""
    with engine.connect() as conn:
        found = {
            r.address: Source(r.address, r.warmup_state, int(r.warmup_stage))
            for r in conn.execute(
                select(sa_.address, sa_.warmup_state, sa_.warmup_stage).where(
                    sa_.address.in_(list(addresses))
                )
            )
        }
    return [found[a] for a in addresses if a in found]


def take(engine: Engine, address: str, group: str, now: datetime, want: int, cap: int) -> int:
    """Take up to ``want`` of today's turns of ``group`` on ``address``; how many."""
    key = {"address": address, "group": group, "day": warmup.day_of(now)}
    granted = day_counts.take(engine, t.source_day, key, want, cap)
    if granted < want:
        WARMUP_WAITING.labels(group).inc(want - granted)
    return granted


def measure(conn: Connection, address: str, start: datetime, end: datetime) -> breaker.Window:
    """The figures of the mail sent from ``address`` since ``start``: sent, delivered,
    and the deliveries complained about or hard-bounced."""
    mine = d.source_ip == address
    delivered = conn.scalar(
        select(func.count()).select_from(t.delivery).where(mine, d.sent_at >= start)
    )
    rejected = conn.scalar(
        select(func.count())
        .select_from(t.delivery)
        .where(mine, d.state == S.FAILED, d.reason == "smtp_rejected", d.updated_at >= start)
    )

    def feedback(*when: Any) -> int:
        return int(
            conn.scalar(
                select(func.count(func.distinct(e.delivery_id)))
                .select_from(t.feedback_event)
                .join(t.delivery, d.id == e.delivery_id)
                .where(mine, e.created_at >= start, *when)
            )
            or 0
        )

    complaints = feedback(e.kind == FeedbackKind.COMPLAINT)
    hard = feedback(and_(e.kind == FeedbackKind.BOUNCE, e.hard.is_(True)))
    sent = int(delivered or 0) + int(rejected or 0)
    return breaker.Window(start, end, sent, int(delivered or 0), complaints, hard)


def review_due(engine: Engine, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """Move each warming or held address whose last review is a day old along its ramp;
    each move is audited. The steps taken."""
    schedule = warmup.parse_schedule(settings.warmup_schedule)
    limits = reputation.thresholds(settings)
    steps = []
    with engine.begin() as conn:
        due = conn.execute(
            select(sa_.address, sa_.warmup_stage, sa_.warmup_reviewed_at)
            .where(
                sa_.warmup_state != WarmupState.DONE,
                sa_.warmup_reviewed_at.is_(None) | (sa_.warmup_reviewed_at <= now - REVIEW_EVERY),
            )
            .with_for_update(skip_locked=True)
        ).all()
        for row in due:
            since = aware(row.warmup_reviewed_at) if row.warmup_reviewed_at else now - REVIEW_EVERY
            window = measure(conn, row.address, since, now)
            step = warmup.review(schedule, int(row.warmup_stage), window, limits)
            done = warmup_store.record_step(
                conn,
                update(t.source_address).where(sa_.address == row.address),
                None,
                "source_warmup_reviewed",
                {"source": row.address, "from_stage": int(row.warmup_stage)},
                step,
                window,
                now,
            )
            log.info("source=%s warm-up %s", row.address, done)
            steps.append(done)
    return steps


def status(conn: Connection, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """Every known source address: its place on its ramp, today's cap and use."""
    schedule = warmup.parse_schedule(settings.warmup_schedule)
    used: dict[str, dict[str, int]] = {}
    for address, group, sent in conn.execute(
        select(sd_.address, sd_.group, sd_.sent).where(sd_.day == warmup.day_of(now))
    ):
        used.setdefault(address, {})[group] = int(sent)
    shown = []
    for r in conn.execute(
        select(sa_.address, sa_.warmup_state, sa_.warmup_stage, sa_.warmup_reason).order_by(
            sa_.address
        )
    ):
        warm = r.warmup_state == WarmupState.DONE
        shown.append(
            {
                "address": r.address,
                "state": r.warmup_state,
                "stage": None if warm else int(r.warmup_stage),
                "stages": len(schedule),
                "cap_per_group_today": None if warm else warmup.cap(schedule, r.warmup_stage),
                "sent_today": used.get(r.address, {}),
                "resets_at": warmup.next_day(now).isoformat(),
                "reason": r.warmup_reason,
            }
        )
    return shown


def set_stage(engine: Engine, address: str, stage: int | None, actor: str, now: datetime) -> None:
    """An operator's word: put an address at ``stage`` of its ramp, or (None) call it warm."""
    target = update(t.source_address).where(sa_.address == address)
    audit = {"tenant_id": None, "action": "source_warmup_set", "detail": {"source": address}}
    if not warmup_store.put_at(engine, target, stage, actor, now, audit):
        raise LookupError(f"no source address {address!r}: senders enrol MX_SOURCES")


def warming(conn: Connection, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """The addresses on their ramp, for the operator page, with the rows that wait for a
    later day because every address was at its cap."""
    waiting = int(
        conn.scalar(
            select(func.count())
            .select_from(t.delivery)
            .where(d.state == S.DEFERRED, d.reason == "source_warmup_cap")
        )
        or 0
    )
    return [
        row | {"waiting": waiting}
        for row in status(conn, settings, now)
        if row["state"] != WarmupState.DONE
    ]
