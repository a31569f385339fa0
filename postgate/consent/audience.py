"""Streams a campaign's audience in pages, with what the gate needs for each page.

Memory stays flat in the list size: one page of contacts, their consents, their
suppressions and (only for consents older than the freshness window) their past
promotional sends are loaded per round trip, keyset-paginated by contact id.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, select

from postgate.core.clock import add_months, aware
from postgate.core.gate import FRESH_MONTHS, ConsentView, Recipient
from postgate.core.states import Channel, DeliveryState, Kind
from postgate.store import tables as t
from postgate.tenants import erasure


@dataclass(frozen=True, slots=True)
class AudienceSpec:
    tenant_id: int
    channel: str
    topic: str
    list_ids: tuple[int, ...]


def _contact_page(
    conn: Connection, spec: AudienceSpec, after: int, size: int
) -> list[tuple[int, str | None]]:
    members = (
        select(t.list_member.c.contact_id)
        .where(
            t.list_member.c.tenant_id == spec.tenant_id,
            t.list_member.c.list_id.in_(spec.list_ids),
            t.list_member.c.contact_id > after,
        )
        .distinct()
        .order_by(t.list_member.c.contact_id)
        .limit(size)
        .subquery()
    )
    column = t.contact.c.email if spec.channel == Channel.EMAIL else t.contact.c.phone
    rows = conn.execute(
        select(t.contact.c.id, column)
        .join(members, members.c.contact_id == t.contact.c.id)
        .where(t.contact.c.tenant_id == spec.tenant_id)
        .order_by(t.contact.c.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def _latest_consents(
    conn: Connection, spec: AudienceSpec, contact_ids: Sequence[int]
) -> dict[int, ConsentView]:
    c = t.consent.c
    rows = conn.execute(
        select(
            c.contact_id,
            c.tenant_id,
            c.source,
            c.status,
            c.consented_at,
            c.confirmed_at,
            c.evidence_ref,
            c.marketing_checkbox,
        )
        .where(
            c.tenant_id == spec.tenant_id,
            c.channel == spec.channel,
            c.topic == spec.topic,
            c.contact_id.in_(contact_ids),
        )
        .order_by(c.contact_id, c.created_at, c.id)
    ).all()
    latest: dict[int, ConsentView] = {}
    for row in rows:  # ordered oldest first: the last record per contact wins
        latest[row[0]] = ConsentView(*row[1:])
    return latest


def _suppressions(conn: Connection, spec: AudienceSpec, addresses: Sequence[str]) -> dict[str, str]:
    return erasure.suppressions(conn, spec.tenant_id, spec.channel, addresses)


def _promo_sends(
    conn: Connection, spec: AudienceSpec, contact_ids: Sequence[int]
) -> dict[int, list[datetime]]:
    d, cp = t.delivery.c, t.campaign.c
    rows = conn.execute(
        select(d.contact_id, d.sent_at)
        .join(t.campaign, cp.id == d.campaign_id)
        .where(
            d.tenant_id == spec.tenant_id,
            d.contact_id.in_(contact_ids),
            d.state == DeliveryState.SENT,
            d.complained_at.is_(None),
            and_(cp.topic == spec.topic, cp.channel == spec.channel),
            cp.kind == Kind.PROMOTIONAL,
        )
    ).all()
    sends: dict[int, list[datetime]] = {}
    for contact_id, sent_at in rows:
        if sent_at is not None:
            sends.setdefault(contact_id, []).append(sent_at)
    return sends


def load_page(
    conn: Connection,
    spec: AudienceSpec,
    contacts: Sequence[tuple[int, str | None]],
    now: datetime,
) -> list[Recipient]:
    ids = [cid for cid, _ in contacts]
    consents = _latest_consents(conn, spec, ids)
    suppressed = _suppressions(conn, spec, [a for _, a in contacts if a])
    stale = [
        cid
        for cid, view in consents.items()
        if aware(now) > add_months(view.given_at, FRESH_MONTHS)
    ]
    sends = _promo_sends(conn, spec, stale) if stale else {}
    return [
        Recipient(
            contact_id=cid,
            address=address,
            consent=consents.get(cid),
            suppression=suppressed.get(address) if address else None,
            promo_sends=tuple(sends.get(cid, ())),
        )
        for cid, address in contacts
    ]


def page(
    conn: Connection, spec: AudienceSpec, after: int, size: int, now: datetime
) -> list[Recipient]:
    """The next page of recipients after contact id ``after``, ready for the gate."""
    contacts = _contact_page(conn, spec, after, size)
    return load_page(conn, spec, contacts, now) if contacts else []


def stream(
    conn: Connection, spec: AudienceSpec, page_size: int, now: datetime, after: int = 0
) -> Iterator[list[Recipient]]:
    """Pages of recipients with everything the gate needs, in contact id order."""
    while recipients := page(conn, spec, after, page_size, now):
        yield recipients
        after = recipients[-1].contact_id
