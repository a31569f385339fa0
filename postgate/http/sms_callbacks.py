"""HTTP callbacks from the SMS gateway: delivery reports and replies (FastAPI router).

SMSAPI calls ``notify_url`` with the report as query (GET) or form (POST) fields and
expects the body ``OK``; anything else makes it retry. The URL carries a key derived
from ``SECRET_KEY`` so that nobody else can post reports; our delivery id comes back
as ``idx`` and ties the report to its row even before the sender recorded the MsgId.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import Engine

from postgate.core.clock import utcnow
from postgate.feedback import sms as feedback
from postgate.feedback.event import row_id
from postgate.providers.sms import InboundSms
from postgate.providers.smsapi import INBOUND_PATH, REPORT_PATH, callback_key, parse_callback

log = logging.getLogger("postgate.sms.callbacks")
async def _params(request: Request) -> dict[str, str]:
    """Query and form fields; a NUL (which no database text holds) becomes U+FFFD, so a
    garbled report simply matches nothing."""
    params = dict(request.query_params)
    if request.method == "POST":
        form = await request.form()
        params.update({k: str(v) for k, v in form.items()})
    return {k.replace("\x00", "\ufffd"): v.replace("\x00", "\ufffd")
            for k, v in params.items()}


def _check_key(request: Request, params: Mapping[str, str]) -> None:
    given = params.get("k", "").encode("utf-8", "replace")
    # every key of a rotation: reports of SMS sent before it carry the old one
    if not any(hmac.compare_digest(given, callback_key(key).encode())
               for key in request.app.state.settings.keys):
        raise HTTPException(status_code=403, detail="bad callback key")


def _write(engine: Engine, fn: Callable[..., Any], *args: Any) -> None:
    """Run a feedback writer in one transaction (in a worker thread, off the event loop)."""
    with engine.begin() as conn:
        fn(conn, *args)


def _idx(value: str) -> int | None:
    return row_id(value)


router = APIRouter()


@router.get(REPORT_PATH, response_class=PlainTextResponse, operation_id="smsapi_report_get")
@router.post(REPORT_PATH, response_class=PlainTextResponse, operation_id="smsapi_report_post")
async def smsapi_report(request: Request) -> str:
    params = await _params(request)
    _check_key(request, params)
    reports = parse_callback(params)
    idx = [_idx(v) for v in params.get("idx", "").split(",")]
    ids = [idx[i] if i < len(idx) else None for i in range(len(reports))]
    if reports:
        await asyncio.to_thread(_write, request.app.state.engine, feedback.record_reports,
                                reports, utcnow(), ids)
    log.info("smsapi reports: %d", len(reports))
    return "OK"


@router.get(INBOUND_PATH, response_class=PlainTextResponse, operation_id="smsapi_inbound_get")
@router.post(INBOUND_PATH, response_class=PlainTextResponse, operation_id="smsapi_inbound_post")
async def smsapi_inbound(request: Request) -> str:
    params = await _params(request)
    _check_key(request, params)
    message = InboundSms("smsapi", params.get("sms_from", ""), params.get("sms_to", ""),
                         params.get("sms_text", ""), params.get("MsgId", ""),
                         str(sorted(params.items()))[:2000])
    if message.sender and message.text:
        await asyncio.to_thread(_write, request.app.state.engine, feedback.inbound, message,
                                utcnow())
    return "OK"
