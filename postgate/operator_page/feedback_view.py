"""The operator page's feedback tables: what came back, by kind and reason.

- **By reason**: per tenant, the verified feedback events of the last 24 hours and of the
  last 7 days by kind and bounce reason (user_unknown, host_unknown, mailbox_full,
  policy_block, auth_failure, ...), refusals at send time included.
- **Recent**: the latest events of every tenant, verified or not, each with its reason.
- **Unverified**: the last 24 hours' reports that named no delivery we could verify, by
  source, kind and reason.

Each is one grouped (or limited) query on ``feedback_event``'s ``created_at`` index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select

from postgate.core.clock import aware
from postgate.feedback.references import Verification
from postgate.store import tables as t

RECENT = 25
DAY, WEEK = timedelta(days=1), timedelta(days=7)
e, tn = t.feedback_event.c, t.tenant.c


@dataclass(frozen=True, slots=True)
class ReasonCount:
    tenant: str
    kind: str
    reason: str  # a BounceReason value, or "—" for kinds without one
    day: int  # last 24 hours
    week: int  # last 7 days


def _reason(value: str | None) -> str:
    return value or "—"


def by_reason(conn: Connection, now: datetime) -> list[ReasonCount]:
    """Verified events per tenant, kind and reason; most frequent in the week first."""
    day = func.sum(case((e.created_at >= now - DAY, 1), else_=0))
    rows = conn.execute(
        select(tn.slug, e.kind, e.reason, day.label("day"), func.count().label("week"))
        .join(t.tenant, tn.id == e.tenant_id)
        .where(e.created_at >= now - WEEK)
        .group_by(tn.slug, e.kind, e.reason)
    ).all()
    counts = [
        ReasonCount(r.slug, r.kind, _reason(r.reason), int(r.day or 0), int(r.week)) for r in rows
    ]
    return sorted(counts, key=lambda c: (c.tenant, -c.week, c.kind, c.reason))


def recent(conn: Connection) -> list[dict[str, Any]]:
    """The latest events, verified or not, each with its reason and how it was verified."""
    return [
        {
            "id": r.id,
            "at": aware(r.created_at),
            "tenant": r.slug or "—",
            "kind": r.kind,
            "reason": _reason(r.reason),
            "hard": r.hard,
            "status": r.status,
            "address": r.address,
            "source": r.source,
            "verification": r.verification or "—",
        }
        for r in conn.execute(
            select(
                e.id,
                e.created_at,
                e.kind,
                e.reason,
                e.hard,
                e.status,
                e.address,
                e.source,
                e.verification,
                tn.slug,
            )
            .outerjoin(t.tenant, tn.id == e.tenant_id)
            .order_by(e.id.desc())
            .limit(RECENT)
        )
    ]


def unverified(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """The last 24 hours' unverified reports by source, kind and reason."""
    return [
        {
            "source": r.source,
            "kind": r.kind,
            "reason": _reason(r.reason),
            "count": int(r.n),
            "latest": aware(r.latest),
        }
        for r in conn.execute(
            select(
                e.source,
                e.kind,
                e.reason,
                func.count().label("n"),
                func.max(e.created_at).label("latest"),
            )
            .where(e.verification == Verification.UNVERIFIED, e.created_at >= now - DAY)
            .group_by(e.source, e.kind, e.reason)
            .order_by(func.count().desc(), e.source, e.kind, e.reason)
        )
    ]
