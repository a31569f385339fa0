"""The one writer of ``feedback_event`` and ``suppression`` rows.

Every source — an SMTP reply at send time, returned mail, a provider webhook, an SMS
delivery report or reply, an unsubscribe link — ends in :class:`Event` values handed to
:func:`record`: each is stored once under its dedup key and, where it says so, its
address is suppressed for the tenant and channel before the next send. Lifting a
suppression (an SMS START, a confirmed re-subscription) and an erasure's hashed entry go
through here too, so that "where does a complaint become a suppression?" has one answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, or_, select, update

from postgate.core.events import feedback_type
from postgate.core.states import Channel, FeedbackKind, SuppressionReason
from postgate.events import outbox
from postgate.store import tables as t
from postgate.store.dialect import insert_ignore, insert_ignoring

e, s = t.feedback_event.c, t.suppression.c


@dataclass(frozen=True, slots=True)
class Event:
    """One feedback event as stored, whatever its source."""

    channel: Channel
    kind: FeedbackKind
    dedup_key: str
    source: str
    created_at: datetime
    tenant_id: int | None = None  # None: unverified, acted upon never
    delivery_id: int | None = None
    address: str = ""
    hard: bool | None = None
    status: str = ""
    verification: str = ""
    dkim: str = ""
    raw: str = ""
    reason: str = ""  # a bounce's BounceReason: user_unknown, mailbox_full, policy_block...
    suppress: SuppressionReason | None = None  # suppress the address for the tenant
    detail: str = ""  # why, for the suppression row


def record(conn: Connection, events: Sequence[Event]) -> None:
    """Store each event once under its dedup key; suppress where an event says so (an
    address suppressed already keeps its first reason)."""
    insert_ignore(
        conn,
        t.feedback_event,
        [
            {
                "tenant_id": ev.tenant_id,
                "delivery_id": ev.delivery_id,
                "channel": ev.channel,
                "kind": ev.kind,
                "hard": ev.hard,
                "address": ev.address[:320],
                "status": ev.status,
                "source": ev.source,
                "dedup_key": ev.dedup_key,
                "verification": ev.verification,
                "dkim": ev.dkim,
                "reason": ev.reason,
                "raw": ev.raw,
                "created_at": ev.created_at,
            }
            for ev in events
        ],
        ("dedup_key",),
    )
    outbox.write(conn, [told for ev in events if (told := _told(ev)) is not None])
    suppress(
        conn,
        [
            (ev.tenant_id, ev.channel, ev.address, ev.suppress, ev.detail, ev.created_at)
            for ev in events
            if ev.suppress is not None and ev.tenant_id is not None and ev.address
        ],
    )


def _told(ev: Event) -> outbox.Pending | None:
    """The event stream's copy of a verified event (an unverified one names no tenant)."""
    type_ = feedback_type(ev.kind)
    if ev.tenant_id is None or type_ is None:
        return None
    detail: dict[str, object] = {"source": ev.source}
    if ev.kind == FeedbackKind.BOUNCE:
        detail |= {"hard": ev.hard, "status": ev.status, "reason": ev.reason}
    if ev.suppress is not None:
        detail["suppressed"] = str(ev.suppress)
    return outbox.Pending(
        f"fb:{ev.dedup_key}",
        type_,
        ev.tenant_id,
        ev.channel,
        ev.created_at,
        ev.delivery_id,
        recipient=ev.address,
        detail=detail,
    )


def is_new(conn: Connection, dedup_key: str) -> bool:
    """Whether no event is stored under ``dedup_key`` yet."""
    return conn.scalar(select(e.id).where(e.dedup_key == dedup_key)) is None


Entry = tuple[int | None, str, str, SuppressionReason, str, datetime]


def suppress(conn: Connection, entries: Iterable[Entry]) -> None:
    """Suppression rows (tenant, channel, address, reason, detail, time), insert-or-ignore."""
    insert_ignore(
        conn,
        t.suppression,
        [
            {
                "tenant_id": tenant_id,
                "channel": channel,
                "address": address,
                "reason": reason,
                "detail": detail,
                "created_at": at,
            }
            for tenant_id, channel, address, reason, detail, at in entries
        ],
        ("tenant_id", "channel", "address"),
    )


def suppress_counted(conn: Connection, entries: Iterable[Entry]) -> int:
    """As :func:`suppress`, one row at a time: how many were new (a list import's report;
    counted by RETURNING, as drivers do not all report an INSERT's rowcount)."""
    statement = insert_ignoring(conn, t.suppression, ("tenant_id", "channel", "address"))
    new = 0
    for tenant_id, channel, address, reason, detail, at in entries:
        new += len(
            conn.execute(
                statement.values(
                    tenant_id=tenant_id,
                    channel=channel,
                    address=address,
                    reason=reason,
                    detail=detail,
                    created_at=at,
                ).returning(s.id)
            ).all()
        )
    return new


def lift(
    conn: Connection,
    tenant_id: int,
    channel: str,
    addresses: Sequence[str],
    reasons: Iterable[SuppressionReason],
) -> int:
    """Remove the suppressions of these reasons (an SMS START, a confirmed re-subscription);
    the number removed."""
    return int(
        conn.execute(
            delete(t.suppression).where(
                s.tenant_id == tenant_id,
                s.channel == channel,
                s.address.in_(list(addresses)),
                s.reason.in_([str(r) for r in reasons]),
            )
        ).rowcount
        or 0
    )


def erase(
    conn: Connection,
    tenant_id: int,
    channel: str,
    address: str,
    digest: str,
    deliveries: Sequence[int],
    now: datetime,
) -> int:
    """Forget an address in feedback: its events (by address or delivery) keep only the
    hash and lose their raw text, and its suppressions become one entry under the hash,
    so the address stays blocked although it is no longer stored. The events changed."""
    events = conn.execute(
        update(t.feedback_event)
        .where(
            e.tenant_id == tenant_id,
            or_(e.address == address, e.delivery_id.in_(deliveries)),
        )
        .values(address=digest, raw="")
    ).rowcount
    conn.execute(delete(t.suppression).where(s.tenant_id == tenant_id, s.address == address))
    suppress(conn, [(tenant_id, channel, digest, SuppressionReason.ERASURE, "", now)])
    return int(events or 0)
