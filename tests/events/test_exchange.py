"""The event exchange: a CRM binds its own queue to ``<prefix>.events`` and consumes
event.v1 with a real kombu consumer, on Redis and on RabbitMQ."""

from __future__ import annotations

import json
import socket
import time
import uuid
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from sqlalchemy import func, select

from postgate.runtime.context import Context
from postgate.store import tables as t
from tests.events.test_stream import all_events, key, run_events
from tests.support import World

BROKERS = {
    "redis": ("redis://127.0.0.1:6379/3", 6379),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}


def reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def drain(conn: Connection, queue: Queue, want: int, timeout: float = 15) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    bound = queue(conn.channel())
    while len(got) < want and time.monotonic() < deadline:
        message = bound.get(no_ack=False)
        if message is None:
            time.sleep(0.05)
            continue
        got.append((message.delivery_info.get("routing_key"), json.loads(message.body)))
        message.ack()
    return got


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_a_crm_queue_bound_to_the_exchange_gets_the_tenants_events(
    world: World, api: str, ctx: Context, broker: str
) -> None:
    url, port = BROKERS[broker]
    if not reachable(port):
        pytest.skip(f"{broker} is not running on 127.0.0.1:{port}")
    relay = Context(ctx.settings.model_copy(update={"broker_url": url}), ctx.engine)
    # what earlier tenants left in the stream goes out before the CRM binds its queues: the
    # pattern queue below is for every tenant's bounces
    run_events(relay, lambda: _published(relay), timeout=120)
    exchange = Exchange(f"{ctx.settings.queue_prefix}.events", type="topic", durable=True)
    slug = world.tenant.slug
    mine = Queue(f"crm-{uuid.uuid4().hex[:8]}", exchange, routing_key=f"{slug}.#", durable=False)
    bounces = Queue(
        f"crm-{uuid.uuid4().hex[:8]}", exchange, routing_key="*.feedback.bounce", durable=False
    )
    with Connection(url) as conn:
        channel = conn.channel()
        exchange(channel).declare()
        mine(channel).declare()
        bounces(channel).declare()
        bad = f"zed@{world.tenant.domain}"
        world.sink.handler.script(bad, "550 5.1.1 no such user")
        for name in ("yan", "zed"):
            world.contact(name)
        world.publish(world.message("bound"))
        world.run(world.finished("bound"))
        expected = all_events(api, key(world))
        assert len(expected) == 3  # sent, failed, bounce
        run_events(relay, lambda: _published(relay), timeout=120)
        got = drain(conn, mine, len(expected))
        assert [body["id"] for _, body in got] == [ev["id"] for ev in expected]
        assert [rk for rk, _ in got] == [f"{slug}.{ev['type']}" for ev in expected]
        only = drain(conn, bounces, 1)
        assert [(rk, body["recipient"]) for rk, body in only] == [(f"{slug}.feedback.bounce", bad)]
        assert drain(conn, bounces, 1, timeout=0.5) == []
        mine(channel).delete()
        bounces(channel).delete()


def _published(ctx: Context) -> bool:
    with ctx.engine.connect() as conn:
        left = conn.scalar(
            select(func.count()).where(
                t.event_outbox.c.published_at.is_(None) | t.event_outbox.c.seq.is_(None)
            )
        )
    return left == 0


def test_the_client_consumes_events_from_its_own_queue(world: World, ctx: Context) -> None:
    url, port = BROKERS["redis"]
    if not reachable(port):
        pytest.skip("redis is not running on 127.0.0.1:6379")
    from postgate.client import QueueClient

    queue = f"crm-{uuid.uuid4().hex[:8]}"
    relay = Context(ctx.settings.model_copy(update={"broker_url": url}), ctx.engine)
    with QueueClient(url, ctx.settings.queue_prefix) as crm:
        assert list(crm.consume_events(queue, f"{world.tenant.slug}.#", limit=0)) == []
        world.contact("uma")
        world.publish(world.message("client"))
        world.run(world.finished("client"))
        run_events(relay, lambda: _published(relay), timeout=120)
        got = list(crm.consume_events(queue, f"{world.tenant.slug}.#", wait_s=2))
        assert [(ev["type"], ev["recipient"]) for ev in got] == [
            ("delivery.sent", f"uma@{world.tenant.domain}")
        ]
        assert list(crm.consume_events(queue, f"{world.tenant.slug}.#", wait_s=0.3)) == []
        with Connection(url) as conn:
            Queue(queue, exchange=Exchange(f"{ctx.settings.queue_prefix}.events"))(
                conn.channel()
            ).delete()
