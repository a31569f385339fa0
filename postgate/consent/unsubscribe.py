"""Unsubscribing through the signed link every promotional mail carries.

The token names a delivery; the delivery names the tenant, the channel and the address,
so the suppression is exactly "this tenant must not mail this address on this channel".
Applying it twice is harmless: the suppression and the feedback event are both
insert-or-ignore on their unique keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from postgate import tables as t
from postgate.delivery import tokens
from postgate.dialect import insert_ignore

log = logging.getLogger("postgate.unsubscribe")


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    tenant_id: int
    tenant_name: str
    tenant_slug: str
    channel: str
    address: str


def lookup(engine: Engine, secret: str, token: str) -> Unsubscribed | None:
    """Who a (validly signed) unsubscribe token stands for."""
    delivery_id = tokens.unsubscribe_decode(secret, token)
    if delivery_id is None:
        return None
    d, c = t.delivery.c, t.campaign.c
    with engine.connect() as conn:
        row = conn.execute(
            select(d.tenant_id, t.tenant.c.name, t.tenant.c.slug, c.channel, d.address)
            .join(t.campaign, c.id == d.campaign_id)
            .join(t.tenant, t.tenant.c.id == d.tenant_id)
            .where(d.id == delivery_id)
        ).first()
    return Unsubscribed(*row) if row else None


def event_key(delivery_id: int) -> str:
    """One unsubscribe event per delivery, whichever way it came (one-click, the page's
    button, a mail to the List-Unsubscribe mailto)."""
    return f"unsubscribe:{delivery_id}"


def apply(engine: Engine, secret: str, token: str, source: str,
          now: datetime) -> Unsubscribed | None:
    """Suppress the address behind ``token`` for its tenant and record the event once."""
    who = lookup(engine, secret, token)
    if who is None:
        return None
    delivery_id = tokens.unsubscribe_decode(secret, token)
    if delivery_id is None:  # lookup() already checked it; this tells the type checker
        return None
    with engine.begin() as conn:
        insert_ignore(conn, t.suppression, [{
            "tenant_id": who.tenant_id, "channel": who.channel, "address": who.address,
            "reason": "unsubscribe", "detail": f"{source} via delivery {delivery_id}",
            "created_at": now,
        }], ("tenant_id", "channel", "address"))
        insert_ignore(conn, t.feedback_event, [{
            "tenant_id": who.tenant_id, "delivery_id": delivery_id, "channel": who.channel,
            "kind": "unsubscribe", "hard": None, "address": who.address, "status": "",
            "source": source, "dedup_key": event_key(delivery_id), "raw": "",
            "created_at": now,
        }], ("dedup_key",))
    log.info("tenant=%s rcpt=%s unsubscribed (%s, delivery %s)", who.tenant_id, who.address,
             source, delivery_id)
    return who
