"""Writing the outcome of an SMS batch: delivery rows, message ids, bounces, pauses.

Like the email store, every transition is guarded by ``state = 'sending'``, so a
row is recorded once even when a batch is redelivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update

from postgate.campaigns.deliveries import Claimed, told_outcome
from postgate.core.outcome import Outcome
from postgate.core.retry import next_attempt
from postgate.core.sms.outcomes import SmsError
from postgate.core.states import BlockSource, Channel, FeedbackKind, Scope, SuppressionReason
from postgate.core.states import DeliveryState as S
from postgate.events import outbox
from postgate.feedback import ledger
from postgate.feedback.sms import record_parts
from postgate.settings import Settings
from postgate.store import tables as t

d = t.delivery.c


@dataclass(frozen=True, slots=True)
class SmsOutcome:
    claimed: Claimed
    outcome: Outcome
    provider: str = ""
    segments: int = 0
    message_ids: tuple[str, ...] = ()
    reason: str | None = None  # for failures: sms_invalid_number, sms_rejected, ...
    error: SmsError | None = None
    detail: str = ""
    retry_at: datetime | None = None  # deferred until then (a send window), not backed off


def record(
    engine: Engine,
    settings: Settings,
    tenant_id: int,
    outcomes: Sequence[SmsOutcome],
    now: datetime,
    campaign_id: int | None = None,
) -> None:
    sent, deferred, failed = [], [], []
    for o in outcomes:
        row: dict[str, Any] = {
            "b_id": o.claimed.recipient.delivery_id,
            "b_provider": o.provider,
            "b_segments": o.segments or None,
            "b_error": o.detail[:1000],
        }
        if o.outcome is Outcome.SENT:
            sent.append(row)
            continue
        when = o.retry_at
        if o.outcome is Outcome.DEFERRED and when is None:
            when = next_attempt(
                o.claimed.attempts,
                o.claimed.created_at,
                now,
                settings.retry_base_s,
                settings.retry_max_s,
                settings.retry_deadline_s,
            )
        if when is None:
            failed.append(row | {"b_reason": o.reason or "retry_deadline"})
        else:
            deferred.append(row | {"b_when": when})
    guard = (d.id == bindparam("b_id"), d.state == S.SENDING)
    with engine.begin() as conn:
        if sent:
            conn.execute(
                update(t.delivery)
                .where(*guard)
                .values(
                    state=S.SENT,
                    sent_at=now,
                    provider=bindparam("b_provider"),
                    segments=bindparam("b_segments"),
                    lease_until=None,
                    last_error=None,
                    updated_at=now,
                ),
                sent,
            )
            by_provider: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
            for o in outcomes:
                if o.outcome is Outcome.SENT and o.message_ids:
                    by_provider.setdefault(o.provider, []).append(
                        (o.claimed.recipient.delivery_id, o.message_ids)
                    )
            for provider, accepted in by_provider.items():
                record_parts(conn, provider, accepted, now)
        if deferred:
            conn.execute(
                update(t.delivery)
                .where(*guard)
                .values(
                    state=S.DEFERRED,
                    next_attempt_at=bindparam("b_when"),
                    provider=bindparam("b_provider"),
                    last_error=bindparam("b_error"),
                    lease_until=None,
                    updated_at=now,
                ),
                deferred,
            )
        if failed:
            conn.execute(
                update(t.delivery)
                .where(*guard)
                .values(
                    state=S.FAILED,
                    reason=bindparam("b_reason"),
                    provider=bindparam("b_provider"),
                    segments=bindparam("b_segments"),
                    last_error=bindparam("b_error"),
                    lease_until=None,
                    updated_at=now,
                ),
                failed,
            )
        later = {row["b_id"] for row in deferred}
        outbox.write(
            conn,
            [
                told_outcome(
                    tenant_id,
                    campaign_id,
                    Channel.SMS,
                    o.claimed,
                    o.outcome,
                    later,
                    now,
                    {"provider": o.provider, "segments": o.segments, "error": o.detail[:300]},
                )
                for o in outcomes
            ],
        )
        dead = [o for o in outcomes if o.error is SmsError.INVALID_NUMBER]
        ledger.record(
            conn,
            [
                ledger.Event(
                    Channel.SMS,
                    FeedbackKind.BOUNCE,
                    f"sms:{o.claimed.recipient.delivery_id}:{o.claimed.attempts}",
                    o.provider,
                    now,
                    tenant_id,
                    o.claimed.recipient.delivery_id,
                    o.claimed.recipient.address,
                    True,
                    "invalid_number",
                    raw=o.detail[:2000],
                    suppress=SuppressionReason.HARD_BOUNCE,
                    detail=f"{o.provider}: {o.detail}"[:500],
                )
                for o in dead
            ],
        )


def pause_tenant_sms(
    engine: Engine, tenant_id: int, provider: str, detail: str, now: datetime
) -> bool:
    """Stop the tenant's bulk SMS until an operator clears it (e.g. no credit left).
    Returns False when an active pause from a provider was already recorded."""
    sb = t.sending_block.c
    with engine.begin() as conn:
        active = conn.scalar(
            select(sb.id)
            .where(
                sb.tenant_id == tenant_id,
                sb.scope == Scope.BULK_SMS,
                sb.source == BlockSource.PROVIDER,
                sb.cleared_at.is_(None),
            )
            .limit(1)
        )
        if active is not None:
            return False
        conn.execute(
            insert(t.sending_block).values(
                tenant_id=tenant_id,
                scope=Scope.BULK_SMS,
                source=BlockSource.PROVIDER,
                reason=f"{provider}: {detail}"[:1000],
                detail={"provider": provider},
                actor="postgate",
                created_at=now,
            )
        )
    return True
