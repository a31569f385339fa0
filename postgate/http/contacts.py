"""Tenant routes for the CRM's contacts: the bulk upsert (``contacts.v1``), the reports
of past syncs (api and queue alike) and a contact looked up by the CRM's own id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from postgate.core.clock import aware, utcnow
from postgate.core.contacts_message import ContactsV1
from postgate.http.auth import TenantUser
from postgate.http.params import Limit, Line, RowId
from postgate.platform import contacts_sync
from postgate.store import tables as t
from postgate.tenants.erasure import suppressions

router = APIRouter(prefix="/v1/contacts", tags=["tenant: contacts"])
sync, ref = contacts_sync.sync_table.c, contacts_sync.ref_table.c


@router.post(":bulk")
def bulk_upsert(doc: ContactsV1, request: Request, user: TenantUser) -> dict[str, Any]:
    """Upsert up to 1000 contacts by the CRM's contact id, with their lists and consents
    (the same ``contacts.v1`` document as on the queue). Contacts the consent rules refuse
    are reported in ``report`` and not written; the others are."""
    if doc.tenant != user.tenant_slug:
        raise HTTPException(403, "a tenant key can only sync its own contacts")
    assert user.tenant_id is not None
    return contacts_sync.apply(
        request.app.state.engine, user.tenant_id, doc, "api", user.name, utcnow()
    )


def _sync_out(row: Any) -> dict[str, Any]:
    return {
        "sync_id": row.id,
        "batch_id": row.batch_id,
        "source": row.source,
        "received": row.received,
        "created": row.created,
        "updated": row.updated,
        "unchanged": row.unchanged,
        "consents": row.consents,
        "dropped": row.dropped,
        "report": row.report or [],
        "at": aware(row.created_at).isoformat(),
    }


@router.get("/syncs")
def syncs(
    request: Request, user: TenantUser, batch_id: str | None = None, limit: Limit = 50
) -> list[dict[str, Any]]:
    """The latest sync reports, newest first (``batch_id``: only that document's)."""
    query = select(contacts_sync.sync_table).where(sync.tenant_id == user.tenant_id)
    if batch_id is not None:
        query = query.where(sync.batch_id == batch_id)
    with request.app.state.engine.connect() as conn:
        rows = conn.execute(query.order_by(sync.id.desc()).limit(limit)).all()
    return [_sync_out(row) for row in rows]


@router.get("/syncs/{sync_id}")
def one_sync(sync_id: RowId, request: Request, user: TenantUser) -> dict[str, Any]:
    with request.app.state.engine.connect() as conn:
        row = conn.execute(
            select(contacts_sync.sync_table).where(
                sync.id == sync_id, sync.tenant_id == user.tenant_id
            )
        ).first()
    if row is None:
        raise HTTPException(404, "no such sync")
    return _sync_out(row)


@router.get("/by-ref/{external_id}")
def by_ref(external_id: Line, request: Request, user: TenantUser) -> dict[str, Any]:
    """A contact by the CRM's id: its fields, lists, latest consent per channel and topic,
    and suppression."""
    c, lm, cs = t.contact.c, t.list_member.c, t.consent.c
    assert user.tenant_id is not None
    with request.app.state.engine.connect() as conn:
        row = conn.execute(
            select(c.id, c.email, c.phone, c.name, c.attributes, c.last_activity_at, c.erased_at)
            .join(contacts_sync.ref_table, ref.contact_id == c.id)
            .where(
                ref.tenant_id == user.tenant_id,
                ref.external_id == external_id,
                c.tenant_id == user.tenant_id,
            )
        ).first()
        if row is None:
            raise HTTPException(404, "no such contact")
        lists = sorted(
            conn.scalars(
                select(lm.list_id).where(lm.tenant_id == user.tenant_id, lm.contact_id == row.id)
            )
        )
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for r in conn.execute(
            select(cs.channel, cs.topic, cs.source, cs.status, cs.consented_at, cs.evidence_ref)
            .where(cs.tenant_id == user.tenant_id, cs.contact_id == row.id)
            .order_by(cs.created_at, cs.id)
        ):
            latest[r.channel, r.topic] = {
                "channel": r.channel,
                "topic": r.topic,
                "source": r.source,
                "status": r.status,
                "consented_at": aware(r.consented_at).isoformat(),
                "evidence": r.evidence_ref,
            }
        suppressed = {
            channel: (
                suppressions(conn, user.tenant_id, channel, [address]).get(address)
                if address
                else None
            )
            for channel, address in (("email", row.email), ("sms", row.phone))
        }
    return {
        "id": row.id,
        "external_id": external_id,
        "email": row.email,
        "phone": row.phone,
        "name": row.name,
        "attributes": row.attributes or {},
        "last_activity_at": aware(row.last_activity_at).isoformat()
        if row.last_activity_at
        else None,
        "erased": row.erased_at is not None,
        "lists": lists,
        "consents": list(latest.values()),
        "suppressed": suppressed,
    }
