"""Provider webhooks: ESP events and SMS delivery reports, authenticated and normalised.

``POST /v1/webhooks/{provider}`` takes ``{"events": [...]}`` signed with the provider's
secret from ``WEBHOOK_SECRETS`` (a JSON object, provider -> secret):
``X-Postgate-Timestamp: <unix seconds>`` and
``X-Postgate-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``, compared in
constant time and refused when older than five minutes (no replays). Each event names
our Message-ID (the signed ``<delivery.campaign.tenant.mac@domain>`` we sent, which
providers echo; the provider's signature makes it trusted) or a ``delivery_id``, a
``type`` and the provider's event ``id``. Types map onto the one feedback vocabulary;
anything else becomes ``unknown`` and is kept, never refused.
Events go through the same exactly-once store as mailed feedback.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import Engine

from postgate.core.clock import utcnow
from postgate.core.states import FeedbackKind
from postgate.feedback import apply as feedback_store
from postgate.feedback.event import Feedback
from postgate.feedback.webhook import normalise, verify
from postgate.runtime.announce import announce
from postgate.settings import Settings

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
MAX_BODY = 1_000_000


@router.post("/{provider}")
async def receive(request: Request, provider: str) -> dict[str, Any]:
    settings = request.app.state.settings
    secret = settings.webhook_secrets.get(provider)
    body = await request.body()
    if secret is None:
        raise HTTPException(404, "unknown provider")
    if len(body) > MAX_BODY or not verify(
        secret,
        request.headers.get("x-postgate-timestamp", ""),
        request.headers.get("x-postgate-signature", ""),
        body,
        time.time(),
    ):
        raise HTTPException(401, "bad or stale signature")
    try:
        events = json.loads(body)["events"]
        assert isinstance(events, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise HTTPException(422, 'expected {"events": [...]}') from None
    return await asyncio.to_thread(
        apply_events, request.app.state.engine, settings, provider, events
    )


def apply_events(
    engine: Engine, settings: Settings, provider: str, events: list[Any]
) -> dict[str, int]:
    counts = {"applied": 0, "duplicate": 0, "ignored": 0}
    for event in events:
        fb = (
            normalise(event, settings.keys)
            if isinstance(event, dict)
            else Feedback(FeedbackKind.UNKNOWN)
        )
        if fb is None:
            counts["ignored"] += 1
            continue
        raw = json.dumps(event, sort_keys=True).encode()
        key = (
            f"webhook:{provider}:{event.get('id')}"
            if isinstance(event, dict) and event.get("id")
            else None
        )
        applied = feedback_store.apply(engine, settings, fb, raw, "webhook", utcnow(), key=key)
        counts["applied" if applied.new else "duplicate"] += 1
        if applied.tripped and applied.tenant_id is not None:
            announce(settings, applied.tenant_id)
    return counts
