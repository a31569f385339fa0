"""Tenant routes for the tenant's own lists: ``GET/POST /v1/lists``,
``PATCH/DELETE /v1/lists/{list_id}``. Another tenant's list answers 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from postgate.core.clock import utcnow
from postgate.http.auth import TenantUser
from postgate.http.params import RowId
from postgate.http.tenants import ListName, answer
from postgate.platform import provisioning as prov

router = APIRouter(prefix="/v1/lists", tags=["tenant: lists"])


@router.get("")
def my_lists(request: Request, user: TenantUser) -> list[dict[str, Any]]:
    assert user.tenant_id is not None
    return prov.lists(request.app.state.engine, user.tenant_id)


@router.post("", status_code=201)
def create_list(body: ListName, request: Request, user: TenantUser) -> dict[str, Any]:
    return answer(
        prov.create_list, request.app.state.engine, user.tenant_id, body.name, user.name, utcnow()
    )


@router.patch("/{list_id}")
def rename_list(
    list_id: RowId, body: ListName, request: Request, user: TenantUser
) -> dict[str, Any]:
    return answer(
        prov.rename_list,
        request.app.state.engine,
        user.tenant_id,
        list_id,
        body.name,
        user.name,
        utcnow(),
    )


@router.delete("/{list_id}")
def delete_list(list_id: RowId, request: Request, user: TenantUser) -> dict[str, Any]:
    return answer(
        prov.delete_list, request.app.state.engine, user.tenant_id, list_id, user.name, utcnow()
    )
