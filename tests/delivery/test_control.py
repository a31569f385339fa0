"""Pause, resume and cancel while a campaign sends: nobody gets a second mail."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, insert, select

from postgate.campaigns import control
from postgate.campaigns.accept import accept
from postgate.core.clock import utcnow
from postgate.core.message import parse_campaign
from postgate.runtime.publish import publisher
from postgate.store import tables as t
from postgate.workers.planner import plan_campaign
from tests.support import World, run_until

N = 1500


def audience(world: World, n: int) -> None:
    now = utcnow()
    with world.ctx.engine.begin() as conn:
        ids = (
            conn.execute(
                insert(t.contact).returning(t.contact.c.id),
                [
                    {
                        "tenant_id": world.tenant_id,
                        "email": f"u{i}@{world.tenant.domain}",
                        "name": "",
                        "attributes": {},
                        "created_at": now,
                    }
                    for i in range(n)
                ],
            )
            .scalars()
            .all()
        )
        conn.execute(
            insert(t.list_member),
            [
                {"list_id": world.mlist.id, "contact_id": i, "tenant_id": world.tenant_id}
                for i in ids
            ],
        )
        conn.execute(
            insert(t.consent),
            [
                {
                    "tenant_id": world.tenant_id,
                    "contact_id": i,
                    "channel": "email",
                    "topic": "news",
                    "source": "signup_form",
                    "status": "confirmed",
                    "consented_at": now,
                    "confirmed_at": now,
                    "created_at": now,
                }
                for i in ids
            ],
        )


def campaign_id(world: World, external_id: str) -> int:
    with world.ctx.engine.connect() as conn:
        return int(
            conn.scalar(
                select(t.campaign.c.id).where(
                    t.campaign.c.tenant_id == world.tenant_id,
                    t.campaign.c.external_id == external_id,
                )
            )
        )


def run_while(world: World, external_id: str, toggler, until) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        thread = threading.Thread(target=toggler, daemon=True)
        thread.start()
        await run_until(world.ctx, ["planner", "sender", "sweeper"], until, timeout=120)
        thread.join(timeout=30)

    asyncio.run(main())


def test_fifty_pauses_and_resumes_send_everyone_exactly_once(world: World) -> None:
    audience(world, N)
    world.publish(world.message("toggle"))
    broker = world.ctx.broker()
    rng = random.Random(3)
    actions: Counter[str] = Counter()

    def toggle() -> None:
        while world.campaign_state("toggle") not in ("sending", "planning"):
            time.sleep(0.01)
        cid = campaign_id(world, "toggle")
        for _ in range(50):
            time.sleep(rng.uniform(0.0, 0.05))
            try:
                control.pause(world.ctx.engine, world.tenant_id, cid, "test")
                actions["pause"] += 1
                time.sleep(rng.uniform(0.0, 0.03))
                control.resume(
                    world.ctx.engine,
                    publisher(broker, world.ctx.settings.batch_size),
                    world.tenant_id,
                    cid,
                    "test",
                )
                actions["resume"] += 1
            except control.ControlError:  # finished before all 50 rounds
                break

    run_while(world, "toggle", toggle, world.finished("toggle"))
    broker.close()
    assert actions["pause"] >= 10 and actions["pause"] == actions["resume"]
    received = Counter(r.recipients[0] for r in world.sink.handler.received)
    assert len(received) == N and set(received.values()) == {1}
    assert Counter(r.state for r in world.deliveries("toggle")) == {"sent": N}


def test_cancel_mid_send_stops_and_never_duplicates(world: World) -> None:
    audience(world, N)
    world.publish(world.message("cancel"))

    def cancel_soon() -> None:
        while len(world.sink.handler.received) < 200:
            time.sleep(0.005)
        control.cancel(world.ctx.engine, world.tenant_id, campaign_id(world, "cancel"), "test")

    def settled() -> bool:
        states = Counter(r.state for r in world.deliveries("cancel"))
        return world.campaign_state("cancel") == "cancelled" and not (
            set(states) & {"queued", "sending", "deferred", "held"}
        )

    run_while(world, "cancel", cancel_soon, settled)
    states = Counter(r.state for r in world.deliveries("cancel"))
    received = Counter(r.recipients[0] for r in world.sink.handler.received)
    assert set(received.values()) == {1}
    # a cancel while the planner is still at it also stops the planning: the contacts it
    # never reached have no row at all
    assert set(states) <= {"sent", "cancelled"} and sum(states.values()) <= N
    assert states["sent"] == len(received) and states["cancelled"] > 0
    with pytest.raises(control.ControlError):
        control.resume(
            world.ctx.engine,
            publisher(world.ctx.broker(), world.ctx.settings.batch_size),
            world.tenant_id,
            campaign_id(world, "cancel"),
            "test",
        )


def test_other_tenants_cannot_control_a_campaign(world: World) -> None:
    world.contact("anna")
    world.publish(world.message("mine", schedule_at="2099-01-01T00:00:00+00:00"))
    world.run(lambda: world.campaign_state("mine") == "scheduled", workers=("planner",))
    intruder = World.create(world.ctx, world.sink)
    with pytest.raises(LookupError):
        control.cancel(world.ctx.engine, intruder.tenant_id, campaign_id(world, "mine"), "x")
    assert world.campaign_state("mine") == "scheduled"


def test_a_cancel_while_planning_stops_the_planner(world: World) -> None:
    """The planner plans page by page; a cancel between pages ends the planning there."""
    audience(world, 3000)
    settings = world.ctx.settings
    settings.page_size = 20
    msg = parse_campaign(json.dumps(world.message("stop-planning")).encode(), 1_000_000)
    with world.ctx.engine.begin() as conn:
        made = accept(conn, msg, utcnow())

    def rows() -> int:
        d = t.delivery.c
        with world.ctx.engine.connect() as conn:
            query = select(func.count()).where(d.campaign_id == made.campaign_id)
            return int(conn.scalar(query) or 0)

    broker = world.ctx.broker()
    planning = threading.Thread(
        target=plan_campaign, args=(world.ctx.engine, broker, settings, made.campaign_id)
    )
    planning.start()
    while rows() == 0 and planning.is_alive():
        time.sleep(0.001)
    control.cancel(world.ctx.engine, world.tenant_id, made.campaign_id, "test")
    planning.join(60)
    broker.close()
    assert 0 < rows() < 3000
    assert world.campaign_state("stop-planning") == "cancelled"
