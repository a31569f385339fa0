"""A tenant's provisioned limits as every path that adds contacts reads them."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from postgate.store import tables as t


def contact_room(conn: Connection, tenant_id: int) -> int | None:
    """How many more contacts the tenant may have (``max_contacts`` less the contacts it
    holds, erased ones not counted), never below 0; None without a limit. The contacts
    sync, CSV imports and signup forms all ask this before creating a contact."""
    limits = conn.scalar(
        select(t.tenant_profile.c.limits).where(t.tenant_profile.c.tenant_id == tenant_id)
    )
    cap = (limits or {}).get("max_contacts")
    if cap is None:
        return None
    c = t.contact.c
    have = conn.scalar(
        select(func.count())
        .select_from(t.contact)
        .where(c.tenant_id == tenant_id, c.erased_at.is_(None))
    )
    return max(int(cap) - int(have or 0), 0)


def contact_limit_reason(conn: Connection, tenant_id: int) -> str:
    """The report line of a contact not created because the limit is reached."""
    limits = conn.scalar(
        select(t.tenant_profile.c.limits).where(t.tenant_profile.c.tenant_id == tenant_id)
    )
    return f"the tenant's limit of {(limits or {}).get('max_contacts')} contacts is reached"
