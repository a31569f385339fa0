"""A planner killed mid-way (kill -9) resumes by itself: the sweeper re-plans a campaign
whose planning lease ran out, exactly once; and a message a dead worker took but never
acked comes back from the broker after the visibility timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from postgate.runtime.broker import Broker
from postgate.store import tables as t
from tests.support import World
from tests.workers.fleet import Fleet, wait_until
from tests.workers.test_crash import bulk_audience

pytestmark = pytest.mark.skipif(
    os.environ.get("BROKER_URL", "memory://").startswith("memory"),
    reason="needs a broker shared between processes (BROKER_URL=redis/amqp)",
)
RECIPIENTS = 20_000


def rows(world: World) -> int:
    d = t.delivery.c
    with world.ctx.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(d.tenant_id == world.tenant_id)) or 0)


def test_a_planner_killed_mid_plan_is_resumed_by_the_sweeper(world: World, tmp_path: Path) -> None:
    bulk_audience(world, RECIPIENTS)
    fleet = Fleet(world.ctx.settings, tmp_path)
    try:
        planner = fleet.spawn("planner", PAGE_SIZE="200", PLAN_LEASE_S="3")
        world.publish(world.message("big", kind="transactional"))
        assert wait_until(lambda: rows(world) >= 2_000, 120, every=0.01), fleet.dead()
        planner.send_signal(signal.SIGKILL)
        planner.wait()
        killed_at, written = time.monotonic(), rows(world)
        assert written < RECIPIENTS and world.campaign_state("big") == "planning"
        fleet.spawn("sweeper", "sender", PAGE_SIZE="2000", PLAN_LEASE_S="3")
        assert wait_until(lambda: world.campaign_state("big") in ("sending", "finished"), 120), (
            fleet.dead()
        )
        resumed_after = time.monotonic() - killed_at
        assert wait_until(world.finished("big"), 240), fleet.dead()
    finally:
        fleet.stop()
    assert rows(world) == RECIPIENTS  # re-planning is exactly once
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
    assert resumed_after < 60, resumed_after
    print(f"killed at {written} rows; planning resumed {resumed_after:.1f} s after the kill")


TAKER = """
import sys, time
from postgate.runtime.broker import Broker
broker = Broker(sys.argv[1], sys.argv[2], visibility_timeout_s=1.0)
while broker.get("campaigns") is None:
    time.sleep(0.02)
print("taken", flush=True)
time.sleep(600)
"""


def test_a_message_taken_by_a_dead_worker_comes_back(world: World) -> None:
    settings = world.ctx.settings
    prefix = f"vt-{os.getpid()}-{time.monotonic_ns()}"
    alive = Broker(settings.broker_url, prefix, visibility_timeout_s=1.0)
    try:
        alive.publish("campaigns", b'{"marker": 1}')
        taker = subprocess.Popen(
            [sys.executable, "-c", TAKER, settings.broker_url, prefix], stdout=subprocess.PIPE
        )
        assert taker.stdout is not None and taker.stdout.readline().strip() == b"taken"
        taker.send_signal(signal.SIGKILL)  # died holding it: no ack, no requeue
        taker.wait()
        killed = time.monotonic()
        deadline, back = killed + 15, None
        while back is None and time.monotonic() < deadline:
            alive.restore_unacked()
            back = alive.get("campaigns")
            time.sleep(0.1)
        assert back is not None and back.body in (b'{"marker": 1}', '{"marker": 1}')
        back.ack()
        assert time.monotonic() - killed < 10
    finally:
        alive.close()
