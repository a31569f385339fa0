"""A batch that takes longer to send than LEASE_S must not be taken back from the live
sender that holds it. Found by bench/soak.py (LEASE_S=3 on a loaded 2-core machine: about
640 duplicate mails in a minute, and here 20 recipients got 80 mails in 15 s) when senders
did not renew their leases; they now push the lease forward while a batch is in hand."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from postgate.campaigns import control
from postgate.sinks.smtp import SmtpSink
from postgate.store import tables as t
from tests.support import World
from tests.workers.switching import TimedHandler


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(handler=TimedHandler(delay=0.2)) as server:
        yield server


def test_a_batch_slower_than_its_lease_sends_each_recipient_once(world: World) -> None:
    for i in range(20):
        world.contact(f"l{i:02d}")
    world.ctx.settings = world.ctx.settings.with_provider("smtp", connections=1).model_copy(
        update={
            "lease_s": 1.0,
            "batch_size": 10,
            "sender_prefetch": 1,
            "canary_min_audience": 0,
        }
    )  # one batch takes about 2 s, twice its lease
    world.publish(world.message("slow"))
    try:
        world.run(world.finished("slow"), timeout=10)
    finally:  # the database is shared: other tests' sweepers must not pick these rows up
        with world.ctx.engine.connect() as conn:
            campaign_id = conn.scalar(
                select(t.campaign.c.id).where(t.campaign.c.tenant_id == world.tenant_id)
            )
        if campaign_id is not None and world.campaign_state("slow") != "finished":
            control.cancel(world.ctx.engine, world.tenant_id, campaign_id, "test")
    received = Counter(a for r in world.sink.handler.received for a in r.recipients)
    assert len(received) == 20
    assert set(received.values()) == {1}, f"{sum(received.values()) - 20} duplicates"
