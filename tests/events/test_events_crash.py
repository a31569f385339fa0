"""kill -9 of the events worker while it posts and publishes: after a restart the CRM
has every event (on its webhook and on its queue), in order per post, each repeat
carrying the same id, and repeats bounded by what was in flight."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import httpx
from kombu import Connection, Exchange, Queue

from postgate.settings import Settings
from tests.events.receiver import Receiver
from tests.events.test_exchange import BROKERS, reachable
from tests.events.test_stream import all_events, key
from tests.support import World
from tests.workers.fleet import wait_until, worker_env
from tests.workers.test_crash import bulk_audience

RECIPIENTS, BATCH, KILLS = 1000, 20, 3


def events_worker(settings: Settings, broker: str) -> subprocess.Popen[bytes]:
    env = worker_env(
        settings,
        BROKER_URL=broker,
        WEBHOOK_ALLOW_NETWORKS="127.0.0.1/32",
        WEBHOOK_BATCH=str(BATCH),
        WEBHOOK_TIMEOUT_S="1",
        WEBHOOK_BACKOFF_S="0.05",
        EVENTS_POLL_S="0.05",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "postgate", "worker", "events"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_9_of_the_events_worker_loses_no_event(
    world: World, api: str, receiver: Receiver
) -> None:
    headers = key(world)
    made = httpx.post(f"{api}/v1/event-endpoints", json={"url": receiver.url}, headers=headers)
    assert made.status_code == 201
    bulk_audience(world, RECIPIENTS)
    world.ctx.settings.canary_min_audience = 0
    world.publish(world.message("crash"))
    world.run(world.finished("crash"), timeout=120)
    expected = all_events(api, headers, limit=1000)
    assert len(expected) == RECIPIENTS

    url, port = BROKERS["redis"]
    exchange_checked = reachable(port)
    broker = url if exchange_checked else "memory://"
    queue = Queue(
        f"crm-{uuid.uuid4().hex[:8]}",
        Exchange(f"{world.ctx.settings.queue_prefix}.events", type="topic", durable=True),
        routing_key=f"{world.tenant.slug}.#",
    )
    crm = Connection(broker)
    if exchange_checked:
        queue(crm.channel()).declare()

    receiver.delay_s = 0.03  # a CRM that takes its time: kills land mid-post
    proc = events_worker(world.ctx.settings, broker)
    try:
        for kill in range(KILLS):
            target = (kill + 1) * len(expected) // (KILLS + 2)
            assert wait_until(lambda t=target: len(receiver.events()) >= t, 60, every=0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = events_worker(world.ctx.settings, broker)
        assert wait_until(lambda: receiver.ids() == {ev["id"] for ev in expected}, 120)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    posted = receiver.events()
    repeats = sum(n - 1 for n in Counter(ev["id"] for ev in posted).values())
    assert repeats <= KILLS * BATCH  # at most the post in flight at each kill
    for post in receiver.posts:
        seqs = [ev["seq"] for ev in post.events]
        assert seqs == sorted(seqs)
    first_seen = list(dict.fromkeys(ev["seq"] for ev in posted))
    assert first_seen == sorted(first_seen)  # the stream's order, repeats aside
    assert all(post.signed_by(made.json()["secret"]) for post in receiver.posts)

    if exchange_checked:
        got: list[str] = []
        bound = queue(crm.channel())
        deadline = time.monotonic() + 30
        while len(set(got)) < len(expected) and time.monotonic() < deadline:
            message = bound.get(no_ack=True)
            if message is None:
                time.sleep(0.02)
                continue
            got.append(message.properties.get("message_id") or message.headers["event_id"])
        assert set(got) == {ev["id"] for ev in expected}
        bound.delete()
    crm.release()
