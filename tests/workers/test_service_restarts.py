"""Redis, PostgreSQL and RabbitMQ restarted under a campaign that is sending, with real worker
processes (planner + sweeper, two senders): the workers reconnect, the campaign finishes,
every recipient ends in exactly one terminal state, none is lost, and duplicate SMTP
transactions stay within what the senders held in flight.

The restarted servers are throwaway instances of this test (``tests/local_services.py``),
never the shared ones. Redis runs without persistence: its restart also empties the
queues, so batches in the broker are gone and the sweeper must republish them."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.sinks.smtp import SmtpSink
from postgate.store import tables as t
from postgate.store.db import migrate
from tests.local_services import LocalPostgres, LocalRabbit, LocalRedis
from tests.support import World
from tests.workers.fleet import BATCH, PREFETCH, Fleet, wait_until
from tests.workers.switching import bulk_audience

N = 3000
SENDERS = 2


@pytest.fixture
def own_redis() -> Iterator[LocalRedis]:
    server = LocalRedis()
    if not server.available:
        pytest.skip("redis-server is not installed")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def own_postgres() -> Iterator[LocalPostgres]:
    server = LocalPostgres()
    if not server.available:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def own_rabbit() -> Iterator[LocalRabbit]:
    server = LocalRabbit()
    if not server.available:
        pytest.skip("rabbitmq-server is not installed")
    try:
        server.start()
        yield server
    finally:
        server.close()


def own_world(
    settings: Settings, sink: SmtpSink, redis: LocalRedis, postgres: LocalPostgres
) -> World:
    """A tenant in a fresh database of our own PostgreSQL, with our own Redis."""
    url = postgres.create_database(f"restart_{uuid.uuid4().hex[:8]}")
    migrate(url)
    ours = settings.model_copy(
        update={"database_url": url, "broker_url": redis.url(0), "redis_url": redis.url(1)}
    )
    return World.create(Context.from_settings(ours), sink)


def campaign_under(world: World, tmp_path: Path, fault: Callable[[], None]) -> dict[str, int]:
    """Send an N-recipient campaign through real worker processes; call ``fault`` once a
    quarter of it is out; return what happened."""
    bulk_audience(world, N)
    handler = world.sink.handler
    fleet = Fleet(world.ctx.settings, tmp_path)
    fleet.spawn("planner", "sweeper")
    for _ in range(SENDERS):
        fleet.spawn("sender")
    try:
        world.publish(world.message("restart"))
        wait_until(lambda: len(handler.received) >= N // 4, 90, every=0.01)
        mid_send = world.campaign_state("restart") == "sending" and len(handler.received) < N
        fault()
        wait_until(world.finished("restart"), 120)
        died = fleet.dead()
    finally:
        codes = fleet.stop()
    assert not died, f"workers died across the restart: {died}"
    assert set(codes.values()) == {0}, {k: fleet.tail(k) for k, v in codes.items() if v}
    assert mid_send, "the fault did not hit a campaign that was sending"
    assert world.campaign_state("restart") == "finished"
    d = t.delivery.c
    with world.ctx.engine.connect() as conn:
        states = dict(
            conn.execute(
                select(d.state, func.count())
                .where(d.tenant_id == world.tenant_id)
                .group_by(d.state)
            ).all()
        )
    assert states == {"sent": N}, states
    received = Counter(a for r in handler.received for a in r.recipients)
    assert len(received) == N  # nobody lost
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= SENDERS * PREFETCH * BATCH, duplicates
    return {"duplicates": duplicates, "transactions": len(handler.received)}


def test_redis_restart_mid_campaign_loses_nothing(
    settings: Settings, sink: SmtpSink, own_redis: LocalRedis, tmp_path: Path
) -> None:
    """Redis is broker and pub/sub here; the database is the suite's (SQLite or PostgreSQL)."""
    ours = settings.model_copy(
        update={"broker_url": own_redis.url(0), "redis_url": own_redis.url(1)}
    )
    world = World.create(Context.from_settings(ours), sink)
    outcome = campaign_under(world, tmp_path, own_redis.restart)
    print(f"\nredis restarted mid-campaign: {outcome}")


def test_postgres_restart_mid_campaign_loses_nothing(
    settings: Settings,
    sink: SmtpSink,
    own_redis: LocalRedis,
    own_postgres: LocalPostgres,
    tmp_path: Path,
) -> None:
    world = own_world(settings, sink, own_redis, own_postgres)
    ctx = world.ctx
    try:
        outcome = campaign_under(world, tmp_path, own_postgres.restart)
    finally:
        ctx.engine.dispose()
    print(f"\npostgresql restarted mid-campaign: {outcome}")


def test_rabbitmq_restart_mid_campaign_loses_nothing(
    settings: Settings,
    sink: SmtpSink,
    own_redis: LocalRedis,
    own_rabbit: LocalRabbit,
    tmp_path: Path,
) -> None:
    """RabbitMQ is the broker (Redis only pub/sub): every AMQP connection drops at once."""
    ours = settings.model_copy(
        update={"broker_url": own_rabbit.url(), "redis_url": own_redis.url(1)}
    )
    world = World.create(Context.from_settings(ours), sink)
    outcome = campaign_under(world, tmp_path, own_rabbit.restart)
    print(f"\nrabbitmq restarted mid-campaign: {outcome}")


def test_workers_started_while_postgres_is_down_wait_for_it(
    settings: Settings,
    sink: SmtpSink,
    own_redis: LocalRedis,
    own_postgres: LocalPostgres,
    tmp_path: Path,
) -> None:
    """A sender (and a planner) started during a database outage waits for it instead of
    exiting, then sends as usual."""
    world = own_world(settings, sink, own_redis, own_postgres)
    ctx = world.ctx
    bulk_audience(world, 200)
    fleet = Fleet(ctx.settings, tmp_path)
    try:
        own_postgres.stop()
        fleet.spawn("sender")
        fleet.spawn("planner", "sweeper")
        time.sleep(4)
        assert fleet.dead() == {}, fleet.dead()  # alive, waiting
        own_postgres.start()
        world.publish(world.message("late"))
        assert wait_until(world.finished("late"), 90), fleet.dead()
    finally:
        codes = fleet.stop()
        ctx.engine.dispose()
    assert set(codes.values()) == {0}, {k: fleet.tail(k) for k, v in codes.items() if v}
    assert len(world.sink.handler.received) >= 200
