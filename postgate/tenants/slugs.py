"""Tenants as the outside world names them: by slug (queue messages, api paths, the CLI)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from postgate.store import tables as t


def id_of(conn: Connection, slug: str) -> int | None:
    """The id of the tenant called ``slug``, or None when there is none."""
    tenant_id = conn.scalar(select(t.tenant.c.id).where(t.tenant.c.slug == slug))
    return None if tenant_id is None else int(tenant_id)
