"""Tenant routes of the event stream.

- ``GET /v1/events?after=SEQ&limit=N&type=T`` — the tenant's ``event.v1`` events after a
  cursor, oldest first; ``next`` is the cursor for the following page (replay from 0).
- ``GET/POST /v1/event-endpoints`` — the tenant's webhook endpoints (at most 10); a new
  one's ``secret`` is shown in the answer to POST (and to a PATCH with
  ``rotate_secret``) and signs every post to it.
- ``GET/PATCH/DELETE /v1/event-endpoints/{id}``, ``POST /v1/event-endpoints/{id}/resume``,
  ``GET /v1/event-endpoints/{id}/dead-letters``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from postgate.core.clock import utcnow
from postgate.events import endpoints, guard, stream
from postgate.http.auth import TenantUser
from postgate.http.params import Line, RowId

T = TypeVar("T")
router = APIRouter(tags=["tenant: events"])
MAX_SEQ = 2**62


class EndpointSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Line = Field(min_length=8, max_length=2000, description="https:// URL to post to")
    types: list[Line] = Field(
        default_factory=list, max_length=20, description="event types; empty: all"
    )
    description: Line = Field(default="", max_length=200)


class EndpointChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Line | None = Field(default=None, min_length=8, max_length=2000)
    types: list[Line] | None = Field(default=None, max_length=20)
    description: Line | None = Field(default=None, max_length=200)
    rotate_secret: bool = False


def _answer(call: Callable[..., T], *args: Any) -> T:
    try:
        return call(*args)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except endpoints.EndpointError as exc:
        raise HTTPException(422, str(exc)) from None


async def _check(request: Request, url: str) -> None:
    allow = guard.networks(request.app.state.settings.webhook_allow_networks)
    try:
        await guard.check_url(url, allow)
    except guard.Refused as exc:
        raise HTTPException(422, f"webhook URL refused: {exc}") from None


@router.get("/v1/events")
def events(
    request: Request,
    user: TenantUser,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="the last seq seen")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[list[str] | None, Query(description="only these event types")] = None,
) -> dict[str, Any]:
    """The tenant's events after ``after``, oldest first, and the next cursor."""
    assert user.tenant_id is not None
    engine = request.app.state.engine
    kinds = _answer(endpoints.check_types, type or [])
    stream.stamp_all(engine)  # whatever committed until now is in order and readable
    with engine.connect() as conn:
        page = stream.page(conn, user.tenant_id, after, limit, kinds)
    return {"events": page, "next": page[-1]["seq"] if page else after}


@router.get("/v1/event-endpoints")
def list_endpoints(request: Request, user: TenantUser) -> list[dict[str, Any]]:
    assert user.tenant_id is not None
    return endpoints.listing(request.app.state.engine, user.tenant_id)


@router.post("/v1/event-endpoints", status_code=201)
async def create_endpoint(spec: EndpointSpec, request: Request, user: TenantUser) -> dict[str, Any]:
    """Register a webhook endpoint: it receives the events from now on, signed with the
    ``secret`` in this answer."""
    await _check(request, spec.url)
    return await run_in_threadpool(
        _answer,
        endpoints.create,
        request.app.state.engine,
        user.tenant_id,
        spec.url,
        spec.types,
        spec.description,
        user.name,
        utcnow(),
    )


@router.get("/v1/event-endpoints/{endpoint_id}")
def show_endpoint(endpoint_id: RowId, request: Request, user: TenantUser) -> dict[str, Any]:
    return _answer(endpoints.show, request.app.state.engine, user.tenant_id, endpoint_id)


@router.patch("/v1/event-endpoints/{endpoint_id}")
async def change_endpoint(
    endpoint_id: RowId, change: EndpointChange, request: Request, user: TenantUser
) -> dict[str, Any]:
    if change.url is not None:
        await _check(request, change.url)
    return await run_in_threadpool(
        _answer,
        endpoints.change,
        request.app.state.engine,
        user.tenant_id,
        endpoint_id,
        change.model_dump(),
        user.name,
        utcnow(),
    )


@router.delete("/v1/event-endpoints/{endpoint_id}")
def delete_endpoint(endpoint_id: RowId, request: Request, user: TenantUser) -> dict[str, Any]:
    _answer(
        endpoints.remove, request.app.state.engine, user.tenant_id, endpoint_id, user.name, utcnow()
    )
    return {"deleted": endpoint_id}


@router.post("/v1/event-endpoints/{endpoint_id}/resume")
def resume_endpoint(endpoint_id: RowId, request: Request, user: TenantUser) -> dict[str, Any]:
    """Take a paused endpoint back; it continues after the dead-lettered events."""
    return _answer(
        endpoints.resume, request.app.state.engine, user.tenant_id, endpoint_id, user.name, utcnow()
    )


@router.get("/v1/event-endpoints/{endpoint_id}/dead-letters")
def endpoint_dead_letters(
    endpoint_id: RowId, request: Request, user: TenantUser
) -> list[dict[str, Any]]:
    """The events this endpoint did not take within the retry window, newest first."""
    return _answer(endpoints.dead_letters, request.app.state.engine, user.tenant_id, endpoint_id)
