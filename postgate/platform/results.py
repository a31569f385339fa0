"""What happened: a campaign's results, a tenant's figures over a time range, and the
tenant's sending state with its reasons.

Counts come from the delivery rows (their state and reason) and from the feedback events
that name them. ``delivered`` counts rows with a delivery report (SMS gateways send one;
for email the relay's acceptance is ``sent``). ``held`` says why: the reasons on the rows
(``tenant_disabled``, ``policy_blocked``, ``auth_failing``, ``canary``, ``canary_halted``)
and, while the tenant may not send this campaign, the active sending blocks that stop it.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from postgate.core.clock import aware
from postgate.core.sending_policy import may_send
from postgate.core.states import DeliveryState as S
from postgate.settings import Settings
from postgate.store import tables as t

c, d, fe, b, tn = (t.campaign.c, t.delivery.c, t.feedback_event.c, t.sending_block.c, t.tenant.c)
OPEN = (S.QUEUED, S.SENDING)


def _iso(value: datetime | None) -> str | None:
    return aware(value).isoformat() if value else None


def sending_state(conn: Connection, tenant_id: int) -> dict[str, Any]:
    """The tenant's status, what it may send now, and every active block with its reason."""
    status, status_reason, closed = conn.execute(
        select(tn.status, tn.status_reason, tn.closed_at).where(tn.id == tenant_id)
    ).one()
    blocks = [
        {
            "scope": r.scope,
            "source": r.source,
            "reason": r.reason,
            "detail": r.detail,
            "since": _iso(r.created_at),
        }
        for r in conn.execute(
            select(b.scope, b.source, b.reason, b.detail, b.created_at)
            .where(b.tenant_id == tenant_id, b.cleared_at.is_(None))
            .order_by(b.id)
        )
    ]
    scopes = frozenset(block["scope"] for block in blocks)
    may = {
        f"{kind}_{channel}": may_send(scopes, channel, kind)
        for kind in ("promotional", "transactional")
        for channel in ("email", "sms")
    }
    return {
        "status": status,
        "status_reason": status_reason,
        "closed_at": _iso(closed),
        "may_send": may,
        "blocks": blocks,
    }


def _feedback(conn: Connection, tenant_id: int, where: Any) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    for kind, hard, n in conn.execute(
        select(fe.kind, fe.hard, func.count())
        .where(fe.tenant_id == tenant_id, where)
        .group_by(fe.kind, fe.hard)
    ):
        if kind == "bounce":
            counts["bounces_hard" if hard else "bounces_soft"] += n
        else:
            counts[kind] += n
    return {
        "bounces": {"hard": counts["bounces_hard"], "soft": counts["bounces_soft"]},
        "complaints": counts["complaint"],
        "unsubscribes": counts["unsubscribe"],
        "stops": counts["stop"],
    }


def _deliveries(conn: Connection, tenant_id: int, where: Any, settings: Settings) -> dict[str, Any]:
    states: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    held: Counter[str] = Counter()
    for state, reason, n in conn.execute(
        select(d.state, d.reason, func.count())
        .where(d.tenant_id == tenant_id, where)
        .group_by(d.state, d.reason)
    ):
        states[state] += n
        if state == S.BLOCKED:
            blocked[reason or "unknown"] += n
        elif state == S.HELD:
            held[reason or "unknown"] += n
    delivered = (
        conn.scalar(
            select(func.count()).where(d.tenant_id == tenant_id, where, d.delivered_at.is_not(None))
        )
        or 0
    )
    parts: dict[str, int] = {}
    for provider, segments in conn.execute(
        select(d.provider, func.sum(d.segments))
        .where(d.tenant_id == tenant_id, where, d.segments.is_not(None), d.state == S.SENT)
        .group_by(d.provider)
    ):
        parts[provider or "unknown"] = int(segments or 0)
    prices = settings.sms_price_per_part
    cost = (
        round(sum(n * prices[p] for p, n in parts.items()), 4)
        if all(p in prices for p in parts)
        else None
    )
    return {
        "total": sum(states.values()),
        "sent": states[S.SENT],
        "delivered": int(delivered),
        "deferred": states[S.DEFERRED],
        "failed": states[S.FAILED],
        "open": states[S.QUEUED] + states[S.SENDING],
        "cancelled": states[S.CANCELLED],
        "blocked": {"total": states[S.BLOCKED], "by_reason": dict(sorted(blocked.items()))},
        "held": {"total": states[S.HELD], "by_reason": dict(sorted(held.items()))},
        "sms": {
            "parts": sum(parts.values()),
            "parts_by_provider": dict(sorted(parts.items())),
            "estimated_cost": cost,
        },
    }


def campaign_results(
    conn: Connection, tenant_id: int, campaign_id: int, settings: Settings
) -> dict[str, Any] | None:
    row = conn.execute(
        select(
            c.id,
            c.external_id,
            c.channel,
            c.kind,
            c.topic,
            c.state,
            c.policy,
            c.created_at,
            c.planned_at,
            c.finished_at,
        ).where(c.id == campaign_id, c.tenant_id == tenant_id)
    ).first()
    if row is None:
        return None
    deliveries = _deliveries(conn, tenant_id, d.campaign_id == campaign_id, settings)
    feedback = _feedback(
        conn,
        tenant_id,
        fe.delivery_id.in_(
            select(d.id).where(d.campaign_id == campaign_id, d.tenant_id == tenant_id)
        ),
    )
    state = sending_state(conn, tenant_id)
    allowed = state["may_send"][f"{row.kind}_{row.channel}"]
    unfinished = row.state in ("scheduled", "planning", "sending", "paused")
    held_why = (
        []
        if allowed
        else [
            blk
            for blk in state["blocks"]
            if blk["scope"] == "all"
            or (row.kind == "promotional" and blk["scope"] == f"bulk_{row.channel}")
        ]
    )
    if not allowed and not held_why:  # stopped by the tenant's status alone
        held_why.append(
            {
                "scope": "all",
                "source": "status",
                "reason": state["status_reason"],
                "detail": {},
                "since": None,
            }
        )
    deliveries["held"]["why"] = held_why
    return {
        "id": row.id,
        "campaign_id": row.external_id,
        "channel": row.channel,
        "kind": row.kind,
        "topic": row.topic,
        "state": row.state,
        "held": bool(unfinished and not allowed),
        "rejected": (row.policy or {}) if row.state == "rejected" else None,
        "created_at": _iso(row.created_at),
        "planned_at": _iso(row.planned_at),
        "finished_at": _iso(row.finished_at),
        **deliveries,
        **feedback,
    }


def campaign_by_ref(conn: Connection, tenant_id: int, external_id: str) -> int | None:
    found = conn.scalar(select(c.id).where(c.tenant_id == tenant_id, c.external_id == external_id))
    return None if found is None else int(found)


def tenant_stats(
    conn: Connection, tenant_id: int, start: datetime, end: datetime, settings: Settings
) -> dict[str, Any]:
    """Deliveries of the campaigns created in [start, end), and the feedback events
    (bounces, complaints, unsubscribes, STOPs) that arrived in [start, end)."""
    campaigns = select(c.id).where(
        c.tenant_id == tenant_id, c.created_at >= start, c.created_at < end
    )
    count = conn.scalar(select(func.count()).select_from(campaigns.subquery())) or 0
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "campaigns": int(count),
        **_deliveries(conn, tenant_id, d.campaign_id.in_(campaigns), settings),
        **_feedback(conn, tenant_id, (fe.created_at >= start) & (fe.created_at < end)),
        "sending_state": sending_state(conn, tenant_id),
    }
