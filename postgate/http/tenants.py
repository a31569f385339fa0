"""Operator routes for provisioning (operator keys only): tenants and their lists.

- ``GET/POST /v1/operator/tenants``, ``GET/PATCH /v1/operator/tenants/{slug}``
- ``POST /v1/operator/tenants/{slug}/suspend|reinstate|close`` ``{"reason"}``
- ``GET  /v1/operator/tenants/{slug}/export.xml`` (before closure, and after until purged)
- ``GET/POST /v1/operator/tenants/{slug}/lists``,
  ``PATCH/DELETE /v1/operator/tenants/{slug}/lists/{list_id}``
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar, cast

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from postgate.core.clock import utcnow
from postgate.http.auth import Operator
from postgate.http.kill_switch import resume_held
from postgate.http.params import Line, RowId, Text
from postgate.platform import provisioning as prov
from postgate.runtime.announce import announce
from postgate.tenants.export import export_tenant

T = TypeVar("T")
router = APIRouter(prefix="/v1/operator/tenants", tags=["operator: provisioning"])


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = Field(min_length=3, max_length=2000)


class ListName(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Line = Field(min_length=1, max_length=200)


def _tenant_id(engine: Engine, slug: str) -> int:
    with engine.connect() as conn:
        try:
            return prov.tenant_id_of(conn, slug)
        except LookupError:
            raise HTTPException(404, f"no tenant {slug!r}") from None


def answer(call: Callable[..., T], *args: Any) -> T:
    """Run a provisioning call; its refusals become 404, 409 or 422 with the reason."""
    try:
        return call(*args)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except prov.Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except prov.ProvisioningError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("")
def list_tenants(request: Request, operator: Operator) -> list[dict[str, Any]]:
    """Every tenant with its profile, sending status and closure."""
    return prov.listing(request.app.state.engine)


@router.post("", status_code=201)
def create_tenant(spec: prov.TenantSpec, request: Request, operator: Operator) -> dict[str, Any]:
    """Create a tenant; then make its key with ``postgate keys create --tenant SLUG``."""
    state = request.app.state
    return answer(prov.create_tenant, state.engine, spec, operator.name, utcnow(), state.settings)


@router.get("/{slug}")
def show_tenant(slug: str, request: Request, operator: Operator) -> dict[str, Any]:
    return answer(prov.show, request.app.state.engine, slug)


@router.patch("/{slug}")
def update_tenant(
    slug: str, patch: prov.TenantPatch, request: Request, operator: Operator
) -> dict[str, Any]:
    """Change the legal name, primary domain, locale, default From or limits."""
    state = request.app.state
    return answer(
        prov.update_tenant, state.engine, slug, patch, operator.name, utcnow(), state.settings
    )


@router.post("/{slug}/suspend")
def suspend(slug: str, body: Reason, request: Request, operator: Operator) -> dict[str, Any]:
    """Stop bulk email and bulk SMS; confirmations and receipts keep flowing."""
    engine, settings = request.app.state.engine, request.app.state.settings
    out = answer(prov.suspend, engine, slug, body.reason, operator.name, utcnow())
    announce(settings, out["id"])
    return dict(out)


@router.post("/{slug}/reinstate")
def reinstate(slug: str, body: Reason, request: Request, operator: Operator) -> dict[str, Any]:
    """Clear the bulk blocks (operator's and breaker's); held deliveries are sent."""
    engine, settings = request.app.state.engine, request.app.state.settings
    out = answer(prov.reinstate, engine, slug, body.reason, operator.name, utcnow())
    announce(settings, out["id"])
    return dict(out) | {"resumed": resume_held(engine, settings, out["id"])}


@router.post("/{slug}/close")
def close(slug: str, body: Reason, request: Request, operator: Operator) -> dict[str, Any]:
    """Close the tenant: sending stops for good, its keys are revoked, and its data is
    erased 90 days later. Take the export first (``GET …/export.xml``); it stays
    available until the erasure."""
    engine, settings = request.app.state.engine, request.app.state.settings
    out = answer(prov.close, engine, slug, body.reason, operator.name, utcnow())
    announce(settings, out["id"])
    return dict(out)


@router.get(
    "/{slug}/export.xml",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/xml": {}},
            "description": "the export document (delivery/export.xsd)",
        }
    },
)
async def export(slug: str, request: Request, operator: Operator) -> StreamingResponse:
    engine = request.app.state.engine
    tenant_id = _tenant_id(engine, slug)
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    await run_in_threadpool(export_tenant, engine, tenant_id, cast(BinaryIO, spool))
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        with spool:
            while block := spool.read(64 * 1024):
                yield block

    return StreamingResponse(
        chunks(),
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{slug}-export.xml"'},
    )


@router.get("/{slug}/lists")
def tenant_lists(slug: str, request: Request, operator: Operator) -> list[dict[str, Any]]:
    engine = request.app.state.engine
    return prov.lists(engine, _tenant_id(engine, slug))


@router.post("/{slug}/lists", status_code=201)
def create_list(slug: str, body: ListName, request: Request, operator: Operator) -> dict[str, Any]:
    engine = request.app.state.engine
    return answer(
        prov.create_list, engine, _tenant_id(engine, slug), body.name, operator.name, utcnow()
    )


@router.patch("/{slug}/lists/{list_id}")
def rename_list(
    slug: str, list_id: RowId, body: ListName, request: Request, operator: Operator
) -> dict[str, Any]:
    engine = request.app.state.engine
    return answer(
        prov.rename_list,
        engine,
        _tenant_id(engine, slug),
        list_id,
        body.name,
        operator.name,
        utcnow(),
    )


@router.delete("/{slug}/lists/{list_id}")
def delete_list(slug: str, list_id: RowId, request: Request, operator: Operator) -> dict[str, Any]:
    engine = request.app.state.engine
    return answer(
        prov.delete_list, engine, _tenant_id(engine, slug), list_id, operator.name, utcnow()
    )
