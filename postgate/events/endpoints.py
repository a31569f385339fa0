"""A tenant's webhook endpoints: registering, changing, pausing and resuming them.

An endpoint starts at the head of the stream (it receives what happens after it was
registered; older events stay readable from ``GET /v1/events``). Its secret signs every
post. Every change is audited.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from postgate.core.events import EventType
from postgate.store import tables as t

w, o = t.webhook_endpoint.c, t.event_outbox.c
MAX_ENDPOINTS = 10  # per tenant
TYPES = frozenset(str(x) for x in EventType)


class EndpointError(ValueError):
    """A refused change, with the reason."""


def check_types(types: Sequence[str]) -> list[str]:
    unknown = sorted(set(types) - TYPES)
    if unknown:
        raise EndpointError(f"unknown event types {unknown}; known: {sorted(TYPES)}")
    return sorted(set(types))


def view(row: Any, secret: bool = False) -> dict[str, Any]:
    shown = {
        "id": row.id,
        "url": row.url,
        "types": row.types or [],
        "description": row.description,
        "state": row.state,
        "paused_reason": row.paused_reason,
        "cursor": row.cursor,
        "attempts": row.attempts,
        "failing_since": row.failing_since,
        "next_attempt_at": row.next_attempt_at,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "delivered": row.delivered,
        "created_at": row.created_at,
    }
    if secret:
        shown["secret"] = row.secret
    return shown


def _audit(
    conn: Connection, tenant_id: int, actor: str, action: str, detail: dict[str, Any], now: datetime
) -> None:
    conn.execute(
        insert(t.audit_log).values(
            tenant_id=tenant_id, actor=actor, action=action, detail=detail, created_at=now
        )
    )


def _one(conn: Connection, tenant_id: int, endpoint_id: int) -> Any:
    row = conn.execute(
        select(t.webhook_endpoint).where(w.id == endpoint_id, w.tenant_id == tenant_id)
    ).first()
    if row is None:
        raise LookupError("no such webhook endpoint")
    return row


def create(
    engine: Engine,
    tenant_id: int,
    url: str,
    types: Sequence[str],
    description: str,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Register an endpoint (the URL is checked by the caller); its secret is returned."""
    kinds = check_types(types)
    with engine.begin() as conn:
        count = conn.scalar(select(func.count()).where(w.tenant_id == tenant_id)) or 0
        if count >= MAX_ENDPOINTS:
            raise EndpointError(f"a tenant has at most {MAX_ENDPOINTS} webhook endpoints")
        head = conn.scalar(select(func.coalesce(func.max(o.seq), 0))) or 0
        endpoint_id = conn.execute(
            insert(t.webhook_endpoint)
            .values(
                tenant_id=tenant_id,
                url=url,
                types=kinds,
                description=description[:200],
                secret="whsec_" + secrets.token_urlsafe(32),
                cursor=head,
                created_at=now,
                updated_at=now,
            )
            .returning(w.id)
        ).scalar_one()
        _audit(
            conn,
            tenant_id,
            actor,
            "webhook_endpoint_created",
            {"endpoint": endpoint_id, "url": url, "types": kinds},
            now,
        )
        return view(_one(conn, tenant_id, endpoint_id), secret=True)


def listing(engine: Engine, tenant_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.webhook_endpoint).where(w.tenant_id == tenant_id).order_by(w.id)
        ).all()
        return [view(row) for row in rows]


def show(engine: Engine, tenant_id: int, endpoint_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        shown = view(_one(conn, tenant_id, endpoint_id))
        shown["dead_letters"] = conn.scalar(
            select(func.count()).where(t.webhook_dead_letter.c.endpoint_id == endpoint_id)
        )
        return shown


def change(
    engine: Engine,
    tenant_id: int,
    endpoint_id: int,
    values: dict[str, Any],
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Change the URL, types or description; ``rotate_secret`` makes a new secret."""
    fields: dict[str, Any] = {}
    if values.get("url") is not None:
        fields["url"] = values["url"]
    if values.get("types") is not None:
        fields["types"] = check_types(values["types"])
    if values.get("description") is not None:
        fields["description"] = str(values["description"])[:200]
    if values.get("rotate_secret"):
        fields["secret"] = "whsec_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        _one(conn, tenant_id, endpoint_id)
        conn.execute(
            update(t.webhook_endpoint).where(w.id == endpoint_id).values(**fields, updated_at=now)
        )
        shown = sorted(k for k in fields if k != "secret") + (
            ["secret"] if "secret" in fields else []
        )
        _audit(
            conn,
            tenant_id,
            actor,
            "webhook_endpoint_changed",
            {"endpoint": endpoint_id, "changed": shown},
            now,
        )
        return view(_one(conn, tenant_id, endpoint_id), secret="secret" in fields)


def remove(engine: Engine, tenant_id: int, endpoint_id: int, actor: str, now: datetime) -> None:
    with engine.begin() as conn:
        _one(conn, tenant_id, endpoint_id)
        conn.execute(
            delete(t.webhook_dead_letter).where(t.webhook_dead_letter.c.endpoint_id == endpoint_id)
        )
        conn.execute(delete(t.webhook_endpoint).where(w.id == endpoint_id))
        _audit(conn, tenant_id, actor, "webhook_endpoint_deleted", {"endpoint": endpoint_id}, now)


def resume(
    engine: Engine, tenant_id: int, endpoint_id: int, actor: str, now: datetime
) -> dict[str, Any]:
    """Take a paused endpoint back: it continues after its cursor (a dead-lettered batch
    is not posted again; replay it from ``GET /v1/events`` if needed)."""
    with engine.begin() as conn:
        _one(conn, tenant_id, endpoint_id)
        conn.execute(
            update(t.webhook_endpoint)
            .where(w.id == endpoint_id)
            .values(
                state="active",
                paused_reason="",
                attempts=0,
                failing_since=None,
                next_attempt_at=None,
                updated_at=now,
            )
        )
        _audit(conn, tenant_id, actor, "webhook_endpoint_resumed", {"endpoint": endpoint_id}, now)
        return view(_one(conn, tenant_id, endpoint_id))


def dead_letters(
    engine: Engine, tenant_id: int, endpoint_id: int, limit: int = 100
) -> list[dict[str, Any]]:
    dl = t.webhook_dead_letter.c
    with engine.connect() as conn:
        _one(conn, tenant_id, endpoint_id)
        rows = conn.execute(
            select(dl.event_id, dl.seq, dl.attempts, dl.error, dl.created_at)
            .where(dl.endpoint_id == endpoint_id)
            .order_by(dl.seq.desc())
            .limit(limit)
        ).all()
        return [dict(row._mapping) for row in rows]
