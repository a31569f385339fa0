"""Api routes for a tenant's sender domains: claim, list, verify, and the authentication
preflight (SPF, DMARC, DKIM, MTA-STS, TLS-RPT) with the records to publish."""

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
from postgate.tenants import preflight as domain_preflight
from postgate.tenants import warmup

router = APIRouter(prefix="/v1/domains", tags=["sender domains"])


class Claim(BaseModel):
    domain: Line = Field(min_length=1, max_length=253)


def _run_preflight(request: Request, tenant: TenantUser, domain: str) -> dict[str, Any]:
    assert tenant.tenant_id is not None
    return domain_preflight.run(
        request.app.state.engine,
        request.app.state.settings,
        tenant.tenant_id,
        domain,
        utcnow(),
        tenant.tenant_slug or "",
    )


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
    answer = domain_store.describe(row) | {"dkim_published": dkim_ok}
    if row.verified_at is not None:  # a newly usable domain is judged at once
        try:
            answer["preflight"] = _run_preflight(request, tenant, domain)
        except DnsError as exc:
            answer["preflight"] = {"error": str(exc)}
    return answer


@router.get("/{domain}/preflight")
def preflight(domain: str, tenant: TenantUser, request: Request) -> dict[str, Any]:
    """The latest authentication preflight of a claimed domain: when, each check's verdict
    and reason, and the DNS records to publish (``published`` tells which are in place)."""
    assert tenant.tenant_id is not None
    try:
        with request.app.state.engine.connect() as conn:
            result = domain_preflight.stored(conn, tenant.tenant_id, domain)
    except DomainError as exc:
        raise HTTPException(422, str(exc)) from None
    if result is None:
        raise HTTPException(404, f"no preflight of {domain!r} yet: POST to run one")
    return result


@router.post("/{domain}/preflight")
def run_preflight(domain: str, tenant: TenantUser, request: Request) -> dict[str, Any]:
    """Run the preflight now (after publishing records) and store its result."""
    assert tenant.tenant_id is not None
    try:
        return _run_preflight(request, tenant, domain)
    except DomainError as exc:
        raise HTTPException(422, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except DnsError as exc:
        raise HTTPException(503, str(exc)) from None


@router.get("/{domain}/warmup")
def warmup_status(domain: str, tenant: TenantUser, request: Request) -> dict[str, Any]:
    """The domain's warm-up: its state and stage, today's cap per provider group, what each
    group has used of it and when the caps reset."""
    assert tenant.tenant_id is not None
    try:
        with request.app.state.engine.connect() as conn:
            return warmup.status(
                conn, request.app.state.settings, tenant.tenant_id, domain, utcnow()
            )
    except DomainError as exc:
        raise HTTPException(422, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
