"""Retention: a closed tenant is purged after 90 days, audit records after 365."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select, update

from postgate.core.clock import utcnow
from postgate.store import tables as t
from postgate.workers.retention import purge
from tests.support import World


def count(world: World, table, tenant_id: int) -> int:  # type: ignore[no-untyped-def]
    with world.ctx.engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
            )
            or 0
        )


def test_closed_tenants_are_purged_after_90_days_and_old_audit_after_365(world: World) -> None:
    world.contact("anna")
    world.publish(world.message("last"))
    world.run(world.finished("last"))
    keep = World.create(world.ctx, world.sink)
    keep.contact("bela")
    now = utcnow()
    with world.ctx.engine.begin() as conn:
        conn.execute(
            update(t.tenant)
            .where(t.tenant.c.id == world.tenant_id)
            .values(closed_at=now - timedelta(days=89))
        )
        old = conn.execute(
            insert(t.audit_log)
            .values(
                tenant_id=keep.tenant_id,
                actor="x",
                action="old",
                detail={},
                created_at=now - timedelta(days=366),
            )
            .returning(t.audit_log.c.id)
        ).scalar_one()
        recent = conn.execute(
            insert(t.audit_log)
            .values(
                tenant_id=keep.tenant_id,
                actor="x",
                action="recent",
                detail={},
                created_at=now - timedelta(days=300),
            )
            .returning(t.audit_log.c.id)
        ).scalar_one()

    early = purge(world.ctx.engine, now)
    assert early["tenants"] == 0 and count(world, t.contact, world.tenant_id) == 1

    report = purge(world.ctx.engine, now + timedelta(days=2))
    assert report["tenants"] == 1 and report["delivery"] >= 1 and report["contact"] >= 1
    for table in (t.contact, t.consent, t.delivery, t.campaign, t.list_member, t.mailing_list):
        assert count(world, table, world.tenant_id) == 0, table.name
    assert count(keep, t.contact, keep.tenant_id) == 1
    with world.ctx.engine.connect() as conn:
        ids = set(conn.scalars(select(t.audit_log.c.id)))
        assert conn.scalar(select(t.tenant.c.id).where(t.tenant.c.id == world.tenant_id)) is None
    assert old not in ids and recent in ids
