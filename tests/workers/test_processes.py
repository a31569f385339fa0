"""Separate worker processes (one planner, two senders, one sweeper) over a shared broker:
every consented recipient gets exactly one mail, and SIGTERM drains and exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from postgate.settings import Settings
from tests.support import World
from tests.workers.fleet import worker_env

pytestmark = pytest.mark.skipif(
    os.environ.get("BROKER_URL", "memory://").startswith("memory"),
    reason="the in-process broker cannot cross processes; runs with BROKER_URL=redis/amqp",
)


def spawn(settings: Settings, *names: str, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "postgate", "worker", *names],
                            env=worker_env(settings, **({"BATCH_SIZE": "25"} | extra)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_many_worker_processes_send_each_recipient_once(world: World) -> None:
    for i in range(150):
        world.contact(f"p{i:03d}")
    world.contact("nocon", consent=None)
    settings = world.ctx.settings
    procs = [spawn(settings, "planner"), spawn(settings, "sender"), spawn(settings, "sender"),
             spawn(settings, "sweeper")]
    try:
        world.publish(world.message("multi"))
        deadline = time.monotonic() + 60
        while world.campaign_state("multi") != "finished" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert world.campaign_state("multi") == "finished"
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc in procs]
    assert codes == [0, 0, 0, 0], [p.stderr.read() for p in procs if p.stderr]
    counts = Counter(r.recipients[0] for r in world.sink.handler.received)
    assert len(counts) == 150 and set(counts.values()) == {1}
    states = Counter(r.state for r in world.deliveries("multi"))
    assert states == {"sent": 150, "blocked": 1}
