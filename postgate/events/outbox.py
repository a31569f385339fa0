"""Writing ``event.v1`` rows into the outbox, inside the caller's transaction.

The writers of delivery outcomes (``campaigns.deliveries``, ``sms.store``,
``feedback.sms``) and of feedback (``feedback.ledger``) call :func:`write` on the
connection of the state change itself: the event commits with it or not at all, so a
crash can lose neither. A fact written twice (a redelivered batch, a resent report) has
the same event id and is kept once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select, update

from postgate.core.events import event_id
from postgate.store import tables as t
from postgate.store.dialect import insert_ignore


@dataclass(frozen=True, slots=True)
class Pending:
    """An event to write: ``key`` names the fact (its id is derived from it)."""

    key: str
    type: str
    tenant_id: int
    channel: str
    occurred_at: datetime
    delivery_id: int | None = None
    campaign_id: int | None = None  # looked up from the delivery when not given
    recipient: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def write(conn: Connection, events: Sequence[Pending]) -> None:
    if not events:
        return
    unknown = {ev.delivery_id for ev in events if ev.campaign_id is None and ev.delivery_id}
    campaigns: dict[int, int] = {}
    if unknown:
        d = t.delivery.c
        campaigns = {
            row[0]: row[1]
            for row in conn.execute(select(d.id, d.campaign_id).where(d.id.in_(sorted(unknown))))
        }
    insert_ignore(
        conn,
        t.event_outbox,
        [
            {
                "event_id": event_id(ev.key),
                "tenant_id": ev.tenant_id,
                "type": ev.type,
                "channel": ev.channel,
                "campaign_id": ev.campaign_id
                if ev.campaign_id is not None
                else campaigns.get(ev.delivery_id or 0),
                "delivery_id": ev.delivery_id,
                "recipient": ev.recipient[:320],
                "detail": ev.detail,
                "occurred_at": ev.occurred_at,
                "created_at": ev.occurred_at,
            }
            for ev in events
        ],
        ("event_id",),
    )


def erase(
    conn: Connection, tenant_id: int, address: str, digest: str, deliveries: Sequence[int]
) -> None:
    """An erased address: its events keep only the hash (the stream stays whole)."""
    o = t.event_outbox.c
    conn.execute(
        update(t.event_outbox)
        .where(o.tenant_id == tenant_id, or_(o.recipient == address, o.delivery_id.in_(deliveries)))
        .values(recipient=digest)
    )
