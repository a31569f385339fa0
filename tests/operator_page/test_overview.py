"""The operator page reads every tenant's window in a few grouped queries: the numbers
must be exactly those the breaker measures for each tenant on its own."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import insert, select, update

from postgate.core.breaker import Window
from postgate.core.clock import utcnow
from postgate.store import tables as t
from postgate.tenants.reputation import measure, measure_all
from tests.operator_page.background import seed_history
from tests.support import World


def test_all_windows_at_once_equal_each_tenants_own(world: World) -> None:
    noisy, rejecting, quiet = (
        world,
        World.create(world.ctx, world.sink),
        World.create(world.ctx, world.sink),
    )
    seed_history(noisy, delivered=300, complaints=3, hard_bounces=7)
    seed_history(rejecting, delivered=120, complaints=0, hard_bounces=2)
    d, now = t.delivery.c, utcnow()
    with world.ctx.engine.begin() as conn:
        ids = list(
            conn.scalars(
                select(d.id).where(d.tenant_id == rejecting.tenant_id).order_by(d.id).limit(10)
            )
        )
        conn.execute(
            update(t.delivery)
            .where(d.id.in_(ids))
            .values(state="failed", reason="smtp_rejected", updated_at=now)
        )
        conn.execute(
            insert(t.feedback_event),
            [  # a second report of one complaint, and
                {
                    "tenant_id": noisy.tenant_id,
                    "delivery_id": delivery_id,
                    "channel": "email",
                    "kind": "complaint",
                    "hard": None,
                    "status": "",
                    "source": "arf",
                    "address": "",
                    "dedup_key": f"again-{uuid.uuid4().hex}",
                    "raw": "",
                    "created_at": now,
                }
                for delivery_id in [
                    *conn.scalars(
                        select(d.id).where(d.tenant_id == noisy.tenant_id).order_by(d.id).limit(1)
                    ),
                    None,
                ]
            ],
        )
    start = now - timedelta(days=7)
    with world.ctx.engine.connect() as conn:
        windows = measure_all(conn, start, now)
        own = {
            w.tenant_id: measure(conn, w.tenant_id, start, now) for w in (noisy, rejecting, quiet)
        }
    empty = Window(start, now, 0, 0, 0, 0)
    for tenant_id, window in own.items():
        assert windows.get(tenant_id, empty) == window, tenant_id
    assert own[noisy.tenant_id] == Window(start, now, 300, 300, 4, 7)
    assert own[rejecting.tenant_id] == Window(start, now, 120, 110, 0, 2)
    assert quiet.tenant_id not in windows
