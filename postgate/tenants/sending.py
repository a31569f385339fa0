"""A tenant's sending state, stored as sending blocks: set, clear, hold and resume.

A block (scope ``bulk_email``, ``bulk_sms`` or ``all``) is active until cleared. The
operator kill switch and the circuit breaker both write blocks; only an operator
clears them, with a reason. Every change writes an audit record and keeps
``tenant.status`` as a one-word summary for dashboards. Callers announce a change on
pub/sub (``runtime.announce``) after this module has committed it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from postgate.core.breaker import ALL, BULK_EMAIL, BULK_SMS
from postgate.core.sending_policy import held_reason, may_send
from postgate.core.states import HELD_BY_BLOCKS, BlockReason, TenantStatus
from postgate.core.states import DeliveryState as S
from postgate.store import tables as t

b, d, c = t.sending_block.c, t.delivery.c, t.campaign.c


def active_scopes(conn: Connection, tenant_id: int) -> frozenset[str]:
    return frozenset(
        conn.scalars(select(b.scope).where(b.tenant_id == tenant_id, b.cleared_at.is_(None)))
    )


def hold_reason(engine: Engine, tenant_id: int, channel: str, kind: str) -> BlockReason:
    """The reason rows of this channel and kind are held with under the tenant's active
    blocks (``core.sending_policy.held_reason``)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(b.scope, b.source, b.detail).where(
                b.tenant_id == tenant_id, b.cleared_at.is_(None)
            )
        ).all()
    return held_reason(
        ((r.scope, r.source, str((r.detail or {}).get("reason", ""))) for r in rows), channel, kind
    )


def all_active(engine: Engine) -> dict[int, frozenset[str]]:
    found: dict[int, set[str]] = defaultdict(set)
    with engine.connect() as conn:
        for tenant_id, scope in conn.execute(
            select(b.tenant_id, b.scope).where(b.cleared_at.is_(None))
        ):
            found[tenant_id].add(scope)
    return {k: frozenset(v) for k, v in found.items()}


def summary(scopes: frozenset[str]) -> str:
    if ALL in scopes:
        return TenantStatus.KILLED
    if BULK_EMAIL in scopes and BULK_SMS in scopes:
        return TenantStatus.SUSPENDED
    return TenantStatus.BULK_DISABLED if scopes else TenantStatus.ACTIVE


def audit(
    conn: Connection, tenant_id: int, actor: str, action: str, detail: dict[str, Any], now: datetime
) -> None:
    conn.execute(
        insert(t.audit_log).values(
            tenant_id=tenant_id, actor=actor, action=action, detail=detail, created_at=now
        )
    )


def add_block(
    conn: Connection,
    tenant_id: int,
    scope: str,
    source: str,
    reason: str,
    actor: str,
    detail: dict[str, Any],
    now: datetime,
) -> int:
    """Add an active block unless one of this scope and source is active already."""
    existing = conn.scalar(
        select(b.id).where(
            b.tenant_id == tenant_id, b.scope == scope, b.source == source, b.cleared_at.is_(None)
        )
    )
    if existing is not None:
        return int(existing)
    block_id = conn.scalar(
        insert(t.sending_block)
        .values(
            tenant_id=tenant_id,
            scope=scope,
            source=source,
            reason=reason,
            detail=detail,
            actor=actor,
            created_at=now,
        )
        .returning(b.id)
    )
    audit(
        conn,
        tenant_id,
        actor,
        f"sending_block.{source}",
        {"block": block_id, "scope": scope, "reason": reason, **detail},
        now,
    )
    _sync_status(conn, tenant_id, reason)
    return int(block_id or 0)


def clear_blocks(
    engine: Engine, tenant_id: int, scope: str, actor: str, reason: str, now: datetime
) -> list[int]:
    """Clear every active block of ``scope`` (operator's and breaker's alike)."""
    with engine.begin() as conn:
        ids = list(
            conn.scalars(
                update(t.sending_block)
                .where(b.tenant_id == tenant_id, b.scope == scope, b.cleared_at.is_(None))
                .values(cleared_at=now, cleared_by=actor, clear_reason=reason)
                .returning(b.id)
            )
        )
        if ids:
            audit(
                conn,
                tenant_id,
                actor,
                "sending_block.clear",
                {"blocks": ids, "scope": scope, "reason": reason},
                now,
            )
            _sync_status(conn, tenant_id, reason)
    return ids


def _sync_status(conn: Connection, tenant_id: int, reason: str) -> None:
    status = summary(active_scopes(conn, tenant_id))
    conn.execute(
        update(t.tenant)
        .where(t.tenant.c.id == tenant_id)
        .values(status=status, status_reason="" if status == "active" else reason)
    )


def release_held(engine: Engine, tenant_id: int, now: datetime) -> list[tuple[int, int]]:
    """Requeue the tenant's held rows that its remaining blocks allow; (id, campaign) pairs."""
    with engine.begin() as conn:
        scopes = active_scopes(conn, tenant_id)
        campaigns = [
            cid
            for cid, channel, kind in conn.execute(
                select(c.id, c.channel, c.kind).where(
                    c.tenant_id == tenant_id,
                    c.id.in_(
                        select(d.campaign_id)
                        .where(
                            d.tenant_id == tenant_id,
                            d.state == S.HELD,
                            d.reason.in_(HELD_BY_BLOCKS),
                        )
                        .distinct()
                    ),
                )
            )
            if may_send(scopes, channel, kind)
        ]
        if not campaigns:
            return []
        rows = conn.execute(
            update(t.delivery)
            .where(
                d.tenant_id == tenant_id,
                d.campaign_id.in_(campaigns),
                d.state == S.HELD,
                d.reason.in_(HELD_BY_BLOCKS),
            )  # not canary holds
            .values(state=S.QUEUED, reason=None, updated_at=now)
            .returning(d.id, d.campaign_id)
        ).all()
    return [(r[0], r[1]) for r in rows]


class HeldChanged(ValueError):
    """The held deliveries are not the ones the operator saw; nothing was cancelled."""


def cancel_held(
    engine: Engine,
    tenant_id: int,
    actor: str,
    reason: str,
    now: datetime,
    campaign_id: int | None = None,
    expected: int | None = None,
    held_before: datetime | None = None,
) -> int:
    """Cancel the tenant's held deliveries (of one campaign, if given). An operator
    cancels what they were shown: with ``held_before`` only rows held by then, and with
    ``expected`` only if exactly that many are (else nothing, and :class:`HeldChanged`)."""
    with engine.begin() as conn:
        where = [d.tenant_id == tenant_id, d.state == S.HELD]
        if campaign_id is not None:
            where.append(d.campaign_id == campaign_id)
        if held_before is not None:
            where.append(d.updated_at <= held_before)
        count = conn.execute(
            update(t.delivery)
            .where(*where)
            .values(state=S.CANCELLED, reason="operator_cancelled", updated_at=now)
        ).rowcount
        if expected is not None and count != expected:  # raising rolls the update back
            raise HeldChanged(
                f"{count} deliveries are held now, not {expected}; look again and confirm"
            )
        audit(
            conn,
            tenant_id,
            actor,
            "held.cancel",
            {"cancelled": count, "campaign": campaign_id, "reason": reason},
            now,
        )
    return int(count or 0)
