"""What the operator page shows, read from the database in one pass.

Rates come from :func:`postgate.tenants.reputation.measure` (the breaker's own counts:
complaints, hard bounces, policy blocks, authentication failures) over the rolling
window the breaker uses; feedback by reason, the latest events and unverified reports
from :mod:`postgate.operator_page.feedback_view`; tenants that are stopped or over a threshold
come first, then those near one, then by volume. States come from the active sending
blocks (the ones the kill switch and the breaker write); progress from
:mod:`postgate.campaigns.progress`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from postgate.campaigns import progress
from postgate.core import breaker
from postgate.core.clock import aware
from postgate.core.states import DeliveryState as S
from postgate.operator_page import feedback_view
from postgate.operator_page.standing import Standing, attention, judge
from postgate.platform import source_warmup
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.tenants import reputation, warmup

MAX_CAMPAIGNS, MAX_AUDIT = 50, 40
tn, c, d, a = t.tenant.c, t.campaign.c, t.delivery.c, t.audit_log.c


@dataclass(frozen=True, slots=True)
class TenantRow:
    slug: str
    name: str
    status: str  # active | bulk_disabled | suspended | killed
    why: str
    standing: Standing
    blocks: list[dict[str, Any]]  # active sending blocks, as the kill switch lists them
    held: int
    closed: bool

    @property
    def scopes(self) -> list[str]:
        return sorted({b["scope"] for b in self.blocks})


@dataclass(frozen=True, slots=True)
class CampaignRow:
    tenant: str
    channel: str
    kind: str
    progress: progress.Progress


@dataclass(frozen=True, slots=True)
class Overview:
    at: datetime
    window_days: float
    tenants: list[TenantRow] = field(default_factory=list)
    campaigns: list[CampaignRow] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    unverified: list[dict[str, Any]] = field(default_factory=list)  # last 24 h, by source
    reasons: list[feedback_view.ReasonCount] = field(default_factory=list)  # 24 h and 7 d
    recent: list[dict[str, Any]] = field(default_factory=list)  # the latest events
    warming: list[dict[str, Any]] = field(default_factory=list)  # domains on a warm-up ramp
    sources: list[dict[str, Any]] = field(default_factory=list)  # source addresses on theirs


def _audit_row(row: Any) -> dict[str, Any]:
    detail = row.detail or {}
    reason = detail.get("reason") or ""
    if isinstance(reason, dict):  # content verdicts carry structured reasons
        reason = ", ".join(f"{k}: {v}" for k, v in reason.items())
    return {
        "id": row.id,
        "at": aware(row.created_at),
        "tenant": row.slug or "—",
        "actor": row.actor,
        "action": row.action,
        "scope": detail.get("scope", ""),
        "reason": str(reason),
    }


def read(
    engine: Engine, settings: Settings, blocks: list[dict[str, Any]], now: datetime
) -> Overview:
    """Everything the page shows; ``blocks`` are the active sending blocks."""
    limits = reputation.thresholds(settings)
    start = now - limits.window
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for block in blocks:
        by_tenant.setdefault(block["tenant"], []).append(block)
    overview = Overview(at=now, window_days=settings.breaker_window_days)
    with engine.connect() as conn:
        held: dict[int, int] = {
            tenant_id: int(n)
            for tenant_id, n in conn.execute(
                select(d.tenant_id, func.count()).where(d.state == S.HELD).group_by(d.tenant_id)
            )
        }
        windows = reputation.measure_all(conn, start, now)
        quiet = breaker.Window(start, now, 0, 0, 0, 0)
        for row in conn.execute(
            select(tn.id, tn.slug, tn.name, tn.status, tn.status_reason, tn.closed_at).order_by(
                tn.slug
            )
        ):
            window = windows.get(row.id, quiet)
            overview.tenants.append(
                TenantRow(
                    slug=row.slug,
                    name=row.name,
                    status=row.status,
                    why=row.status_reason,
                    standing=judge(window, limits),
                    blocks=by_tenant.get(row.slug, []),
                    held=int(held.get(row.id, 0)),
                    closed=row.closed_at is not None,
                )
            )
        overview.tenants.sort(
            key=lambda r: (attention(r.status, r.standing), -r.standing.sent, r.slug)
        )
        flying = conn.execute(
            select(c.id, c.channel, c.kind, tn.slug)
            .join(t.tenant, tn.id == c.tenant_id)
            .where(c.state.in_(progress.IN_FLIGHT))
            .order_by(c.id.desc())
            .limit(MAX_CAMPAIGNS)
        ).all()
        counts = progress.read_many(conn, [r.id for r in flying])
        overview.campaigns.extend(
            CampaignRow(r.slug, r.channel, r.kind, counts[r.id]) for r in flying if r.id in counts
        )
        overview.audit.extend(
            _audit_row(r)
            for r in conn.execute(
                select(a.id, a.created_at, a.actor, a.action, a.detail, tn.slug)
                .outerjoin(t.tenant, tn.id == a.tenant_id)
                .order_by(a.id.desc())
                .limit(MAX_AUDIT)
            )
        )
        overview.unverified.extend(feedback_view.unverified(conn, now))
        overview.reasons.extend(feedback_view.by_reason(conn, now))
        overview.recent.extend(feedback_view.recent(conn))
        overview.warming.extend(warmup.warming(conn, settings, now))
        overview.sources.extend(source_warmup.warming(conn, settings, now))
    return overview
