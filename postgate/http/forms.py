"""Public endpoints, reached from tenants' websites and from mail: the signup form post
(``/f/{public_id}``), the double opt-in confirmation (``/c/{token}``) and unsubscribe
(``/u/{token}``, RFC 8058 one-click). GETs only show a page with a button; only POSTs
change anything, so link scanners that prefetch URLs never confirm or unsubscribe.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from postgate.consent import signup
from postgate.core.addresses import (
    AddressError,
    clean_name,
    normalise_email,
    normalise_phone,
    region_of,
)
from postgate.core.clock import utcnow
from postgate.feedback import unsubscribe
from postgate.http.ratelimit import Limiter
from postgate.observability.metrics import CONSENT_EVENTS
from postgate.pages import cors, preference_page, render, views
from postgate.runtime.broker import Broker
from postgate.settings import Settings

log = logging.getLogger("postgate.forms")
router = APIRouter()
MAX_BODY = 16 * 1024
MAX_FIELD = 1000
MAX_FIELDS = 20
HONEYPOT = "website"


def visitor(request: Request) -> signup.Visitor:
    host = request.client.host if request.client else ""
    return signup.Visitor(host, request.headers.get("user-agent", "")[:500])


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (
        not (declared.isascii() and declared.isdigit()) or int(declared) > MAX_BODY
    ):
        raise HTTPException(413, "request body too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, "request body too large")
    return body


async def read_fields(request: Request) -> tuple[dict[str, str], bool]:
    """The posted fields (urlencoded or JSON) and whether the caller speaks JSON."""
    body = await read_body(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
        if ctype == "application/json":
            data: Any = json.loads(text) if text else {}
            if not isinstance(data, dict) or len(data) > MAX_FIELDS:
                raise ValueError("expected a JSON object")
            fields = {str(k): v for k, v in data.items()}
            if not all(isinstance(v, str) for v in fields.values()):
                raise ValueError("every field must be a string")
            return fields, True
        if ctype in ("application/x-www-form-urlencoded", ""):
            parsed = parse_qs(
                text,
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=MAX_FIELDS,
                errors="strict",
            )
            return {k: v[0] for k, v in parsed.items()}, False
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, f"malformed body: {exc}") from None
    raise HTTPException(415, "send application/x-www-form-urlencoded or application/json")


def _limited(request: Request, key: str, limit: int) -> bool:
    limiter: Limiter = request.app.state.limiter
    settings: Settings = request.app.state.settings
    return not limiter.allow(key, limit, settings.signup_rate_window_s)


@router.post("/f/{public_id}")
async def form_post(public_id: str, request: Request) -> Response:
    """A signup. A browser that posted the form itself gets a page in its language (an
    error shows the form again with what was typed and what to fix); a script or an API
    client gets JSON, with CORS headers when its origin is one the form allows."""
    seen: dict[str, Any] = {}
    try:
        return await _form_post(public_id, request, seen)
    except HTTPException as exc:
        form = seen.get("form")
        extra = cors.response_headers(form, request) if form is not None else {}
        if seen.get("json") or not render.wants_html(request):
            if extra:
                raise HTTPException(
                    exc.status_code, exc.detail, {**(exc.headers or {}), **extra}
                ) from None
            raise
        return await asyncio.to_thread(
            views.form_error, request.app.state.engine, request, form, seen.get("fields", {}), exc
        )


async def _form_post(public_id: str, request: Request, seen: dict[str, Any]) -> Response:
    settings: Settings = request.app.state.settings
    engine = request.app.state.engine
    caller = visitor(request)
    if len(public_id) > 64:
        raise HTTPException(404, "no such form")
    if _limited(request, f"ip:{caller.ip}", settings.signup_rate_per_ip):
        raise HTTPException(429, "too many signups from this address; try later")
    fields, wants_json = await read_fields(request)
    seen.update(fields=fields, json=wants_json)
    form = await asyncio.to_thread(signup.find_form, engine, public_id)
    if form is None:
        raise HTTPException(404, "no such form")
    seen["form"] = form
    origin = request.headers.get("origin", "")
    if (
        cors.is_script(request)
        and origin
        and not cors.allowed(form, origin)
        and origin
        not in (cors.origin_of(settings.public_url), cors.origin_of(str(request.base_url)))
    ):
        raise HTTPException(403, "this form takes no posts from scripts of " + origin[:100])
    if _limited(request, f"form:{public_id}", settings.signup_rate_per_form):
        raise HTTPException(429, "this form is receiving too many signups; try later")
    if any(len(v) > MAX_FIELD for v in fields.values()):
        raise HTTPException(422, "a field is too long")
    try:
        who = _applicant(form.channels, fields, settings.signup_sms_regions)
    except AddressError as exc:
        raise HTTPException(422, str(exc)) from None
    locale = await asyncio.to_thread(views.signup_locale, engine, request, form)
    _ = render.words(locale)
    default = _("Check your mailbox.") if "email" in form.channels else _("Check your phone.")
    pending = {"status": "pending", "message": form.success_message or default}
    headers = cors.response_headers(form, request)
    if fields.get(HONEYPOT):  # bots fill every field; people never see this one
        log.info("form=%s honeypot filled from %s; dropped", public_id, caller.ip)
        return await _answer(request, form, wants_json, pending, headers)
    result = await asyncio.to_thread(
        signup.submit, engine, settings, form, who, list(form.channels), caller, utcnow(), locale
    )
    CONSENT_EVENTS.labels(form.tenant_slug, "signup").inc()
    if result.capped:
        CONSENT_EVENTS.labels(form.tenant_slug, "confirmation_capped").inc()
    if result.status == "full":
        CONSENT_EVENTS.labels(form.tenant_slug, "contact_limit").inc()
    for queued, batch in enumerate(result.batches):
        try:
            await asyncio.to_thread(_publish, settings, batch)
        except Exception:
            log.exception(
                "form=%s rcpt=%s confirmation could not be queued",
                public_id,
                who.email or who.phone,
            )
            await asyncio.to_thread(signup.abandon, engine, result, utcnow(), queued)
            raise HTTPException(503, "temporarily unavailable; try again shortly") from None
        CONSENT_EVENTS.labels(form.tenant_slug, "confirmation_sent").inc()
    return await _answer(request, form, wants_json, pending, headers)


def _applicant(channels: list[str], fields: dict[str, str], regions: str) -> signup.Applicant:
    """The typed addresses, normalised. Each channel of the form needs its own (an email
    form an address, an SMS form a number in ``regions``); an address the form does not
    confirm must still be valid, but is not kept."""
    email_in, phone_in = fields.get("email", "").strip(), fields.get("phone", "").strip()
    if "sms" in channels and not phone_in:
        raise AddressError("a phone number is required")
    email = normalise_email(email_in) if email_in or "email" in channels else None
    phone = normalise_phone(phone_in) if phone_in else None
    if phone and "sms" in channels:
        allowed = {r.strip().upper() for r in regions.split(",") if r.strip()}
        if "*" not in allowed and region_of(phone) not in allowed:
            raise AddressError(
                "confirmation SMS go only to numbers of: " + ", ".join(sorted(allowed))
            )
    return signup.Applicant(
        email if "email" in channels else None,
        phone if "sms" in channels else None,
        clean_name(fields.get("name", "")),
    )


def _publish(settings: Settings, batch: dict[str, Any]) -> None:
    broker = Broker(settings.broker_url, settings.queue_prefix)
    try:
        broker.publish("send", batch)
    finally:
        broker.close()


async def _answer(
    request: Request, form: Any, wants_json: bool, data: dict[str, str], headers: dict[str, str]
) -> Response:
    if wants_json:
        return JSONResponse(data, status_code=202, headers=headers)
    reply = await asyncio.to_thread(
        views.pending_page, request.app.state.engine, request, form, form.success_message
    )
    reply.headers.update(headers)
    return reply


@router.get("/c/{token}")
def confirm_page(token: str, request: Request) -> Response:
    engine = request.app.state.engine
    with engine.connect() as conn:
        row = signup.find_pending(conn, token, utcnow())
    if row is None:
        return views.invalid_link(request)
    return views.confirm_page(engine, request, row)


@router.post("/c/{token}")
def confirm_post(token: str, request: Request) -> Response:
    now = utcnow()
    row = signup.confirm(request.app.state.engine, token, visitor(request), now)
    if row is None:
        return views.invalid_link(request)
    CONSENT_EVENTS.labels(row.tenant_slug, "confirmed").inc()
    return views.confirmed_page(request.app.state.engine, request, row, now)


@router.get("/u/{token}")
def unsubscribe_page(token: str, request: Request) -> Response:
    """The preference centre: the topics this address gets, to leave one or all."""
    return preference_page.show(request, token)


@router.post("/u/{token}")
async def unsubscribe_post(token: str, request: Request) -> Response:
    settings: Settings = request.app.state.settings
    body = await read_body(request)
    # RFC 8058 receivers post List-Unsubscribe=One-Click urlencoded or as multipart/form-data;
    # the signed token is the authority either way, the body only tells where it came from.
    source = "one_click" if b"One-Click" in body else "link"
    if source == "link" and b"action=" in body:  # a button of the preference centre
        return await preference_page.change(request, token, body)
    who = await asyncio.to_thread(
        unsubscribe.apply, request.app.state.engine, settings.keys, token, source, utcnow()
    )
    if who is None:
        return views.invalid_link(request, "unsubscribe")
    CONSENT_EVENTS.labels(who.tenant_slug, "unsubscribed").inc()
    return await asyncio.to_thread(preference_page.unsubscribed, request, token)
