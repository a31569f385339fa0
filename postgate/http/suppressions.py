"""Tenant routes for the suppression list: export as JSON or CSV, import from either."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from postgate.core.clock import utcnow
from postgate.http.auth import TenantUser
from postgate.platform import suppression_io

router = APIRouter(prefix="/v1/suppressions", tags=["tenant: suppressions"])
MAX_BYTES = 20 * 1024 * 1024


@router.get(
    "",
    response_model=None,
    responses={
        200: {
            "description": "every entry; an erased person's address only as its sha256: hash",
            "content": {"application/json": {}, "text/csv": {}},
        }
    },
)
def export(
    request: Request,
    user: TenantUser,
    format: Literal["json", "csv"] = "json",
    channel: Literal["email", "sms"] | None = None,
) -> Any:
    assert user.tenant_id is not None
    rows = suppression_io.entries(request.app.state.engine, user.tenant_id, channel)
    if format == "csv":
        return StreamingResponse(
            suppression_io.as_csv(rows),
            media_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="{user.tenant_slug}-suppressions.csv"'
            },
        )
    return {"suppressions": list(rows)}


@router.post(
    "/imports",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def import_suppressions(request: Request, user: TenantUser) -> dict[str, Any]:
    """Columns (CSV) or keys (JSON): ``address``, optional ``channel`` (needed for a
    ``sha256:`` entry), ``reason`` (default ``manual``), ``detail``. The body's
    content type picks the format."""
    assert user.tenant_id is not None
    body = await request.body()
    if len(body) > MAX_BYTES:
        raise HTTPException(413, f"import larger than {MAX_BYTES} bytes")
    fmt = "json" if "json" in request.headers.get("content-type", "") else "csv"
    try:
        text = body.decode("utf-8-sig")
        return await asyncio.to_thread(
            suppression_io.run_import,
            request.app.state.engine,
            user.tenant_id,
            text,
            fmt,
            user.name,
            utcnow(),
        )
    except UnicodeDecodeError:
        raise HTTPException(422, "the file must be UTF-8") from None
    except suppression_io.SuppressionImportRefused as exc:
        raise HTTPException(422, str(exc)) from None
