"""Api routes showing content policy verdicts: a tenant sees its own campaign's verdict,
an operator sees every flagged or blocked campaign across tenants."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import select

from postgate.campaigns.content_review import ACTOR
from postgate.http.auth import Operator, TenantUser
from postgate.store import tables as t

router = APIRouter(tags=["content policy"])


@router.get("/v1/campaigns/{external_id}/policy")
def campaign_policy(external_id: str, tenant: TenantUser, request: Request) -> dict[str, Any]:
    c = t.campaign.c
    with request.app.state.engine.connect() as conn:
        row = conn.execute(
            select(c.id, c.state, c.policy).where(
                c.tenant_id == tenant.tenant_id, c.external_id == external_id
            )
        ).first()
    if row is None:
        raise HTTPException(404, f"no campaign {external_id!r}")
    return {"campaign": external_id, "state": row.state, "policy": row.policy or {}}


@router.get("/v1/operator/content-verdicts")
def content_verdicts(
    operator: Operator, request: Request, limit: int = Query(50, ge=1, le=500)
) -> list[dict[str, Any]]:
    a, tn = t.audit_log.c, t.tenant.c
    with request.app.state.engine.connect() as conn:
        rows = conn.execute(
            select(a.id, a.created_at, a.action, a.detail, tn.slug)
            .join(t.tenant, tn.id == a.tenant_id)
            .where(a.actor == ACTOR)
            .order_by(a.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "at": r.created_at.isoformat(),
            "tenant": r.slug,
            "action": r.action,
            "campaign": r.detail.get("external_id"),
            "matches": r.detail.get("matches", {}),
        }
        for r in rows
    ]
