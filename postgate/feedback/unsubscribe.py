"""Unsubscribing through the signed link every promotional mail carries.

The token names a delivery (with its campaign and tenant under one MAC, see
``delivery.tokens``); the delivery names the tenant, the channel and the address,
so the suppression is exactly "this tenant must not mail this address on this channel".
Applying it twice is harmless: the suppression and the feedback event are both
insert-or-ignore on their unique keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from postgate.core import tokens
from postgate.core.clock import utcnow
from postgate.core.states import Channel, FeedbackKind, SuppressionReason
from postgate.feedback import ledger, references

log = logging.getLogger("postgate.unsubscribe")


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    tenant_id: int
    tenant_name: str
    tenant_slug: str
    channel: str
    address: str


def lookup(engine: Engine, keys: tokens.Keys, token: str) -> Unsubscribed | None:
    """Who a (validly signed) unsubscribe token stands for."""
    return _resolve(engine, keys, token)[1]


def _resolve(
    engine: Engine, keys: tokens.Keys, token: str
) -> tuple[int | None, Unsubscribed | None]:
    ref = tokens.unsubscribe_decode(keys, token)
    if ref is None:
        return None, None
    with engine.connect() as conn:  # legacy tokens were always MAC'd: no time limit
        target, _ = references.resolve(conn, ref, utcnow(), None)
    if target is None:
        return None, None
    return target.delivery_id, Unsubscribed(
        target.tenant_id, target.tenant_name, target.slug, target.channel, target.address
    )


def event_key(delivery_id: int) -> str:
    """One unsubscribe event per delivery, whichever way it came (one-click, the page's
    button, a mail to the List-Unsubscribe mailto)."""
    return f"unsubscribe:{delivery_id}"


def apply(
    engine: Engine, keys: tokens.Keys, token: str, source: str, now: datetime
) -> Unsubscribed | None:
    """Suppress the address behind ``token`` for its tenant and record the event once."""
    delivery_id, who = _resolve(engine, keys, token)
    if who is None or delivery_id is None:
        return None
    with engine.begin() as conn:
        ledger.record(
            conn,
            [
                ledger.Event(
                    Channel(who.channel),
                    FeedbackKind.UNSUBSCRIBE,
                    event_key(delivery_id),
                    source,
                    now,
                    who.tenant_id,
                    delivery_id,
                    who.address,
                    suppress=SuppressionReason.UNSUBSCRIBE,
                    detail=f"{source} via delivery {delivery_id}",
                )
            ],
        )
    log.info(
        "tenant=%s rcpt=%s unsubscribed (%s, delivery %s)",
        who.tenant_id,
        who.address,
        source,
        delivery_id,
    )
    return who
