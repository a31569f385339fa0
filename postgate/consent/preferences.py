"""The preference centre behind every mail's unsubscribe link: the tenant's topics the
recipient is subscribed to on that channel, leaving one, leaving all, and re-subscribing
by double opt-in where the tenant allows it.

Each change is a consent record with its proof (time, IP, user agent, the delivery whose
link was used), appended like a signup, so the gate's next decision follows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from postgate.consent import signup
from postgate.core import tokens
from postgate.core.clock import utcnow
from postgate.feedback import references, unsubscribe
from postgate.store import tables as t
from postgate.tenants import erasure

log = logging.getLogger("postgate.preferences")
SOURCE = "preference_centre"


@dataclass(frozen=True, slots=True)
class Subscriber:
    """Who an unsubscribe link stands for."""

    tenant_id: int
    tenant_slug: str
    channel: str
    address: str
    contact_id: int
    delivery_id: int


@dataclass(frozen=True, slots=True)
class TopicState:
    slug: str
    subscribed: bool
    since: datetime | None
    consent_text: str
    rejoin_form: str | None  # public id of the form that re-subscribes by double opt-in


def subscriber(engine: Engine, keys: tokens.Keys, token: str) -> Subscriber | None:
    ref = tokens.unsubscribe_decode(keys, token)
    if ref is None:
        return None
    with engine.connect() as conn:
        target, _ = references.resolve(conn, ref, utcnow(), None)
        if target is None:
            return None
        contact_id = conn.scalar(
            select(t.delivery.c.contact_id).where(t.delivery.c.id == target.delivery_id)
        )
    if contact_id is None:
        return None
    return Subscriber(
        target.tenant_id,
        target.slug,
        target.channel,
        target.address,
        int(contact_id),
        target.delivery_id,
    )


def suppressed(conn: Connection, who: Subscriber) -> str | None:
    return erasure.suppressions(conn, who.tenant_id, who.channel, [who.address]).get(who.address)


def _forms(conn: Connection, who: Subscriber) -> dict[str, Any]:
    """The newest enabled form per topic that confirms this channel."""
    f = t.signup_form.c
    out: dict[str, Any] = {}
    for row in conn.execute(
        select(f.topic, f.public_id, f.channels)
        .where(f.tenant_id == who.tenant_id, f.enabled.is_(True))
        .order_by(f.id)
    ):
        if who.channel in (row.channels or []):
            out[row.topic] = row.public_id
    return out


def topics(conn: Connection, who: Subscriber, allow_rejoin: bool) -> list[TopicState]:
    """Every topic this recipient has a consent record for on the channel, latest record
    first decided, in topic order."""
    c, f = t.consent.c, t.signup_form.c
    rows = conn.execute(
        select(c.topic, c.status, c.source, c.consented_at, c.confirmed_at, f.consent_text)
        .outerjoin(t.signup_form, f.id == c.form_id)
        .where(
            c.tenant_id == who.tenant_id, c.channel == who.channel, c.contact_id == who.contact_id
        )
        .order_by(c.created_at, c.id)
    ).all()
    latest: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for row in rows:  # oldest first: the last record per topic wins
        latest[row.topic] = row
        if row.consent_text:
            texts[row.topic] = row.consent_text
    forms = _forms(conn, who) if allow_rejoin else {}
    blocked = suppressed(conn, who) is not None
    out = []
    for slug in sorted(latest):
        row = latest[slug]
        live = row.status != "withdrawn" and (
            row.source != "signup_form" or row.status == "confirmed"
        )
        subscribed = live and not blocked
        out.append(
            TopicState(
                slug,
                subscribed,
                row.confirmed_at or row.consented_at,
                texts.get(slug, ""),
                None if subscribed else forms.get(slug),
            )
        )
    return out


def _withdraw(
    conn: Connection, who: Subscriber, topic: str, ip: str, user_agent: str, now: datetime
) -> None:
    conn.execute(
        insert(t.consent).values(
            tenant_id=who.tenant_id,
            contact_id=who.contact_id,
            channel=who.channel,
            topic=topic,
            source=SOURCE,
            status="withdrawn",
            consented_at=now,
            created_at=now,
            signup_ip=ip[:64],
            signup_user_agent=user_agent[:500],
            evidence_ref=f"unsubscribe link of delivery {who.delivery_id}",
        )
    )


def leave(
    engine: Engine, who: Subscriber, topic: str, visitor: signup.Visitor, now: datetime
) -> bool:
    """Withdraw consent to one topic; False when they were not subscribed to it."""
    with engine.begin() as conn:
        current = {s.slug: s for s in topics(conn, who, False)}
        if topic not in current or not current[topic].subscribed:
            return False
        _withdraw(conn, who, topic, visitor.ip, visitor.user_agent, now)
    log.info(
        "tenant=%s rcpt=%s left topic %s (delivery %s)",
        who.tenant_id,
        who.address,
        topic,
        who.delivery_id,
    )
    return True


def leave_all(
    engine: Engine,
    keys: tokens.Keys,
    token: str,
    who: Subscriber,
    visitor: signup.Visitor,
    now: datetime,
) -> None:
    """Withdraw every topic and suppress the address for the tenant, as an unsubscribe."""
    with engine.begin() as conn:
        for state in topics(conn, who, False):
            if state.subscribed:
                _withdraw(conn, who, state.slug, visitor.ip, visitor.user_agent, now)
    unsubscribe.apply(engine, keys, token, "link", now)


def rejoin_form(engine: Engine, who: Subscriber, topic: str) -> Any | None:
    """The form whose double opt-in re-subscribes ``who`` to ``topic``, if any."""
    with engine.connect() as conn:
        public_id = _forms(conn, who).get(topic)
    return signup.find_form(engine, public_id) if public_id else None
