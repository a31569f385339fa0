"""Canary sending with real workers: a large promotional campaign sends a slice first,
waits, and continues only when the slice's complaint and bounce rates are below the
thresholds; otherwise the rest stays held, the halt is audited, and an operator may
cancel it."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from postgate.core.clock import utcnow
from postgate.feedback import apply as feedback_store
from postgate.feedback.event import Feedback
from postgate.store import tables as t
from postgate.tenants import sending as sending_blocks
from tests.support import World

N, SLICE = 200, 20


def configure(world: World) -> None:
    s = world.ctx.settings
    s.canary_min_audience, s.canary_fraction, s.canary_wait_s = 100, 0.1, 3600


def states(world: World, external_id: str) -> Counter[tuple[str, str | None]]:
    return Counter((r.state, r.reason) for r in world.deliveries(external_id))


def test_a_clean_slice_lets_the_campaign_continue(world: World) -> None:
    configure(world)
    for i in range(N):
        world.contact(f"c{i:03d}")
    world.publish(world.message("big"))
    world.run(
        lambda: states(world, "big") == {("sent", None): SLICE, ("held", "canary"): N - SLICE}
    )
    assert len(world.sink.handler.received) == SLICE
    world.ctx.settings.canary_wait_s = 0
    world.run(world.finished("big"))
    assert states(world, "big") == {("sent", None): N}
    received = Counter(a for r in world.sink.handler.received for a in r.recipients)
    assert len(received) == N and set(received.values()) == {1}


def test_a_complaint_in_the_slice_halts_the_campaign(world: World) -> None:
    configure(world)
    for i in range(N):
        world.contact(f"c{i:03d}")
    small = World.create(world.ctx, world.sink)  # below the canary size: sent at once
    for i in range(5):
        small.contact(f"s{i}")
    world.publish(world.message("big"))
    small.publish(small.message("small"))
    world.run(
        lambda: (
            states(world, "big")[("sent", None)] == SLICE
            and small.campaign_state("small") == "finished"
        )
    )
    first = next(r for r in world.deliveries("big") if r.state == "sent")
    feedback_store.apply(
        world.ctx.engine,
        world.ctx.settings,
        Feedback("complaint", delivery_id=first.id),
        b"ARF report",
        "arf",
        utcnow(),
    )
    world.ctx.settings.canary_wait_s = 0
    world.run(lambda: states(world, "big")[("held", "canary_halted")] == N - SLICE)
    assert (
        len(
            [
                r
                for r in world.sink.handler.received
                if r.recipients[0].endswith(world.tenant.domain)
            ]
        )
        == SLICE
    )
    assert world.campaign_state("big") == "sending"
    a = t.audit_log.c
    with world.ctx.engine.connect() as conn:
        [audit] = conn.execute(
            select(a.action, a.detail).where(a.tenant_id == world.tenant_id)
        ).all()
    assert audit.action == "canary.halt"
    assert (audit.detail["complaints"], audit.detail["sent"]) == (1, SLICE)
    cancelled = sending_blocks.cancel_held(
        world.ctx.engine, world.tenant_id, "ops", "bad list", utcnow()
    )
    assert cancelled == N - SLICE
    world.run(world.finished("big"))
    assert states(world, "big") == {
        ("sent", None): SLICE,
        ("cancelled", "operator_cancelled"): N - SLICE,
    }
