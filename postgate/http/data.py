"""Tenant routes for data rights: erase a person, export everything as XML."""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any, BinaryIO, cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from postgate.core.params import Line
from postgate.http.auth import TenantUser
from postgate.tenants.erasure import erase
from postgate.tenants.export import export_tenant

router = APIRouter(prefix="/v1", tags=["data"])


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: Line = Field(min_length=3, max_length=320)


@router.post("/erasures")
def erase_person(body: ErasureRequest, request: Request, user: TenantUser) -> dict[str, Any]:
    assert user.tenant_id is not None
    report = erase(request.app.state.engine, user.tenant_id, body.address, actor=user.name)
    return dataclasses.asdict(report)


@router.get(
    "/export.xml",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/xml": {}}, "description": "the export document"}},
)
async def export(request: Request, user: TenantUser) -> StreamingResponse:
    """The tenant's data as XML (schema: postgate/tenants/export.xsd), spooled to disk."""
    assert user.tenant_id is not None
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    await run_in_threadpool(
        export_tenant, request.app.state.engine, user.tenant_id, cast(BinaryIO, spool)
    )
    spool.seek(0)

    def chunks() -> Any:
        with spool:
            while block := spool.read(64 * 1024):
                yield block

    return StreamingResponse(
        chunks(),
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{user.tenant_slug}-export.xml"'},
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
