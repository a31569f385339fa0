"""Bulk moves of delivery rows through their state machine.

Every transition is a guarded UPDATE (``WHERE state = ...``), so two workers holding
the same batch, a redelivered batch or a sweeper racing a sender can never both send a
row: exactly one claim wins, and only rows already sent are skipped on redelivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, bindparam, exists, or_, select, update

from postgate.core.bounce import classify_reply
from postgate.core.events import EventType
from postgate.core.outcome import Outcome, SendResult
from postgate.core.rendering import RecipientData
from postgate.core.retry import next_attempt, paced
from postgate.core.states import SENDABLE_CAMPAIGN, Channel, FeedbackKind, SuppressionReason
from postgate.core.states import DeliveryState as S
from postgate.events import outbox
from postgate.feedback import ledger
from postgate.settings import Settings
from postgate.store import tables as t

d, c = t.delivery.c, t.campaign.c
UNKNOWN = "outcome_unknown"


@dataclass(frozen=True, slots=True)
class Claimed:
    recipient: RecipientData
    attempts: int
    created_at: datetime
    outcome_unknown: bool = False  # an earlier attempt may have been accepted already
    contact_id: int = 0
    source: str | None = None  # the source address its connection is made from (MX_SOURCES)


def claim(engine: Engine, ids: Sequence[int], now: datetime, lease_s: float) -> list[Claimed]:
    """Take the sendable rows among ``ids`` (queued, due deferred, or an expired lease)
    of campaigns that are sending: a paused or cancelled campaign's rows stay put."""
    lease = now + timedelta(seconds=lease_s)
    with engine.begin() as conn:
        rows = conn.execute(
            update(t.delivery)
            .where(
                d.id.in_(list(ids)),
                exists().where(c.id == d.campaign_id, c.state.in_(SENDABLE_CAMPAIGN)),
                or_(
                    d.state == S.QUEUED,
                    and_(
                        d.state == S.DEFERRED,
                        or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now),
                    ),
                    and_(d.state == S.SENDING, d.lease_until < now),
                ),
            )
            .values(state=S.SENDING, lease_until=lease, attempts=d.attempts + 1, updated_at=now)
            .returning(d.id, d.contact_id, d.address, d.attempts, d.created_at, d.reason)
        ).all()
        if not rows:
            return []
        contacts = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                select(t.contact.c.id, t.contact.c.name, t.contact.c.attributes).where(
                    t.contact.c.id.in_([r[1] for r in rows])
                )
            )
        }
    claimed = []
    for delivery_id, contact_id, address, attempts, created_at, reason in sorted(rows):
        name, attributes = contacts.get(contact_id, ("", {}))
        claimed.append(
            Claimed(
                RecipientData(delivery_id, address, name or "", attributes or {}),
                attempts,
                created_at,
                reason == UNKNOWN,
                contact_id,
            )
        )
    return claimed


def renew(engine: Engine, ids: Sequence[int], until: datetime) -> None:
    """Extend the lease of rows this sender still holds."""
    with engine.begin() as conn:
        conn.execute(
            update(t.delivery)
            .where(d.id.in_(list(ids)), d.state == S.SENDING)
            .values(lease_until=until)
        )


def hold(engine: Engine, ids: Sequence[int], reason: str, now: datetime) -> None:
    """Keep rows the tenant may not send now; they resume when sending is re-enabled."""
    with engine.begin() as conn:
        conn.execute(
            update(t.delivery)
            .where(d.id.in_(list(ids)), d.state == S.SENDING)
            .values(state=S.HELD, reason=reason, lease_until=None, updated_at=now)
        )


def postpone(
    engine: Engine, ids: Sequence[int], until: datetime, reason: str, now: datetime
) -> None:
    """Put claimed rows off until ``until`` (our own pacing: a warm-up cap), as deferred
    rows the sweeper picks up when due; the claim is not counted as an attempt."""
    with engine.begin() as conn:
        conn.execute(
            update(t.delivery)
            .where(d.id.in_(list(ids)), d.state == S.SENDING)
            .values(
                state=S.DEFERRED,
                reason=reason,
                next_attempt_at=until,
                lease_until=None,
                attempts=d.attempts - 1,
                updated_at=now,
            )
        )


def record(
    engine: Engine,
    settings: Settings,
    tenant_id: int,
    results: Sequence[tuple[Claimed, SendResult]],
    now: datetime,
    campaign_id: int | None = None,
) -> None:
    """Write the outcome of a batch: sent, deferred with backoff, or failed.

    A transaction whose outcome is unknown (the connection dropped after DATA) is retried
    once, with the same Message-ID; if that one is unknown too, the row fails as
    ``outcome_unknown`` rather than risk sending a third copy.
    """
    sent: dict[str | None, list[int]] = {}  # by source address
    for c, r in results:
        if r.outcome is Outcome.SENT:
            sent.setdefault(c.source, []).append(c.recipient.delivery_id)
    failed: list[dict[str, Any]] = []
    deferred: list[dict[str, Any]] = []
    for claimed, result in results:
        if result.outcome is Outcome.SENT:
            continue
        row = {
            "b_id": claimed.recipient.delivery_id,
            "b_code": result.code,
            "b_error": result.detail[:1000],
            "b_source": claimed.source,
        }
        when = None
        if result.outcome is Outcome.DEFERRED and result.retry_after is not None:
            when = paced(claimed.created_at, now, result.retry_after, settings.retry_deadline_s)
        elif result.outcome is Outcome.DEFERRED and not (
            result.unknown and claimed.outcome_unknown
        ):
            when = next_attempt(
                claimed.attempts,
                claimed.created_at,
                now,
                settings.retry_base_s,
                settings.retry_max_s,
                settings.retry_deadline_s,
            )
        if when is not None:
            deferred.append(row | {"b_when": when, "b_reason": UNKNOWN if result.unknown else None})
        elif result.outcome is Outcome.FAILED:
            failed.append(row | {"b_reason": "smtp_rejected"})
        else:  # out of time, or a second transaction whose outcome is unknown: stop here
            failed.append(row | {"b_reason": UNKNOWN if result.unknown else "retry_deadline"})
    guard = d.id == bindparam("b_id")
    with engine.begin() as conn:
        for source, ids in sent.items():
            conn.execute(
                update(t.delivery)
                .where(d.id.in_(ids), d.state == S.SENDING)
                .values(
                    state=S.SENT,
                    sent_at=now,
                    smtp_code=250,
                    lease_until=None,
                    reason=None,
                    last_error=None,
                    updated_at=now,
                    **({"source_ip": source} if source else {}),
                )
            )
        if deferred:
            conn.execute(
                update(t.delivery)
                .where(guard, d.state == S.SENDING)
                .values(
                    state=S.DEFERRED,
                    next_attempt_at=bindparam("b_when"),
                    reason=bindparam("b_reason"),
                    smtp_code=bindparam("b_code"),
                    last_error=bindparam("b_error"),
                    lease_until=None,
                    updated_at=now,
                ),
                deferred,
            )
        if failed:
            conn.execute(
                update(t.delivery)
                .where(guard, d.state == S.SENDING)
                .values(
                    state=S.FAILED,
                    reason=bindparam("b_reason"),
                    smtp_code=bindparam("b_code"),
                    last_error=bindparam("b_error"),
                    source_ip=bindparam("b_source"),
                    lease_until=None,
                    updated_at=now,
                ),
                failed,
            )
            _hard_bounces(conn, tenant_id, results, now)
        later = {row["b_id"] for row in deferred}
        why = {row["b_id"]: row["b_reason"] for row in failed}
        outbox.write(
            conn,
            [
                told_outcome(
                    tenant_id,
                    campaign_id,
                    Channel.EMAIL,
                    claimed,
                    result.outcome,
                    later,
                    now,
                    {"code": result.code or (250 if result.outcome is Outcome.SENT else None)}
                    | (
                        {}
                        if result.outcome is Outcome.SENT
                        else {
                            "error": result.detail[:300],
                            "reason": why.get(claimed.recipient.delivery_id),
                        }
                    ),
                )
                for claimed, result in results
            ],
        )


def _hard_bounces(
    conn: Any, tenant_id: int, results: Sequence[tuple[Claimed, SendResult]], now: datetime
) -> None:
    """A 5xx reply at send time is a bounce event; a dead-address one suppresses."""
    events = []
    for claimed, result in results:
        if result.outcome is not Outcome.FAILED or result.code is None:
            continue
        verdict = classify_reply(result.code, result.detail)
        rcpt = claimed.recipient
        events.append(
            ledger.Event(
                Channel.EMAIL,
                FeedbackKind.BOUNCE,
                f"smtp:{rcpt.delivery_id}:{claimed.attempts}",
                "smtp_reply",
                now,
                tenant_id,
                rcpt.delivery_id,
                rcpt.address,
                verdict.hard,
                verdict.status,
                raw=f"{result.code} {result.detail}"[:2000],
                reason=verdict.reason,
                suppress=SuppressionReason.HARD_BOUNCE if verdict.hard else None,
                detail=f"{result.code} {verdict.status}".strip(),
            )
        )
    ledger.record(conn, events)


def told_outcome(
    tenant_id: int,
    campaign_id: int | None,
    channel: Channel,
    claimed: Claimed,
    outcome: Outcome,
    deferred: set[int],
    now: datetime,
    detail: dict[str, Any],
) -> outbox.Pending:
    """The event stream's copy of one outcome (email or SMS). A delivery is sent once, so
    its sent event is keyed by the delivery alone (a batch handled twice tells it once);
    a deferral or failure is keyed by its attempt."""
    rcpt = claimed.recipient
    if outcome is Outcome.SENT:
        type_, key = EventType.SENT, f"sent:{rcpt.delivery_id}"
    else:
        type_ = EventType.DEFERRED if rcpt.delivery_id in deferred else EventType.FAILED
        key = f"{type_}:{rcpt.delivery_id}:{claimed.attempts}"
    return outbox.Pending(
        key, type_, tenant_id, channel, now, rcpt.delivery_id, campaign_id, rcpt.address, detail
    )
