"""Tenant routes for campaigns: submit, list, status, pause, resume, cancel.

Every query is scoped by the caller's tenant; another tenant's campaign answers 404.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from sqlalchemy import func, select

from postgate.campaigns import control
from postgate.core.message import MessageError, parse_campaign
from postgate.http.auth import TenantUser
from postgate.http.params import Limit, RowId
from postgate.runtime.broker import Broker
from postgate.runtime.publish import publisher
from postgate.store import tables as t

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
c, d = t.campaign.c, t.delivery.c


def _broker(request: Request) -> Broker:
    settings = request.app.state.settings
    return Broker(settings.broker_url, settings.queue_prefix)


@router.post("", status_code=202)
async def submit(request: Request, user: TenantUser) -> dict[str, Any]:
    """Validate a campaign.v1 document for the caller's tenant and queue it."""
    settings = request.app.state.settings
    body = await request.body()
    try:
        msg = parse_campaign(body, settings.max_message_bytes)
    except MessageError as exc:
        raise HTTPException(422, str(exc)) from None
    if msg.tenant != user.tenant_slug:
        raise HTTPException(403, "a tenant key can only submit its own campaigns")

    def publish() -> None:
        broker = _broker(request)
        try:
            broker.publish("campaigns", body)
        finally:
            broker.close()

    await asyncio.to_thread(publish)
    return {"queued": msg.campaign_id}


@router.get("")
def list_campaigns(request: Request, user: TenantUser, limit: Limit = 50) -> list[dict[str, Any]]:
    with request.app.state.engine.connect() as conn:
        rows = conn.execute(
            select(c.id, c.external_id, c.channel, c.kind, c.topic, c.state, c.created_at)
            .where(c.tenant_id == user.tenant_id)
            .order_by(c.id.desc())
            .limit(limit)
        ).all()
    return [dict(r._mapping) for r in rows]


@router.get("/{campaign_id}")
def status(campaign_id: RowId, request: Request, user: TenantUser) -> dict[str, Any]:
    with request.app.state.engine.connect() as conn:
        row = conn.execute(
            select(c.id, c.external_id, c.state, c.created_at, c.finished_at).where(
                c.id == campaign_id, c.tenant_id == user.tenant_id
            )
        ).first()
        if row is None:
            raise HTTPException(404, "no such campaign")
        counts = conn.execute(
            select(d.state, d.reason, func.count())
            .where(d.campaign_id == campaign_id, d.tenant_id == user.tenant_id)
            .group_by(d.state, d.reason)
        ).all()
    return dict(row._mapping) | {
        "deliveries": [{"state": s, "reason": r, "count": n} for s, r, n in counts]
    }


def _control(action: str, campaign_id: int, request: Request, user: TenantUser) -> dict[str, str]:
    engine, settings = request.app.state.engine, request.app.state.settings
    assert user.tenant_id is not None
    try:
        if action == "resume":
            broker = _broker(request)
            try:
                state = control.resume(
                    engine,
                    publisher(broker, settings.batch_size),
                    user.tenant_id,
                    campaign_id,
                    user.name,
                )
            finally:
                broker.close()
        else:
            state = getattr(control, action)(engine, user.tenant_id, campaign_id, user.name)
    except LookupError:
        raise HTTPException(404, "no such campaign") from None
    except control.ControlError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"state": state}


@router.post("/{campaign_id}/pause")
def pause(campaign_id: RowId, request: Request, user: TenantUser) -> dict[str, str]:
    return _control("pause", campaign_id, request, user)


@router.post("/{campaign_id}/resume")
def resume(campaign_id: RowId, request: Request, user: TenantUser) -> dict[str, str]:
    return _control("resume", campaign_id, request, user)


@router.post("/{campaign_id}/cancel")
def cancel(campaign_id: RowId, request: Request, user: TenantUser) -> dict[str, str]:
    return _control("cancel", campaign_id, request, user)


def install(app: FastAPI) -> None:
    app.include_router(router)
