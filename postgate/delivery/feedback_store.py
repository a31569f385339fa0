"""Apply one classified feedback mail to the database, exactly once.

Each mail becomes one ``feedback_event`` row under a dedup key (per delivery and kind
when we know the delivery, else the hash of the mail), inserted-or-ignored. Its
effects are idempotent too: suppressions are insert-or-ignore, ``complained_at`` is
set only once and soft-bounce scoring is recomputed from the stored events, so a
duplicate or a late, out-of-order copy changes nothing. Mail we cannot read is kept
whole as an ``unknown`` event for an operator to inspect.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, select, update

from postgate import tables as t
from postgate.clock import aware
from postgate.consent import unsubscribe
from postgate.delivery import breaker
from postgate.delivery.feedback_mail import Feedback
from postgate.dialect import insert_ignore
from postgate.metrics import FEEDBACK
from postgate.settings import Settings

log = logging.getLogger("postgate.feedback")
d, e = t.delivery.c, t.feedback_event.c
RAW_LIMIT = 1_000_000
SUPPRESSING = {"complaint": "complaint", "unsubscribe": "unsubscribe", "stop": "stop"}


@dataclass
class Applied:
    event_key: str
    kind: str
    tenant_id: int | None = None
    delivery_id: int | None = None
    address: str = ""
    new: bool = False
    suppressed: list[str] = field(default_factory=list)


def soft_rule(settings: Settings) -> breaker.SoftBounceRule:
    return breaker.SoftBounceRule(settings.soft_bounce_score, settings.soft_bounce_days,
                                  timedelta(days=settings.soft_bounce_window_days))


def apply(engine: Engine, settings: Settings, fb: Feedback, raw: bytes, source: str,
          now: datetime, key: str | None = None) -> Applied:
    """Store ``fb`` once under ``key`` (default: per delivery and kind, else the raw hash)."""
    fb = replace(fb, status=_storable(fb.status)[:100],
                 recipients=tuple(_storable(r) for r in fb.recipients))
    with engine.begin() as conn:
        delivery = _delivery(conn, fb)
        tenant_id = delivery[1] if delivery else None
        delivery_id = delivery[0] if delivery else None
        slug = delivery[3] if delivery else "-"
        address = delivery[2] if delivery else (fb.recipients[0] if fb.recipients else "")
        if key is None and delivery_id is not None and fb.kind == "unsubscribe":
            key = unsubscribe.event_key(delivery_id)  # the same event as a one-click
        elif key is None and delivery_id is not None and fb.kind != "unknown":
            key = f"mail:{fb.kind}:{delivery_id}:{fb.action or '-'}"
        elif key is None:
            key = f"mail:{fb.kind}:{hashlib.sha256(raw).hexdigest()}"
        key = _storable(key)  # a webhook's own event id
        channel = fb.extra.get("channel", "email")
        kind = "delay" if fb.action == "delayed" else fb.kind  # a warning, not a bounce
        applied = Applied(key, kind, tenant_id, delivery_id, address)
        applied.new = conn.scalar(select(e.id).where(e.dedup_key == key)) is None
        insert_ignore(conn, t.feedback_event, [{
            "tenant_id": tenant_id, "delivery_id": delivery_id, "channel": channel,
            "kind": kind, "hard": fb.hard, "address": address[:320],
            "status": fb.status,
            "source": source, "dedup_key": key,
            "raw": _storable(raw[:RAW_LIMIT].decode("utf-8", "replace")),
            "created_at": now,
        }], ("dedup_key",))
        if tenant_id is not None and address:
            _effects(conn, settings, fb, applied, channel, now)
    label = ("bounce_hard" if fb.hard else "bounce_soft") if kind == "bounce" else kind
    FEEDBACK.labels(slug, channel, label).inc(int(applied.new))
    log.info("feedback %s tenant=%s delivery=%s rcpt=%s hard=%s status=%s new=%s suppressed=%s",
             kind, slug, delivery_id, address, fb.hard, fb.status, applied.new,
             applied.suppressed)
    return applied


def _storable(text: str) -> str:
    """What a garbled report says, kept as text a database can hold (no NUL)."""
    return text.replace("\x00", "\ufffd")


def _delivery(conn: Connection, fb: Feedback) -> tuple[int, int, str, str] | None:
    """The delivery a signed VERP/unsubscribe token names, else one our Message-ID names."""
    query = select(d.id, d.tenant_id, d.address, t.tenant.c.slug).join(
        t.tenant, t.tenant.c.id == d.tenant_id)
    row = None
    if fb.delivery_id is not None:
        row = conn.execute(query.where(d.id == fb.delivery_id)).first()
    if row is None and fb.message_ref is not None:
        row = conn.execute(query.where(d.id == fb.message_ref[0],
                                       d.campaign_id == fb.message_ref[1])).first()
    return (row[0], row[1], row[2], row[3]) if row is not None else None


def _effects(conn: Connection, settings: Settings, fb: Feedback, applied: Applied,
             channel: str, now: datetime) -> None:
    tenant_id, address = applied.tenant_id, applied.address
    reason = SUPPRESSING.get(fb.kind)
    if fb.kind == "bounce" and fb.hard and fb.action == "failed":
        reason = "hard_bounce"
    elif fb.kind == "bounce" and breaker.scored(fb.status, fb.action):
        bounced = [aware(at) for at in conn.scalars(select(e.created_at).where(
            e.tenant_id == tenant_id, e.address == address, e.kind == "bounce",
            e.hard.is_not(True), ~e.status.startswith("5.7"), e.created_at >= now - timedelta(
                days=settings.soft_bounce_window_days)))]
        if breaker.soft_bounce_suppresses(bounced, soft_rule(settings), now):
            reason = "bounce_score"
    if fb.kind == "complaint":
        conn.execute(update(t.delivery).where(d.id == applied.delivery_id,
                                              d.complained_at.is_(None))
                     .values(complained_at=now))
    if reason is None:
        return
    insert_ignore(conn, t.suppression, [{
        "tenant_id": tenant_id, "channel": channel, "address": address, "reason": reason,
        "detail": f"{fb.kind} {fb.status}".strip()[:200], "created_at": now,
    }], ("tenant_id", "channel", "address"))
    applied.suppressed.append(address)
