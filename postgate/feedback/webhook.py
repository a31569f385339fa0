"""Provider webhooks, parsed (pure): the signature check and one event as feedback.

A body is signed ``X-Postgate-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
with ``X-Postgate-Timestamp`` at most five minutes old. Provider event types map onto the
feedback vocabulary; anything else becomes ``unknown`` and is kept, never refused.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from postgate.core import tokens
from postgate.core.states import FeedbackKind
from postgate.feedback.event import Feedback, row_id

MAX_SKEW_S = 300
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
