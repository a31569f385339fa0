"""Warm-up of source IP addresses end to end with ``EMAIL_PROVIDER=mx``: the sender binds
each connection to an address of ``MX_SOURCES`` (loopback addresses of the test's own,
seen by the MX server as the client's address). A warming address sends exactly its day's
cap per provider group and a warm one the rest; transactional mail never waits; with
every address warming, what the caps leave waits as deferred rows for the next UTC day,
when the daily review (the figures of each address's own mail) has moved them on."""

from __future__ import annotations

import html
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from postgate.core.clock import utcnow
from postgate.http.auth import create_key
from postgate.platform import source_warmup
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.workers.sweeper import sweep_once
from tests.dns_server import LocalDns
from tests.operator_page.test_sessions import login
from tests.providers.mx_servers import MxServer, publish
from tests.sms.test_send_window import Clock
from tests.support import World, serve_api
from tests.test_cli_errors import one_line, postgate
from tests.workers.test_mx_pipeline import member


@pytest.fixture
def mx() -> Iterator[MxServer]:
    server = MxServer()
    yield server
    server.stop()


def addresses(n: int) -> list[str]:
    """Loopback addresses no other test uses (the source table is the platform's)."""
    a, b = random.randrange(1, 255), random.randrange(1, 255)
    return [f"127.{a}.{b}.{i + 2}" for i in range(n)]


def mx_world(
    world: World, settings: Settings, dns: LocalDns, mx: MxServer, sources: list[dict[str, Any]]
) -> Clock:
    publish(dns, "north.example", (10, "mx.north.example"))
    settings = settings.with_provider(
        "mx", port_overrides={"mx.north.example": mx.port}, timeout_s=5, sources=sources
    ).model_copy(
        update={
            "email_provider": "mx",
            "dns_resolver": dns.address,
            "dns_timeout_s": 3,
            "warmup_schedule": "5,10",
            "canary_min_audience": 0,
        }
    )
    clock = Clock(utcnow())
    world.ctx = Context(settings, Context.from_settings(settings).engine, clock=clock)
    return clock


def peers(mx: MxServer) -> Counter[str]:
    return Counter(m.peer for m in mx.handler.received for _ in m.recipients)


def from_source(world: World, campaign: str) -> Counter[str | None]:
    d, c = t.delivery.c, t.campaign.c
    with world.ctx.engine.connect() as conn:
        return Counter(
            conn.scalars(
                select(d.source_ip)
                .join(t.campaign, c.id == d.campaign_id)
                .where(c.tenant_id == world.tenant_id, c.external_id == campaign)
            )
        )


def test_a_warming_address_sends_its_cap_and_a_warm_one_the_rest(
    world: World, settings: Settings, dns_server: LocalDns, mx: MxServer
) -> None:
    new, old = addresses(2)
    mx_world(
        world,
        settings,
        dns_server,
        mx,
        [{"address": new, "warmup": True}, {"address": old}],
    )
    for i in range(12):
        member(world, f"n{i}@north.example")

    world.publish(world.message("ramp"))
    world.run(world.finished("ramp"))
    assert peers(mx) == Counter({new: 5, old: 7})  # seen by the server, not just recorded
    assert from_source(world, "ramp") == Counter({new: 5, old: 7})

    receipts = world.message("receipts", kind="transactional")
    world.publish(receipts)
    world.run(world.finished("receipts"))
    assert from_source(world, "receipts") == Counter({old: 12})  # never on the ramp's turns
    assert peers(mx) == Counter({new: 5, old: 19})

    with world.ctx.engine.connect() as conn:
        shown = {s["address"]: s for s in source_warmup.status(conn, world.ctx.settings, utcnow())}
    assert (shown[new]["state"], shown[new]["stage"], shown[new]["cap_per_group_today"]) == (
        "warming",
        0,
        5,
    )
    assert shown[new]["sent_today"] == {"default": 5}
    assert (shown[old]["state"], shown[old]["cap_per_group_today"]) == ("done", None)


def test_with_every_address_warming_the_rest_waits_for_the_next_day(
    world: World, settings: Settings, dns_server: LocalDns, mx: MxServer
) -> None:
    one, two = addresses(2)
    clock = mx_world(
        world,
        settings,
        dns_server,
        mx,
        [{"address": one, "warmup": True}, {"address": two, "warmup": True}],
    )
    for i in range(24):
        member(world, f"w{i}@north.example")
    mx.handler.script("w0@north.example", "550 5.1.1 no such user")

    world.publish(world.message("both"))
    world.run(lambda: Counter(r.state for r in world.deliveries("both"))["deferred"] == 14)
    rows = world.deliveries("both")
    states = Counter(r.state for r in rows)
    assert states["sent"] + states["failed"] == 10 and states["deferred"] == 14
    assert {r.reason for r in rows if r.state == "deferred"} == {"source_warmup_cap"}
    assert sum(peers(mx).values()) == states["sent"] and set(peers(mx)) <= {one, two}
    assert from_source(world, "both") == Counter({one: 5, two: 5, None: 14})
    midnight = datetime.combine(clock().date() + timedelta(days=1), datetime.min.time(), UTC)
    mine = (t.delivery.c.tenant_id == world.tenant_id) & (t.delivery.c.state == "deferred")
    with world.ctx.engine.connect() as conn:
        due = set(conn.scalars(select(t.delivery.c.next_attempt_at).where(mine)))
        figures = [
            source_warmup.measure(conn, a, clock() - timedelta(hours=1), clock())
            for a in (one, two)
        ]
    assert {w.replace(tzinfo=UTC) if w.tzinfo is None else w for w in due} == {midnight}
    assert [f.sent for f in figures] == [5, 5]  # each address's own mail
    assert sum(f.delivered for f in figures) == states["sent"]
    assert sum(f.hard_bounces for f in figures) == states["failed"]  # the 550, if it went

    ops = {"Authorization": f"Bearer {create_key(world.ctx.engine, 'operator', 'ops')}"}
    for base in serve_api(world.ctx.settings):
        with httpx.Client(base_url=base, timeout=10) as page:
            assert login(page, ops["Authorization"].removeprefix("Bearer ")).status_code == 303
            panels = page.get("/operator/panels").text
    for address in (one, two):
        row = re.search(rf'<tr data-source="{re.escape(address)}">(.*?)</tr>', panels, re.S)
        assert row, panels
        cells = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row.group(1))).split())
        assert cells == f"{address} warming 1/2 5 default 5 14", cells

    # the next day: both reviewed (too few mails to judge: moved on), caps of 10 each
    clock.now = clock.now + timedelta(days=1, minutes=1)
    broker = world.ctx.broker()
    try:
        swept = sweep_once(world.ctx.engine, broker, world.ctx.settings, clock())
    finally:
        broker.close()
    assert swept["source_warmup_reviewed"] >= 2  # other tests' addresses may be due too
    world.run(world.finished("both"))
    assert Counter(r.state for r in world.deliveries("both")) == Counter(sent=23, failed=1)
    got = [r for m in mx.handler.received for r in m.recipients]
    assert len(got) == len(set(got)) == 23  # one copy each
    assert set(peers(mx)) == {one, two}

    for base in serve_api(world.ctx.settings):
        listed = httpx.get(f"{base}/v1/operator/sources", headers=ops, timeout=10).json()
    mine = {s["address"]: s for s in listed["sources"] if s["address"] in (one, two)}
    assert {a: (s["state"], s["stage"]) for a, s in mine.items()} == {
        one: ("warming", 1),
        two: ("warming", 1),
    }


def test_an_operator_moves_an_address_on_its_ramp_from_the_command_line(
    tmp_path: Path, world: World
) -> None:
    new, old = addresses(2)
    source_warmup.enrol(world.ctx.engine, [(new, True), (old, False)], utcnow())
    env = {"DATABASE_URL": world.ctx.settings.database_url}

    moved = postgate(tmp_path, "sources", new, "--stage", "2", **env)
    assert moved.returncode == 0, moved.stderr
    shown = json.loads(moved.stdout)
    assert (shown["address"], shown["state"], shown["stage"]) == (new, "warming", 2)
    assert shown["reason"] == "set to stage 2 by cli"
    warm = json.loads(postgate(tmp_path, "sources", new, "--done", **env).stdout)
    assert (warm["state"], warm["stage"], warm["cap_per_group_today"]) == ("done", None, None)
    listed = [json.loads(line) for line in postgate(tmp_path, "sources", **env).stdout.splitlines()]
    assert {new, old} <= {row["address"] for row in listed}

    unknown = one_line(postgate(tmp_path, "sources", "192.0.2.99", "--stage", "1", **env))
    assert unknown == "error: no source address '192.0.2.99': senders enrol MX_SOURCES"
    with world.ctx.engine.connect() as conn:
        audits = conn.execute(
            select(t.audit_log.c.action, t.audit_log.c.detail)
            .where(t.audit_log.c.action == "source_warmup_set")
            .order_by(t.audit_log.c.id)
        ).all()
    assert [(a, d["stage"]) for a, d in audits if d["source"] == new] == [
        ("source_warmup_set", 2),
        ("source_warmup_set", None),
    ]
