"""Erasing a person on request (GDPR art. 17, the platform's terms §10).

Their personal data goes: contact fields, list memberships, consent records (with IPs
and user agents), pending signups, addresses on deliveries and feedback events. What
stays is a suppression entry keyed by a hash of the address, so the same address,
imported again later, is still never mailed — and nobody can read it back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update

from postgate.core.clock import utcnow
from postgate.events import outbox
from postgate.feedback import ledger
from postgate.store import tables as t

HASH_PREFIX = "sha256:"


CLOSED_TENANT_DAYS = 90  # a closed tenant's data is purged this long after closure


def address_hash(address: str) -> str:
    return HASH_PREFIX + hashlib.sha256(address.strip().lower().encode()).hexdigest()


CLOSED_TENANT_DAYS = 90  # a closed tenant's data is purged this long after closure


def suppressions(
    conn: Connection, tenant_id: int, channel: str, addresses: Sequence[str]
) -> dict[str, str]:
    """The suppression reason of each address that has one, erased people's hashed
    entries included: the one lookup every check of suppression goes through."""
    if not addresses:
        return {}
    s = t.suppression.c
    hashed: dict[str, list[str]] = {}
    for address in addresses:  # 'Ann@x' and 'ann@x' share one erasure entry
        hashed.setdefault(address_hash(address), []).append(address)
    rows = conn.execute(
        select(s.address, s.reason).where(
            s.tenant_id == tenant_id,
            s.channel == channel,
            s.address.in_(sorted({*addresses, *hashed})),
        )
    ).all()
    found: dict[str, str] = {}
    for stored, reason in rows:
        if stored not in hashed:
            found.setdefault(stored, reason)
    for stored, reason in rows:  # an erasure wins over a plain entry
        for address in hashed.get(stored, []):
            found[address] = reason
    return found


@dataclass(frozen=True, slots=True)
class ErasureReport:
    address_hash: str
    contacts: int
    consents: int
    deliveries: int
    events: int


CLOSED_TENANT_DAYS = 90  # a closed tenant's data is purged this long after closure


def erase(engine: Engine, tenant_id: int, address: str, actor: str) -> ErasureReport:
    """Erase everything this tenant holds about ``address`` (email or E.164 phone)."""
    address = address.strip()
    digest = address_hash(address)
    channel = "email" if "@" in address else "sms"
    now = utcnow()
    c = t.contact.c
    with engine.begin() as conn:
        ids = list(
            conn.scalars(
                select(c.id).where(
                    c.tenant_id == tenant_id,
                    or_(c.email == address.lower(), c.phone == address, c.email == address),
                )
            )
        )
        deliveries = list(
            conn.scalars(
                select(t.delivery.c.id).where(
                    t.delivery.c.tenant_id == tenant_id,
                    or_(t.delivery.c.contact_id.in_(ids), t.delivery.c.address == address),
                )
            )
        )
        consents = conn.execute(
            delete(t.consent).where(
                t.consent.c.tenant_id == tenant_id, t.consent.c.contact_id.in_(ids)
            )
        ).rowcount
        conn.execute(
            delete(t.pending_signup).where(
                t.pending_signup.c.tenant_id == tenant_id,
                or_(t.pending_signup.c.contact_id.in_(ids), t.pending_signup.c.address == address),
            )
        )
        conn.execute(
            delete(t.list_member).where(
                t.list_member.c.tenant_id == tenant_id, t.list_member.c.contact_id.in_(ids)
            )
        )
        conn.execute(
            update(t.delivery)
            .where(t.delivery.c.id.in_(deliveries))
            .values(address=digest, last_error=None)
        )
        conn.execute(
            update(t.contact)
            .where(c.id.in_(ids))
            .values(
                email=None, phone=None, name="", attributes={}, last_activity_at=None, erased_at=now
            )
        )
        conn.execute(  # the CRM's id of an erased contact links it to nothing any more
            delete(t.contact_ref).where(
                t.contact_ref.c.tenant_id == tenant_id, t.contact_ref.c.contact_id.in_(ids)
            )
        )
        events = ledger.erase(conn, tenant_id, channel, address, digest, deliveries, now)
        outbox.erase(conn, tenant_id, address, digest, deliveries)
        report = ErasureReport(digest, len(ids), consents, len(deliveries), events)
        conn.execute(
            insert(t.audit_log).values(
                tenant_id=tenant_id,
                actor=actor,
                action="erasure",
                created_at=now,
                detail={
                    "address_hash": digest,
                    "contacts": report.contacts,
                    "consents": report.consents,
                    "deliveries": report.deliveries,
                    "events": report.events,
                },
            )
        )
    return report
