"""The order of the event stream and reading it back.

Outbox rows get their ``seq`` from :func:`stamp`, which runs in one transaction at a time
(an advisory lock on PostgreSQL; SQLite has a single writer anyway) and only ever sees
committed rows. A row committed late is therefore stamped late, with a higher ``seq``:
a reader that has seen everything up to ``seq`` N will never find a new row below N, so
``GET /v1/events?after=N`` and the webhook cursors cannot skip an event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text, update

from postgate.core.events import document
from postgate.observability.metrics import EVENTS_PRODUCED
from postgate.store import tables as t

o, tn, cp = t.event_outbox.c, t.tenant.c, t.campaign.c
STAMP_LOCK = 0x70677374  # pg_advisory_xact_lock key of the stamper
STAMP_PAGE = 2000


def stamp(engine: Engine, limit: int = STAMP_PAGE) -> int:
    """Give up to ``limit`` committed, unstamped events their ``seq`` (oldest first);
    how many were stamped. Each counts in ``postgate_events_produced_total``."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": STAMP_LOCK})
        rows = conn.execute(
            select(o.id, tn.slug, o.type)
            .join_from(t.event_outbox, t.tenant, tn.id == o.tenant_id)
            .where(o.seq.is_(None))
            .order_by(o.id)
            .limit(limit)
        ).all()
        if not rows:
            return 0
        top = conn.scalar(select(func.coalesce(func.max(o.seq), 0))) or 0
        conn.execute(
            update(t.event_outbox).where(o.id == bindparam("b_id")).values(seq=bindparam("b_seq")),
            [{"b_id": row[0], "b_seq": top + i} for i, row in enumerate(rows, 1)],
        )
    for _, slug, type_ in rows:
        EVENTS_PRODUCED.labels(slug, type_).inc()
    return len(rows)


def stamp_all(engine: Engine) -> int:
    """Stamp every event committed until now, a page at a time (a reader's cursor then
    covers all of them, however long the backlog the events worker left)."""
    total = 0
    while (done := stamp(engine)) == STAMP_PAGE:
        total += done
    return total + done


def _documents(conn: Connection, query: Any) -> list[dict[str, Any]]:
    rows = conn.execute(
        query.add_columns(tn.slug, cp.external_id)
        .join_from(t.event_outbox, t.tenant, tn.id == o.tenant_id)
        .outerjoin(t.campaign, cp.id == o.campaign_id)
        .order_by(o.seq)
    ).all()
    return [
        document(
            event_id=r.event_id,
            seq=r.seq,
            type_=r.type,
            tenant=r.slug,
            channel=r.channel,
            occurred_at=r.occurred_at,
            campaign_id=r.campaign_id,
            campaign_external_id=r.external_id,
            delivery_id=r.delivery_id,
            recipient=r.recipient,
            detail=r.detail or {},
        )
        for r in rows
    ]


COLUMNS = (o.id, o.event_id, o.seq, o.type, o.channel, o.occurred_at, o.campaign_id)
MORE = (o.delivery_id, o.recipient, o.detail)


def page(
    conn: Connection,
    tenant_id: int,
    after: int,
    limit: int,
    types: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """A tenant's events after ``seq`` ``after``, oldest first (only stamped ones)."""
    query = select(*COLUMNS, *MORE).where(
        o.tenant_id == tenant_id, o.seq.is_not(None), o.seq > after
    )
    if types:
        query = query.where(o.type.in_(list(types)))
    return _documents(conn, query.limit(limit))


def unpublished(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Stamped events the exchange has not taken yet, in ``seq`` order."""
    query = select(*COLUMNS, *MORE).where(o.seq.is_not(None), o.published_at.is_(None))
    return _documents(conn, query.limit(limit))


def mark_published(engine: Engine, seqs: Sequence[int], now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(t.event_outbox).where(o.seq.in_(list(seqs))).values(published_at=now))


def purge(conn: Connection, before: datetime) -> int:
    """Published events older than ``before`` (the retention window) are deleted."""
    done = delete(t.event_outbox).where(o.published_at.is_not(None), o.created_at < before)
    return int(conn.execute(done).rowcount or 0)
