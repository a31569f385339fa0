"""Api routes for a tenant's sender domains: claim, list, verify."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from postgate.core.clock import utcnow
from postgate.core.params import Line
from postgate.core.sender_domains import DomainError
from postgate.http.auth import TenantUser
from postgate.providers.dns_txt import DnsError
from postgate.tenants import domains as domain_store

router = APIRouter(prefix="/v1/domains", tags=["sender domains"])


class Claim(BaseModel):
    domain: Line = Field(min_length=1, max_length=253)


@router.post("", status_code=201)
def claim(body: Claim, tenant: TenantUser, request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    assert tenant.tenant_id is not None
    try:
        row = domain_store.add(
            request.app.state.engine,
            tenant.tenant_id,
            body.domain,
            settings.dkim_algorithm,
            utcnow(),
            dual=settings.dkim_dual,
        )
    except DomainError as exc:
        raise HTTPException(422, str(exc)) from None
    return domain_store.describe(row)


@router.get("")
def listing(tenant: TenantUser, request: Request) -> list[dict[str, Any]]:
    assert tenant.tenant_id is not None
    rows = domain_store.listing(request.app.state.engine, tenant.tenant_id)
    return [domain_store.describe(r) for r in rows]


@router.post("/{domain}/verify")
def verify(domain: str, tenant: TenantUser, request: Request) -> dict[str, Any]:
    assert tenant.tenant_id is not None
    try:
        row, dkim_ok = domain_store.verify(
            request.app.state.engine, request.app.state.settings, tenant.tenant_id, domain, utcnow()
        )
    except DomainError as exc:
        raise HTTPException(422, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except DnsError as exc:
        raise HTTPException(503, str(exc)) from None
    return domain_store.describe(row) | {"dkim_published": dkim_ok}
