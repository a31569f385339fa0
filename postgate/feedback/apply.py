"""Apply one classified feedback mail to the database, exactly once.

Each mail becomes one ``feedback_event`` row under a dedup key (per delivery and kind
when we know the delivery, else the hash of the mail), inserted-or-ignored. Its
effects are idempotent too: suppressions are insert-or-ignore, ``complained_at`` is
set only once and soft-bounce scoring is recomputed from the stored events, so a
duplicate or a late, out-of-order copy changes nothing. Mail we cannot read is kept
whole as an ``unknown`` event for an operator to inspect. Every report's raw bytes are
stored whole (:func:`stored_raw`: as text, or base64 when they are not clean UTF-8).

Only a reference we can trust (``delivery.references``) lets an event act: a report with
no valid MAC, a legacy reference past its window, a reference whose delivery belongs to
another campaign or tenant, or a bounce that names a recipient other than the one the
delivery went to is stored as ``unverified`` with no tenant: it never suppresses anyone,
never counts toward the breaker, and is counted in
``postgate_feedback_unverified_total{reason}`` for the operator's alert. Where the
report quotes the original mail and it carries our DKIM signature, the signature is
verified against the tenant's stored key and the result kept on the event.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, select, update

from postgate.core import breaker
from postgate.core.bounce import POLICY_CLASS
from postgate.core.clock import aware
from postgate.core.states import Channel, FeedbackKind, SuppressionReason
from postgate.feedback import dkim_check, ledger, unsubscribe
from postgate.feedback.event import Feedback
from postgate.feedback.references import Target, Verification, by_delivery, resolve
from postgate.observability.metrics import FEEDBACK, FEEDBACK_UNVERIFIED, reason_label
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.tenants import reputation

log = logging.getLogger("postgate.feedback")
d, e = t.delivery.c, t.feedback_event.c
RAW_PREFIX = "base64:"
BREAKER_KINDS = (FeedbackKind.BOUNCE, FeedbackKind.COMPLAINT)  # what the breaker counts
SUPPRESSING = {
    FeedbackKind.COMPLAINT: SuppressionReason.COMPLAINT,
    FeedbackKind.UNSUBSCRIBE: SuppressionReason.UNSUBSCRIBE,
    FeedbackKind.STOP: SuppressionReason.STOP,
}


@dataclass
class Applied:
    event_key: str
    kind: str
    tenant_id: int | None = None
    delivery_id: int | None = None
    address: str = ""
    new: bool = False
    suppressed: list[str] = field(default_factory=list)
    tripped: bool = False  # the circuit breaker switched the tenant's sending off


def soft_rule(settings: Settings) -> breaker.SoftBounceRule:
    return breaker.SoftBounceRule(
        settings.soft_bounce_score,
        settings.soft_bounce_days,
        timedelta(days=settings.soft_bounce_window_days),
    )


def apply(
    engine: Engine,
    settings: Settings,
    fb: Feedback,
    raw: bytes,
    source: str,
    now: datetime,
    key: str | None = None,
) -> Applied:
    """Store ``fb`` once under ``key`` (default: per delivery and kind, else the raw hash)."""
    fb = replace(
        fb, status=_storable(fb.status)[:100], recipients=tuple(_storable(r) for r in fb.recipients)
    )
    with engine.begin() as conn:
        delivery, verification = _target(conn, settings, fb, now)
        tenant_id = delivery.tenant_id if delivery else None
        delivery_id = delivery.delivery_id if delivery else None
        slug = delivery.slug if delivery else "-"
        address = delivery.address if delivery else (fb.recipients[0] if fb.recipients else "")
        dkim = dkim_check.quoted(conn, delivery.tenant_id, raw) if delivery else ""
        if key is None and delivery_id is not None and fb.kind == FeedbackKind.UNSUBSCRIBE:
            key = unsubscribe.event_key(delivery_id)  # the same event as a one-click
        elif key is None and delivery_id is not None and fb.kind != FeedbackKind.UNKNOWN:
            key = f"mail:{fb.kind}:{delivery_id}:{fb.action or '-'}"
        elif key is None:
            key = f"mail:{fb.kind}:{hashlib.sha256(raw).hexdigest()}"
        key = _storable(key)  # a webhook's own event id
        channel = Channel(fb.extra.get("channel", Channel.EMAIL))
        # a DSN that says "still trying" is a warning, not a bounce
        kind = FeedbackKind.DELAY if fb.action == "delayed" else FeedbackKind(fb.kind)
        applied = Applied(key, kind, tenant_id, delivery_id, address)
        applied.new = ledger.is_new(conn, key)
        ledger.record(
            conn,
            [
                ledger.Event(
                    channel,
                    kind,
                    key,
                    source,
                    now,
                    tenant_id,
                    delivery_id,
                    address,
                    fb.hard,
                    fb.status,
                    verification.partition(":")[0],
                    dkim,
                    stored_raw(raw),
                    reason=fb.reason[:40],
                )
            ],
        )
        # stored first: a soft bounce's score counts this one too
        reason = (
            _effects(conn, settings, fb, applied, now)
            if tenant_id is not None and address
            else None
        )
        if reason is not None:
            ledger.suppress(
                conn,
                [
                    (
                        tenant_id,
                        channel,
                        address,
                        reason,
                        f"{fb.kind} {fb.status}".strip()[:200],
                        now,
                    )
                ],
            )
            applied.suppressed.append(address)
    if applied.new and tenant_id is not None and kind in BREAKER_KINDS:
        applied.tripped = reputation.check(engine, settings, tenant_id, now) is not None
    label = (
        ("bounce_hard" if fb.hard else "bounce_soft") if kind == FeedbackKind.BOUNCE else str(kind)
    )
    FEEDBACK.labels(slug, channel, label, reason_label(fb.reason)).inc(int(applied.new))
    if delivery is None and applied.new:
        FEEDBACK_UNVERIFIED.labels(source, kind, verification.partition(":")[2]).inc()
    log.info(
        "feedback %s tenant=%s delivery=%s rcpt=%s hard=%s status=%s new=%s suppressed=%s "
        "verification=%s dkim=%s",
        kind,
        slug,
        delivery_id,
        address,
        fb.hard,
        fb.status,
        applied.new,
        applied.suppressed,
        verification,
        dkim or "-",
    )
    return applied


def stored_raw(raw: bytes) -> str:
    """The report as ``feedback_event.raw`` keeps it, whole: its text when it is clean
    UTF-8 without NUL, else ``base64:`` and the base64 of every byte, so that nothing of
    a garbled or binary mail is lost (a database text column holds no NUL)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text or text.startswith(RAW_PREFIX):
        return RAW_PREFIX + base64.b64encode(raw).decode("ascii")
    return text


def raw_bytes(stored: str) -> bytes:
    """The bytes :func:`stored_raw` kept."""
    if stored.startswith(RAW_PREFIX):
        return base64.b64decode(stored[len(RAW_PREFIX) :])
    return stored.encode("utf-8")


def _storable(text: str) -> str:
    """What a garbled report says, kept as text a database can hold (no NUL)."""
    return text.replace("\x00", "\ufffd")


def _target(
    conn: Connection, settings: Settings, fb: Feedback, now: datetime
) -> tuple[Target | None, str]:
    """The delivery this feedback may act on and how that was established; else None and
    ``unverified:<why>``."""
    if fb.delivery_id is not None:  # named by an authenticated provider
        target = by_delivery(conn, fb.delivery_id)
        found: tuple[Target | None, str] = (
            (target, Verification.PROVIDER) if target else (None, "unknown_delivery")
        )
    elif fb.ref is None:
        found = None, "no_reference"
    else:
        # an unsubscribe is honoured whenever it comes (its legacy tokens were always MAC'd)
        window = None if fb.kind == FeedbackKind.UNSUBSCRIBE else settings.legacy_refs_days
        found = resolve(conn, fb.ref, now, window, trusted=fb.provider_signed)
    target, how = found
    if (
        target is not None
        and how != Verification.PROVIDER
        and fb.kind == FeedbackKind.BOUNCE
        and fb.recipients
        and target.address.casefold() not in {r.casefold() for r in fb.recipients}
    ):
        target, how = None, "recipient_mismatch"  # a DSN acts on its own recipient only
    if target is None:
        return None, f"{Verification.UNVERIFIED}:{how}"
    return target, str(how)


def _effects(
    conn: Connection, settings: Settings, fb: Feedback, applied: Applied, now: datetime
) -> SuppressionReason | None:
    """What the event does besides being stored: the suppression it calls for, if any
    (a soft bounce counts its earlier ones), and a complaint marks its delivery."""
    tenant_id, address = applied.tenant_id, applied.address
    reason = SUPPRESSING.get(FeedbackKind(fb.kind))
    if fb.kind == FeedbackKind.BOUNCE and fb.hard and fb.action == "failed":
        reason = SuppressionReason.HARD_BOUNCE
    elif fb.kind == FeedbackKind.BOUNCE and breaker.scored(fb.status, fb.action):
        bounced = [
            aware(at)
            for at in conn.scalars(
                select(e.created_at).where(
                    e.tenant_id == tenant_id,
                    e.address == address,
                    e.kind == FeedbackKind.BOUNCE,
                    e.hard.is_not(True),
                    ~e.status.startswith(POLICY_CLASS),
                    e.created_at >= now - timedelta(days=settings.soft_bounce_window_days),
                )
            )
        ]
        if breaker.soft_bounce_suppresses(bounced, soft_rule(settings), now):
            reason = SuppressionReason.BOUNCE_SCORE
    if fb.kind == FeedbackKind.COMPLAINT:
        conn.execute(
            update(t.delivery)
            .where(d.id == applied.delivery_id, d.complained_at.is_(None))
            .values(complained_at=now)
        )
    return reason
