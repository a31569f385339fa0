"""Routes of the visitor pages that have no older home: the hosted form
(``GET /f/{public_id}``), its CORS preflight, the stylesheet, and the tenant's brand and
topic names (``/v1/brand``, ``/v1/topics/{topic}``)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, insert, select

from postgate.consent import signup
from postgate.core import i18n
from postgate.core.clock import utcnow
from postgate.core.params import Line, Text
from postgate.http.auth import TenantUser
from postgate.pages import cors, views
from postgate.pages.render import STATIC
from postgate.tenants import brand

public = APIRouter(include_in_schema=False)
tenant = APIRouter(prefix="/v1")
ASSETS = {"pages.css": "text/css", "favicon.svg": "image/svg+xml"}


@public.get("/p/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, "no such file")
    return FileResponse(
        STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=3600"}
    )


@public.get("/f/{public_id}")
async def hosted_form(public_id: str, request: Request) -> Response:
    engine = request.app.state.engine
    form = (
        None
        if len(public_id) > 64
        else await asyncio.to_thread(signup.find_form, engine, public_id)
    )
    if form is None:
        return views.error_page(request, 404)
    return await asyncio.to_thread(views.form_page, engine, request, form)


@public.options("/f/{public_id}")
async def preflight(public_id: str, request: Request) -> Response:
    form = (
        None
        if len(public_id) > 64
        else await asyncio.to_thread(signup.find_form, request.app.state.engine, public_id)
    )
    answer = cors.preflight_headers(form, request) if form is not None else None
    if answer is None:
        return Response(status_code=403, headers={"Vary": "Origin"})
    return Response(status_code=204, headers=answer)


class BrandSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: Line = Field(default="", max_length=200)
    logo_url: Line = Field(default="", max_length=1000)
    accent_color: Line = Field(default="", max_length=7)
    website_url: Line = Field(default="", max_length=1000)
    privacy_url: Line = Field(default="", max_length=1000)
    locale: Line = Field(default="", max_length=20)
    time_zone: Line = Field(default=i18n.DEFAULT_TIME_ZONE, max_length=64)
    allow_resubscribe: bool = True

    @field_validator("logo_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if value and not brand.safe_url(value, https_only=True):
            raise ValueError("the logo must be an https URL")
        return value

    @field_validator("website_url", "privacy_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not brand.safe_url(value):
            raise ValueError("must be an http or https URL")
        return value

    @field_validator("accent_color")
    @classmethod
    def _colour(cls, value: str) -> str:
        if value and not brand.COLOUR.match(value):
            raise ValueError("a colour like #1f5fa8")
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if value and i18n.supported(value) != value:
            raise ValueError("one of: " + ", ".join(i18n.available()))
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if i18n.zone(value).key != value:
            raise ValueError("an IANA time zone such as Europe/Budapest")
        return value


def _brand_out(conn: Any, tenant_id: int) -> dict[str, Any]:
    b = brand.brand_table.c
    row = conn.execute(select(brand.brand_table).where(b.tenant_id == tenant_id)).first()
    if row is None:
        return BrandSpec().model_dump()
    return {k: v for k, v in row._mapping.items() if k in BrandSpec.model_fields}


@tenant.get("/brand")
def get_brand(user: TenantUser, request: Request) -> dict[str, Any]:
    with request.app.state.engine.connect() as conn:
        return _brand_out(conn, int(user.tenant_id or 0))


@tenant.put("/brand")
def put_brand(spec: BrandSpec, user: TenantUser, request: Request) -> dict[str, Any]:
    """The tenant's name, logo, colour and links as its visitors see them."""
    tenant_id = int(user.tenant_id or 0)
    b = brand.brand_table
    with request.app.state.engine.begin() as conn:
        conn.execute(delete(b).where(b.c.tenant_id == tenant_id))
        conn.execute(
            insert(b).values(tenant_id=tenant_id, updated_at=utcnow(), **spec.model_dump())
        )
        return _brand_out(conn, tenant_id)


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Line = Field(min_length=1, max_length=200)
    description: Text = Field(default="", max_length=2000)


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: dict[str, Label] = Field(min_length=1)

    @field_validator("labels")
    @classmethod
    def _languages(cls, value: dict[str, Label]) -> dict[str, Label]:
        unknown = [code for code in value if i18n.supported(code) != code]
        if unknown:
            raise ValueError(f"unknown languages {unknown}; known: {list(i18n.available())}")
        return value


@tenant.put("/topics/{topic}")
def put_topic(topic: str, spec: TopicSpec, user: TenantUser, request: Request) -> dict[str, Any]:
    """A topic's name and description per language (replacing the ones it had)."""
    if not 1 <= len(topic) <= 100:
        raise HTTPException(422, "a topic is 1 to 100 characters")
    tenant_id = int(user.tenant_id or 0)
    lt = brand.label_table
    with request.app.state.engine.begin() as conn:
        conn.execute(delete(lt).where(lt.c.tenant_id == tenant_id, lt.c.topic == topic))
        conn.execute(
            insert(lt),
            [
                {
                    "tenant_id": tenant_id,
                    "topic": topic,
                    "locale": code,
                    "name": label.name,
                    "description": label.description,
                }
                for code, label in spec.labels.items()
            ],
        )
    return {"topic": topic, "labels": {k: v.model_dump() for k, v in spec.labels.items()}}


def install(app: FastAPI) -> None:
    """Mount the visitor pages' routes (called by ``postgate.api.create_app``)."""
    app.include_router(public)
    app.include_router(tenant)
