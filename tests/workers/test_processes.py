"""Separate worker processes (one planner, two senders, one sweeper) over a shared broker:
every consented recipient gets exactly one mail, and SIGTERM drains and exits cleanly."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from tests.support import World
from tests.workers.fleet import Fleet, wait_until

pytestmark = pytest.mark.skipif(
    os.environ.get("BROKER_URL", "memory://").startswith("memory"),
    reason="the in-process broker cannot cross processes; runs with BROKER_URL=redis/amqp",
)


def test_many_worker_processes_send_each_recipient_once(world: World, tmp_path: Path) -> None:
    for i in range(150):
        world.contact(f"p{i:03d}")
    world.contact("nocon", consent=None)
    fleet = Fleet(world.ctx.settings, tmp_path)
    for name in ("planner", "sender", "sender", "sweeper"):
        fleet.spawn(name, BATCH_SIZE="25")
    try:
        world.publish(world.message("multi"))
        assert wait_until(world.finished("multi"), 60)
    finally:
        codes = fleet.stop()
    assert set(codes.values()) == {0}, {k: fleet.tail(k) for k, v in codes.items() if v}
    counts = Counter(r.recipients[0] for r in world.sink.handler.received)
    assert len(counts) == 150 and set(counts.values()) == {1}
    states = Counter(r.state for r in world.deliveries("multi"))
    assert states == {"sent": 150, "blocked": 1}
