"""HTTP callbacks from SMS gateways: delivery reports and replies (FastAPI router).

``/v1/sms/<provider>/report`` and ``/v1/sms/<provider>/inbound`` take query (GET) or form
(POST) fields and answer ``OK``; the gateway's own ``callbacks`` (see
``providers.sms.HttpCallbacks``) read them. The URL carries a key derived from
``SECRET_KEY`` and the provider's name, so that nobody else can post reports.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import Engine

from postgate.core.clock import utcnow
from postgate.feedback import sms as feedback
from postgate.providers import registry
from postgate.providers.sms import HttpCallbacks, callback_key

log = logging.getLogger("postgate.sms.callbacks")


async def _params(request: Request) -> dict[str, str]:
    """Query and form fields; a NUL (which no database text holds) becomes U+FFFD, so a
    garbled report simply matches nothing."""
    params = dict(request.query_params)
    if request.method == "POST":
        form = await request.form()
        params.update({k: str(v) for k, v in form.items()})
    return {k.replace("\x00", "\ufffd"): v.replace("\x00", "\ufffd") for k, v in params.items()}


def _check_key(request: Request, params: Mapping[str, str], provider: str) -> None:
    given = params.get("k", "").encode("utf-8", "replace")
    # every key of a rotation: reports of SMS sent before it carry the old one
    if not any(
        hmac.compare_digest(given, callback_key(key, provider).encode())
        for key in request.app.state.settings.keys
    ):
        raise HTTPException(status_code=403, detail="bad callback key")


def _write(engine: Engine, fn: Callable[..., Any], *args: Any) -> None:
    """Run a feedback writer in one transaction (in a worker thread, off the event loop)."""
    with engine.begin() as conn:
        fn(conn, *args)


router = APIRouter(tags=["sms callbacks"])


def _callbacks(provider: str) -> HttpCallbacks:
    try:
        found = getattr(registry.factory(provider), "callbacks", None)
    except registry.UnknownProvider:
        found = None
    if found is None:
        raise HTTPException(status_code=404, detail="no such gateway")
    return cast(HttpCallbacks, found)


@router.get(
    "/v1/sms/{provider}/report", response_class=PlainTextResponse, operation_id="sms_report_get"
)
@router.post(
    "/v1/sms/{provider}/report", response_class=PlainTextResponse, operation_id="sms_report_post"
)
async def sms_report(request: Request, provider: str) -> str:
    callbacks = _callbacks(provider)
    params = await _params(request)
    _check_key(request, params, provider)
    found = callbacks.reports(params)
    if found:
        await asyncio.to_thread(
            _write,
            request.app.state.engine,
            feedback.record_reports,
            [r for r, _ in found],
            utcnow(),
            [i for _, i in found],
        )
    log.info("%s reports: %d", provider, len(found))
    return "OK"


@router.get(
    "/v1/sms/{provider}/inbound", response_class=PlainTextResponse, operation_id="sms_inbound_get"
)
@router.post(
    "/v1/sms/{provider}/inbound", response_class=PlainTextResponse, operation_id="sms_inbound_post"
)
async def sms_inbound(request: Request, provider: str) -> str:
    callbacks = _callbacks(provider)
    params = await _params(request)
    _check_key(request, params, provider)
    message = callbacks.inbound(params)
    if message is not None:
        await asyncio.to_thread(
            _write, request.app.state.engine, feedback.inbound, message, utcnow()
        )
    return "OK"
