"""The tenant side of consent: signup forms, list imports, dry runs and evidence export.
Every route is scoped by the caller's tenant; another tenant's ids answer 404."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import insert, select, update

from postgate.consent import evidence, imports, signup
from postgate.consent.dry_run import dry_run
from postgate.core import i18n
from postgate.core.clock import utcnow
from postgate.core.message import MessageError, parse_campaign
from postgate.http import forms as public_api
from postgate.http.auth import TenantUser
from postgate.http.params import BigRowId, BodyId, Line, RowId, Text
from postgate.http.ratelimit import limiter_for
from postgate.observability.metrics import CONSENT_EVENTS
from postgate.pages import cors, embed
from postgate.store import tables as t

router = APIRouter(prefix="/v1")
MAX_IMPORT_BYTES = 20 * 1024 * 1024


class FormSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Line = Field(min_length=1, max_length=200)
    topic: Line = Field(min_length=1, max_length=100)
    list_id: BodyId
    channels: list[str] = Field(default_factory=lambda: ["email"])
    consent_text: Text = Field(min_length=1, max_length=20_000)
    consent_text_version: Line = Field(min_length=1, max_length=50)
    success_message: Text = Field(default="", max_length=2000)
    confirmed_message: Text = Field(default="", max_length=2000)
    locale: Line = Field(default="", max_length=20)  # "" = the tenant's, else the visitor's
    allowed_origins: list[Line] = Field(default_factory=list, max_length=20)

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if value and i18n.supported(value) != value:
            raise ValueError("one of: " + ", ".join(i18n.available()))
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = [cors.origin_of(v) for v in value]
        if not all(origins):
            raise ValueError("origins look like https://shop.example (scheme, host, port)")
        return origins


class FormPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


def _form_out(row: Any, public_url: str) -> dict[str, Any]:
    return {
        "public_id": row.public_id,
        "name": row.name,
        "topic": row.topic,
        "list_id": row.list_id,
        "channels": row.channels,
        "enabled": row.enabled,
        "consent_text_version": row.consent_text_version,
        "consent_text_hash": row.consent_text_hash,
        "locale": row.locale,
        "allowed_origins": row.allowed_origins or [],
        "url": f"{public_url.rstrip('/')}/f/{row.public_id}",
        "embed_html": embed.snippet(row, public_url),
    }


@router.post("/forms", status_code=201)
def create_form(spec: FormSpec, user: TenantUser, request: Request) -> dict[str, Any]:
    if (
        not spec.channels
        or len(set(spec.channels)) != len(spec.channels)
        or not set(spec.channels) <= {"email", "sms"}
    ):
        raise HTTPException(
            422,
            'channels must be one or both of "email" and "sms"; each '
            "is confirmed on its own address (a mail, an SMS)",
        )
    engine = request.app.state.engine
    with engine.begin() as conn:
        owner = conn.scalar(
            select(t.mailing_list.c.tenant_id).where(t.mailing_list.c.id == spec.list_id)
        )
        if owner != user.tenant_id:
            raise HTTPException(404, "no such list")
        values = spec.model_dump() | {
            "tenant_id": user.tenant_id,
            "public_id": secrets.token_urlsafe(16),
            "consent_text_hash": signup.hash_text(spec.consent_text),
            "enabled": True,
            "created_at": utcnow(),
        }
        conn.execute(insert(t.signup_form).values(**values))
        row = conn.execute(
            select(t.signup_form).where(t.signup_form.c.public_id == values["public_id"])
        ).one()
    return _form_out(row, request.app.state.settings.public_url)


@router.get("/forms")
def list_forms(user: TenantUser, request: Request) -> list[dict[str, Any]]:
    with request.app.state.engine.connect() as conn:
        rows = conn.execute(
            select(t.signup_form)
            .where(t.signup_form.c.tenant_id == user.tenant_id)
            .order_by(t.signup_form.c.id)
        ).all()
    return [_form_out(r, request.app.state.settings.public_url) for r in rows]


@router.patch("/forms/{public_id}")
def patch_form(
    public_id: str, patch: FormPatch, user: TenantUser, request: Request
) -> dict[str, Any]:
    f = t.signup_form.c
    with request.app.state.engine.begin() as conn:
        done = conn.execute(
            update(t.signup_form)
            .where(f.public_id == public_id, f.tenant_id == user.tenant_id)
            .values(enabled=patch.enabled)
        )
        if done.rowcount != 1:
            raise HTTPException(404, "no such form")
        row = conn.execute(select(t.signup_form).where(f.public_id == public_id)).one()
    return _form_out(row, request.app.state.settings.public_url)


@router.post("/lists/{list_id}/imports", status_code=201)
async def import_list(list_id: RowId, user: TenantUser, request: Request) -> dict[str, Any]:
    """CSV body; the provenance declaration in query parameters (source, topic,
    collected_at, evidence, purchase_date, marketing_checkbox)."""
    assert user.tenant_id is not None
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise HTTPException(413, f"import larger than {MAX_IMPORT_BYTES} bytes")
    try:
        decl = imports.Provenance.model_validate(dict(request.query_params))
        text = body.decode("utf-8-sig")
    except ValidationError as exc:
        raise HTTPException(422, "; ".join(e["msg"] for e in exc.errors())) from None
    except UnicodeDecodeError:
        raise HTTPException(422, "the CSV must be UTF-8") from None
    try:
        result = await asyncio.to_thread(
            imports.run_import,
            request.app.state.engine,
            user.tenant_id,
            list_id,
            decl,
            text,
            user.name,
            utcnow(),
        )
    except imports.ImportRefused as exc:
        raise HTTPException(422, str(exc)) from None
    except LookupError:
        raise HTTPException(404, "no such list") from None
    CONSENT_EVENTS.labels(user.tenant_slug, "import_row").inc(result["rows_imported"])
    CONSENT_EVENTS.labels(user.tenant_slug, "import_dropped").inc(result["rows_dropped"])
    return result


@router.post("/campaigns/dry-run")
async def campaign_dry_run(user: TenantUser, request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    try:
        msg = parse_campaign(await request.body(), settings.max_message_bytes)
        if msg.tenant != user.tenant_slug:
            raise MessageError("the message names another tenant")
        return await asyncio.to_thread(
            dry_run, request.app.state.engine, msg, settings.page_size, utcnow(), settings
        )
    except MessageError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/contacts/{contact_id}/evidence")
def contact_evidence(contact_id: BigRowId, user: TenantUser, request: Request) -> dict[str, Any]:
    assert user.tenant_id is not None
    found = evidence.bundle(request.app.state.engine, user.tenant_id, contact_id)
    if found is None:
        raise HTTPException(404, "no such contact")
    return found


def install(app: FastAPI) -> None:
    """Mount the consent routers on the api (called by ``postgate.http.app.create_app``)."""
    settings = app.state.settings
    app.state.limiter = limiter_for(settings.redis_url, settings.queue_prefix)
    app.include_router(router)
    app.include_router(public_api.router)
