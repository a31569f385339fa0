"""The smarthost misbehaving over a real socket, with the real planner, sender and sweeper:
bursts of 4xx, 5xx, a server slower than SMTP_TIMEOUT_S, and a server that goes away and
comes back (connection refused meanwhile). Nothing is lost; nothing is sent twice, except
that a transaction whose outcome was unknown (the server took the mail after we gave up)
may be repeated once, with the same Message-ID."""

from __future__ import annotations

import asyncio
import email
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from postgate.providers.smtp import SmtpSettings
from postgate.settings import Settings
from postgate.sinks.smtp import SinkHandler, SmtpSink
from postgate.store import tables as t
from tests.support import World


class FaultyHandler(SinkHandler):
    """A sink that can refuse the next N recipients whoever they are, or take ``slow_s``
    over the first DATA for given recipients."""

    def __init__(self) -> None:
        super().__init__()
        self.tempfail: list[str] = []  # replies for the next RCPTs, whatever the address
        self.slow_once: set[str] = set()  # their first DATA takes ``slow_s`` to answer
        self.slow_s = 0.0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            reply = self.tempfail.pop() if self.tempfail else None
        if reply is not None:
            return reply
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            slow = self.slow_once & set(envelope.rcpt_tos)
            self.slow_once -= slow
        reply = await super().handle_DATA(server, session, envelope)
        if slow:  # stored, but the reply comes after the client gave up: outcome unknown
            await asyncio.sleep(self.slow_s)
        return reply


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(handler=FaultyHandler()) as server:
        yield server


@pytest.fixture
def faulty(world: World) -> FaultyHandler:
    world.ctx.settings = world.ctx.settings.model_copy(update={"canary_min_audience": 0})
    handler = world.sink.handler
    assert isinstance(handler, FaultyHandler)
    return handler


def audience(world: World, n: int) -> list[str]:
    return [world.contact(f"f{i:03d}").email or "" for i in range(n)]


def received(handler: SinkHandler) -> Counter[str]:
    return Counter(a for r in handler.received for a in r.recipients)


def message_ids(handler: SinkHandler, address: str) -> set[str]:
    return {str(email.message_from_bytes(r.data)["Message-ID"]) for r in handler.to(address)}


def test_a_burst_of_4xx_defers_and_then_delivers_each_once(
    world: World, faulty: FaultyHandler
) -> None:
    addresses = audience(world, 60)
    faulty.tempfail = ["451 4.3.0 greylisted, try later"] * 90 + [
        "421 4.7.0 too many connections"
    ] * 10
    world.publish(world.message("burst"))
    world.run(world.finished("burst"), timeout=60)
    rows = world.deliveries("burst")
    assert Counter(r.state for r in rows) == {"sent": 60}
    assert sum(r.attempts for r in rows) == 60 + 100  # every refusal cost one more attempt
    assert not faulty.tempfail
    assert received(faulty) == Counter(addresses)  # each exactly once


def test_5xx_fails_without_retry_and_only_dead_addresses_are_suppressed(
    world: World, faulty: FaultyHandler
) -> None:
    addresses = audience(world, 30)
    dead, policy = addresses[:5], addresses[5:10]
    for address in dead:
        faulty.script(address, "550 5.1.1 user unknown")
    for address in policy:
        faulty.script(address, "554 5.7.1 message refused as spam")
    world.publish(world.message("hard"))
    world.run(world.finished("hard"), timeout=60)
    by_address = {r.address: r for r in world.deliveries("hard")}
    for address in dead + policy:
        assert (by_address[address].state, by_address[address].attempts) == ("failed", 1)
    assert {by_address[a].smtp_code for a in dead + policy} == {550, 554}
    assert received(faulty) == Counter(addresses[10:])
    s = t.suppression.c
    with world.ctx.engine.connect() as conn:
        suppressed = set(conn.scalars(select(s.address).where(s.tenant_id == world.tenant_id)))
    assert suppressed == set(dead)


def test_a_server_slower_than_the_timeout_is_retried_with_the_same_message_id(
    world: World, faulty: FaultyHandler
) -> None:
    world.ctx.settings = world.ctx.settings.with_provider("smtp", timeout_s=0.5)
    addresses = audience(world, 40)
    faulty.slow_once, faulty.slow_s = set(addresses[::7]), 1.5
    world.publish(world.message("slow"))
    world.run(world.finished("slow"), timeout=60)
    rows = world.deliveries("slow")
    assert Counter(r.state for r in rows) == {"sent": 40}
    assert sum(r.attempts > 1 for r in rows) == 6  # the timed-out ones went again
    counts = received(faulty)
    assert set(counts) == set(addresses)
    twice = [a for a, n in counts.items() if n > 1]
    assert len(twice) == 6 and max(counts.values()) == 2  # retried once, never more
    for address in twice:  # a repeat is recognisably the same message
        assert len(message_ids(faulty, address)) == 1


def test_a_server_that_goes_away_and_comes_back_loses_nothing(
    world: World, faulty: FaultyHandler, settings: Settings
) -> None:
    addresses = audience(world, 300)
    sink = world.sink
    outage: dict[str, float] = {}

    def outage_midway() -> None:
        deadline = time.monotonic() + 30
        while len(faulty.received) < 100 and time.monotonic() < deadline:
            time.sleep(0.005)
        sink.stop()  # connections drop; new ones are refused
        outage["at"] = len(faulty.received)
        time.sleep(1.5)
        sink.controller = type(sink.controller)(
            faulty, hostname="127.0.0.1", port=sink.port, decode_data=False
        )
        sink.start()

    thread = threading.Thread(target=outage_midway)
    thread.start()
    world.publish(world.message("outage"))
    try:
        world.run(world.finished("outage"), timeout=90)
    finally:
        thread.join()
    assert 100 <= outage["at"] < 300, outage  # it really went down in the middle
    rows = world.deliveries("outage")
    assert Counter(r.state for r in rows) == {"sent": 300}
    assert any(r.attempts > 1 for r in rows)
    counts = received(faulty)
    assert set(counts) == set(addresses)
    twice = [a for a, n in counts.items() if n > 1]
    assert (
        len(twice) <= settings.provider(SmtpSettings).connections
    )  # at most the transactions cut mid-DATA
    for address in twice:
        assert len(message_ids(faulty, address)) == 1
    print(
        f"\nsmarthost outage after {outage['at']} mails: {len(twice)} sent twice, "
        f"{sum(r.attempts > 1 for r in rows)} retried"
    )
