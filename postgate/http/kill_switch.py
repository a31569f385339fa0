"""The operator kill switch: an api router (operator keys only) over sending blocks.

- ``GET  /v1/operator/sending-blocks``                     active (or all) blocks
- ``GET  /v1/operator/tenants/{slug}/sending-state``       scopes, blocks, held rows
- ``POST /v1/operator/tenants/{slug}/sending-blocks``      stop a scope, with a reason
- ``POST /v1/operator/tenants/{slug}/sending-blocks/clear`` re-enable a scope, with a
  reason; held deliveries the remaining blocks allow are requeued and sent
- ``POST /v1/operator/tenants/{slug}/held/cancel``         cancel held deliveries
- ``GET  /v1/operator/tenants/{slug}/audit``               the audit trail

Every change is committed, then announced on pub/sub so that every sender re-reads
the tenant's blocks within the second.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select

from postgate.core.clock import utcnow
from postgate.core.params import Text
from postgate.core.states import DeliveryState as S
from postgate.core.states import Scope
from postgate.http.auth import Operator
from postgate.observability.metrics import SENDING_BLOCKS
from postgate.runtime.announce import announce
from postgate.runtime.broker import Broker
from postgate.runtime.publish import publish_batches
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.tenants import sending as sending_blocks
from postgate.tenants import slugs as tenants

router = APIRouter(prefix="/v1/operator", tags=["kill switch"])
b = t.sending_block.c


class BlockRequest(BaseModel):
    scope: Scope
    reason: Text = Field(min_length=3, max_length=2000)


class CancelRequest(BaseModel):
    reason: Text = Field(min_length=3, max_length=2000)
    campaign_id: int | None = None
    expected: int | None = Field(default=None, ge=0)  # cancel only if this many are held
    held_before: datetime | None = None  # ... counting only rows held by then


def _tenant(engine: Engine, slug: str) -> int:
    with engine.connect() as conn:
        tenant_id = tenants.id_of(conn, slug)
    if tenant_id is None:
        raise HTTPException(404, f"no tenant {slug!r}")
    return int(tenant_id)


def resume_held(engine: Engine, settings: Settings, tenant_id: int) -> int:
    """Requeue the held rows the tenant may send again and publish their send batches."""
    rows = sending_blocks.release_held(engine, tenant_id, utcnow())
    by_campaign: dict[int, list[int]] = {}
    for delivery_id, campaign_id in rows:
        by_campaign.setdefault(campaign_id, []).append(delivery_id)
    if by_campaign:
        broker = Broker(settings.broker_url, settings.queue_prefix)
        try:
            for campaign_id, ids in by_campaign.items():
                publish_batches(broker, campaign_id, sorted(ids), settings.batch_size)
        finally:
            broker.close()
    return len(rows)


def _block_row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in ("created_at", "cleared_at"):
        out[key] = out[key].isoformat() if out[key] else None
    return out


def _blocks(engine: Engine, tenant_id: int | None, active: bool) -> list[dict[str, Any]]:
    query = (
        select(
            t.tenant.c.slug.label("tenant"),
            b.id,
            b.scope,
            b.source,
            b.reason,
            b.detail,
            b.actor,
            b.created_at,
            b.cleared_at,
            b.cleared_by,
            b.clear_reason,
        )
        .join(t.tenant, t.tenant.c.id == b.tenant_id)
        .order_by(b.id)
    )
    if tenant_id is not None:
        query = query.where(b.tenant_id == tenant_id)
    if active:
        query = query.where(b.cleared_at.is_(None))
    with engine.connect() as conn:
        return [_block_row(r) for r in conn.execute(query)]


@router.get("/sending-blocks")
def list_blocks(request: Request, operator: Operator, active: bool = True) -> list[dict[str, Any]]:
    return _blocks(request.app.state.engine, None, active)


@router.get("/tenants/{slug}/sending-state")
def sending_state(request: Request, operator: Operator, slug: str) -> dict[str, Any]:
    engine = request.app.state.engine
    tenant_id = _tenant(engine, slug)
    with engine.connect() as conn:
        scopes = sorted(sending_blocks.active_scopes(conn, tenant_id))
        held = conn.scalar(
            select(func.count()).where(
                t.delivery.c.tenant_id == tenant_id, t.delivery.c.state == S.HELD
            )
        )
    return {
        "tenant": slug,
        "status": sending_blocks.summary(frozenset(scopes)),
        "scopes": scopes,
        "held": int(held or 0),
        "blocks": _blocks(engine, tenant_id, active=True),
    }


@router.post("/tenants/{slug}/sending-blocks", status_code=201)
def set_block(
    request: Request, operator: Operator, slug: str, body: BlockRequest
) -> dict[str, Any]:
    engine, settings = request.app.state.engine, request.app.state.settings
    tenant_id = _tenant(engine, slug)
    with engine.begin() as conn:
        block_id = sending_blocks.add_block(
            conn, tenant_id, body.scope, "operator", body.reason, operator.name, {}, utcnow()
        )
    announce(settings, tenant_id)
    SENDING_BLOCKS.labels(slug, body.scope, "set").inc()
    return {"block": block_id, "tenant": slug, "scope": body.scope}


@router.post("/tenants/{slug}/sending-blocks/clear")
def clear_block(
    request: Request, operator: Operator, slug: str, body: BlockRequest
) -> dict[str, Any]:
    engine, settings = request.app.state.engine, request.app.state.settings
    tenant_id = _tenant(engine, slug)
    cleared = sending_blocks.clear_blocks(
        engine, tenant_id, body.scope, operator.name, body.reason, utcnow()
    )
    if not cleared:
        raise HTTPException(404, f"no active {body.scope} block for {slug!r}")
    announce(settings, tenant_id)
    resumed = resume_held(engine, settings, tenant_id)
    SENDING_BLOCKS.labels(slug, body.scope, "clear").inc()
    return {"cleared": cleared, "tenant": slug, "scope": body.scope, "resumed": resumed}


@router.post("/tenants/{slug}/held/cancel")
def cancel_held(
    request: Request, operator: Operator, slug: str, body: CancelRequest
) -> dict[str, Any]:
    engine = request.app.state.engine
    tenant_id = _tenant(engine, slug)
    try:
        count = sending_blocks.cancel_held(
            engine,
            tenant_id,
            operator.name,
            body.reason,
            utcnow(),
            body.campaign_id,
            body.expected,
            body.held_before,
        )
    except sending_blocks.HeldChanged as exc:
        raise HTTPException(409, str(exc)) from None
    return {"tenant": slug, "cancelled": count}


@router.get("/tenants/{slug}/audit")
def audit_trail(
    request: Request, operator: Operator, slug: str, limit: int = 100
) -> list[dict[str, Any]]:
    engine = request.app.state.engine
    tenant_id = _tenant(engine, slug)
    a = t.audit_log.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(a.id, a.actor, a.action, a.detail, a.created_at)
            .where(a.tenant_id == tenant_id)
            .order_by(a.id.desc())
            .limit(min(limit, 1000))
        ).all()
    return [
        {
            "id": r.id,
            "actor": r.actor,
            "action": r.action,
            "detail": r.detail,
            "at": r.created_at.isoformat(),
        }
        for r in rows
    ]
