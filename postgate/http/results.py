"""Tenant routes for results: a campaign's (by postgate's id or the tenant's own), the
tenant's figures over a time range, and ``/v1/me`` with the sending state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from postgate.core.clock import aware, utcnow
from postgate.http.auth import Principal, TenantUser, authenticated
from postgate.http.params import Line, RowId
from postgate.platform import provisioning, results

router = APIRouter(tags=["tenant: results"])
MAX_RANGE = timedelta(days=400)


def _results(request: Request, user: TenantUser, campaign_id: int | None) -> dict[str, Any]:
    assert user.tenant_id is not None
    with request.app.state.engine.connect() as conn:
        found = (
            None
            if campaign_id is None
            else results.campaign_results(
                conn, user.tenant_id, campaign_id, request.app.state.settings
            )
        )
    if found is None:
        raise HTTPException(404, "no such campaign")
    return found


@router.get("/v1/campaigns/by-ref/{campaign_id:path}")
def campaign_by_ref(campaign_id: Line, request: Request, user: TenantUser) -> dict[str, Any]:
    """The same results, by the ``campaign_id`` of the tenant's campaign.v1 message."""
    assert user.tenant_id is not None
    with request.app.state.engine.connect() as conn:
        internal = results.campaign_by_ref(conn, user.tenant_id, campaign_id)
    return _results(request, user, internal)


@router.get("/v1/campaigns/{campaign_id}/results")
def campaign_results(campaign_id: RowId, request: Request, user: TenantUser) -> dict[str, Any]:
    """Sent, delivered, deferred, failed, blocked and held (with why), bounces, complaints,
    unsubscribes, STOPs, SMS parts and their estimated cost."""
    return _results(request, user, campaign_id)


@router.get("/v1/stats")
def stats(
    request: Request,
    user: TenantUser,
    start: Annotated[
        datetime | None,
        Query(
            alias="from", description=("start (inclusive, ISO 8601; default 30 days before 'to')")
        ),
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description=("end (exclusive; default now)"))
    ] = None,
) -> dict[str, Any]:
    """The deliveries of campaigns created in [from, to) and the feedback that arrived
    in it."""
    assert user.tenant_id is not None
    end = aware(end) if end else utcnow()
    start = aware(start) if start else end - timedelta(days=30)
    if start >= end or end - start > MAX_RANGE:
        raise HTTPException(422, "'from' must be before 'to', at most 400 days apart")
    with request.app.state.engine.connect() as conn:
        return results.tenant_stats(conn, user.tenant_id, start, end, request.app.state.settings)


@router.get("/v1/me", tags=["me"])
def me(request: Request, principal: Annotated[Principal, Depends(authenticated)]) -> dict[str, Any]:
    """Who the key belongs to; for a tenant key also the tenant's profile and its sending
    state (status, what it may send, the active blocks and their reasons)."""
    out: dict[str, Any] = {
        "role": principal.role,
        "name": principal.name,
        "tenant": principal.tenant_slug,
    }
    if principal.tenant_id is None:
        return out
    with request.app.state.engine.connect() as conn:
        tenant = provisioning.describe(conn, principal.tenant_id)
        state = results.sending_state(conn, principal.tenant_id)
    profile = {k: tenant[k] for k in ("legal_name", "domain", "locale", "default_from", "limits")}
    return out | {"profile": profile, "sending": state}
