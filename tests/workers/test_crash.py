"""kill -9 of sender processes mid-campaign: nothing is lost, every recipient ends in exactly
one terminal state, and duplicate SMTP transactions stay within what was in flight: the
sends on the wire and the outcomes not yet flushed (at most OUTCOME_FLUSH_COUNT waiting
and one flush being written, per batch in hand), never a whole batch."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, insert, select

from postgate.core.clock import utcnow
from postgate.settings import Settings
from postgate.store import tables as t
from tests.support import World
from tests.workers.fleet import worker_env

pytestmark = pytest.mark.skipif(
    os.environ.get("BROKER_URL", "memory://").startswith("memory"),
    reason="needs a broker shared between processes (BROKER_URL=redis/amqp)",
)

RECIPIENTS = 10_000
PREFETCH, BATCH = 2, 100
CONNECTIONS, FLUSH = 8, 8


def bulk_audience(world: World, count: int) -> None:
    now = utcnow()
    domain = world.tenant.domain
    with world.ctx.engine.begin() as conn:
        conn.execute(
            insert(t.contact),
            [
                {
                    "tenant_id": world.tenant_id,
                    "email": f"k{i:05d}@{domain}",
                    "name": f"K{i}",
                    "attributes": {},
                    "created_at": now,
                }
                for i in range(count)
            ],
        )
        ids = list(
            conn.scalars(
                select(t.contact.c.id)
                .where(t.contact.c.tenant_id == world.tenant_id, t.contact.c.email.like("k%"))
                .order_by(t.contact.c.id)
            )
        )
        conn.execute(
            insert(t.list_member),
            [
                {"list_id": world.mlist.id, "contact_id": cid, "tenant_id": world.tenant_id}
                for cid in ids
            ],
        )
        conn.execute(
            insert(t.consent),
            [
                {
                    "tenant_id": world.tenant_id,
                    "contact_id": cid,
                    "channel": "email",
                    "topic": "news",
                    "source": "signup_form",
                    "status": "confirmed",
                    "consented_at": now,
                    "confirmed_at": now,
                    "created_at": now,
                }
                for cid in ids
            ],
        )


def sender(settings: Settings) -> subprocess.Popen[bytes]:
    env = worker_env(
        settings,
        SMTP_CONNECTIONS=str(CONNECTIONS),
        LEASE_S="2",
        BATCH_SIZE=str(BATCH),
        SENDER_PREFETCH=str(PREFETCH),
        OUTCOME_FLUSH_COUNT=str(FLUSH),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "postgate", "worker", "sender"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_9_during_a_campaign_loses_nothing(world: World) -> None:
    bulk_audience(world, RECIPIENTS)
    settings = world.ctx.settings.model_copy(
        update={
            "batch_size": BATCH,
            "lease_s": 2,
            "sweep_interval_s": 0.2,
            "orphan_after_s": 3,
            "canary_min_audience": 0,
        }
    )
    world.ctx.settings = settings
    world.publish(world.message("crash"))
    world.run(lambda: world.campaign_state("crash") == "sending", workers=("planner",), timeout=120)
    rng = random.Random(7)
    kills, kills_mid_send = 0, 0
    procs = [sender(settings), sender(settings)]
    deadline = time.monotonic() + 240
    try:
        while kills < 4 and time.monotonic() < deadline:
            # kill at a random point once sending is under way again
            target = len(world.sink.handler.received) + rng.randrange(200, 1500)
            while len(world.sink.handler.received) < target and time.monotonic() < deadline:
                time.sleep(0.01)
            victim = procs.pop(rng.randrange(len(procs)))
            kills_mid_send += world.campaign_state("crash") == "sending"
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            procs.append(sender(settings))
        world.run(world.finished("crash"), workers=("sweeper",), timeout=240)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)

    d = t.delivery.c
    with world.ctx.engine.connect() as conn:
        states = dict(
            conn.execute(
                select(d.state, func.count())
                .where(d.tenant_id == world.tenant_id)
                .group_by(d.state)
            ).all()
        )
    assert states == {"sent": RECIPIENTS}
    received = Counter(r.recipients[0] for r in world.sink.handler.received)
    assert len(received) == RECIPIENTS  # nobody lost
    duplicates = sum(n - 1 for n in received.values())
    in_flight_bound = kills * (CONNECTIONS + PREFETCH * 2 * FLUSH)  # < one batch per kill
    assert duplicates <= in_flight_bound, (duplicates, in_flight_bound)
    assert kills_mid_send >= 2  # the kills really hit a campaign that was sending
    print(f"kills={kills} mid_send={kills_mid_send} duplicates={duplicates}")
