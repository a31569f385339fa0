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
import hashlib
import hmac
import json
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import Engine

from postgate.core import tokens
from postgate.core.clock import utcnow
from postgate.core.states import FeedbackKind
from postgate.feedback import apply as feedback_store
from postgate.feedback.mail import Feedback, row_id
from postgate.runtime.announce import announce
from postgate.settings import Settings
from postgate.tenants import reputation

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
MAX_SKEW_S = 300
MAX_BODY = 1_000_000
# provider vocabulary -> (kind, hard)
TYPES: dict[str, tuple[FeedbackKind, bool | None]] = {
    "hard_bounce": (FeedbackKind.BOUNCE, True),
    "bounce": (FeedbackKind.BOUNCE, True),
    "permanent_fail": (FeedbackKind.BOUNCE, True),
    "soft_bounce": (FeedbackKind.BOUNCE, False),
    "deferred": (FeedbackKind.BOUNCE, False),
    "complaint": (FeedbackKind.COMPLAINT, None),
    "spamreport": (FeedbackKind.COMPLAINT, None),
    "spam_complaint": (FeedbackKind.COMPLAINT, None),
    "unsubscribe": (FeedbackKind.UNSUBSCRIBE, None),
    "unsubscribed": (FeedbackKind.UNSUBSCRIBE, None),
    "stop": (FeedbackKind.STOP, None),
    # SMS delivery reports (SMPP stat values)
    "undeliv": (FeedbackKind.BOUNCE, True),
    "rejectd": (FeedbackKind.BOUNCE, False),
    "expired": (FeedbackKind.BOUNCE, False),
}
IGNORED = frozenset(
    {
        "delivered",
        "delivrd",
        "open",
        "opened",
        "click",
        "clicked",
        "sent",
        "processed",
        "accepted",
        "enroute",
    }
)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, sent: str, body: bytes, now: float) -> bool:
    if (
        not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12)
        or abs(now - int(timestamp)) > MAX_SKEW_S
    ):
        return False
    # as bytes: compare_digest refuses str with non-ASCII characters, which a header may hold
    return hmac.compare_digest(
        signature(secret, timestamp, body).encode(), sent.encode("utf-8", "replace")
    )


def normalise(event: dict[str, Any], keys: tokens.Keys = ()) -> Feedback | None:
    """One provider event as feedback; None for events that carry no signal (delivered)."""
    kind_name = str(event.get("type") or event.get("event") or event.get("stat") or "").lower()
    if kind_name in IGNORED:
        return None
    kind, hard = TYPES.get(kind_name, (FeedbackKind.UNKNOWN, None))
    ref = tokens.message_id_decode(keys, str(event.get("message_id", "")))
    raw_id = event.get("delivery_id")
    delivery_id = (
        row_id(str(raw_id))
        if isinstance(raw_id, int | str) and not isinstance(raw_id, bool)
        else None
    )
    recipient = str(event.get("recipient") or event.get("email") or event.get("to") or "")
    status = str(event.get("status") or "")
    channel = "sms" if kind_name in ("undeliv", "rejectd", "expired") else "email"
    return Feedback(
        kind,
        hard=hard,
        recipients=(recipient,) if recipient else (),
        status=status,
        delivery_id=delivery_id,
        ref=ref,
        action="failed" if kind == FeedbackKind.BOUNCE else "",
        provider_signed=True,
        extra={"provider_type": kind_name, "channel": channel},
    )


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
        if (
            applied.new
            and applied.tenant_id is not None
            and fb.kind in (FeedbackKind.BOUNCE, FeedbackKind.COMPLAINT)
            and reputation.check(engine, settings, applied.tenant_id, utcnow())
        ):
            announce(settings, applied.tenant_id)
    return counts
