"""Warm-up end to end: a domain verified over the api (records in a real DNS server)
starts on its ramp; a campaign larger than the day's cap sends exactly the cap and waits
as deferred rows; the next day a complaint holds the ramp (the same cap again), the day
after a clean day moves it on and the rest goes. The clock is injected; mail goes to the
real sink and the complaint arrives as ARF at the real feedback listener."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from postgate.consent.dry_run import dry_run
from postgate.core.clock import utcnow
from postgate.core.message import parse_campaign
from postgate.http.auth import create_key
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.workers.sweeper import sweep_once
from tests.operator_page.test_sessions import login
from tests.sms.test_send_window import Clock
from tests.support import World
from tests.workers.listening import deliver, listener
from tests.workers.test_crash import bulk_audience
from tests.workers.test_forged_feedback import arf, sent_mail
from tests.workers.test_preflight import dns_server, env

__all__ = ["dns_server", "env", "listener"]
AUDIENCE = 200


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.warmup_schedule = "60,120,240"
    settings.preflight_enforce = False  # its own tests; here only the ramp matters
    settings.canary_min_audience = 0
    return settings


def states(world: World, campaign: str) -> Counter[str]:
    return Counter(r.state for r in world.deliveries(campaign))


def sweep(world: World) -> dict[str, int]:
    broker = world.ctx.broker()
    try:
        return sweep_once(world.ctx.engine, broker, world.ctx.settings, world.ctx.clock())
    finally:
        broker.close()


def test_a_fresh_domain_sends_its_daily_cap_holds_on_a_complaint_and_moves_on(
    world: World, env: dict[str, Any], listener: int
) -> None:
    http, brand = env["http"], env["brand"]
    assert http.post(f"/v1/domains/{brand}/verify").json()["warmup"] == {
        "state": "warming",
        "stage": 0,
        "reason": "",
    }
    clock = Clock(utcnow())
    world.ctx = Context(world.ctx.settings, world.ctx.engine, clock=clock)
    bulk_audience(world, AUDIENCE - 1)  # and anna, whom the domain fixture added
    waiting = REGISTRY.get_sample_value("postgate_warmup_deferred_total", {"group": "all"}) or 0

    ramp = world.message("ramp", **{"from": {"email": f"news@{brand}"}})
    plan = dry_run(
        world.ctx.engine, parse_campaign(json.dumps(ramp), 10**6), 100, clock(), world.ctx.settings
    )["warmup"]
    assert (plan["stage"], plan["cap_per_group_today"], plan["days"]) == (0, 60, 2)
    assert plan["finished_by"] == (clock() + timedelta(days=2)).date().isoformat()

    # day 1: exactly the cap goes, the rest waits for the next UTC day
    world.publish(ramp)
    world.run(lambda: states(world, "ramp") == Counter(sent=60, deferred=140))
    assert len(world.sink.handler.received) == 60
    midnight = datetime.combine(clock().date() + timedelta(days=1), datetime.min.time(), UTC)
    d = t.delivery.c
    mine = (d.state == "deferred") & (d.tenant_id == world.tenant_id)
    with world.ctx.engine.connect() as conn:
        due = set(conn.scalars(select(d.next_attempt_at).where(mine)))
        reasons = set(conn.scalars(select(d.reason).where(mine)))
    assert {w.replace(tzinfo=UTC) if w.tzinfo is None else w for w in due} == {midnight}
    assert reasons == {"warmup_cap"}
    seen = REGISTRY.get_sample_value("postgate_warmup_deferred_total", {"group": "all"})
    assert (seen or 0) - waiting >= 140
    shown = http.get(f"/v1/domains/{brand}/warmup").json()
    assert (shown["cap_per_group_today"], shown["sent_today"]) == (60, {"all": 60})
    assert shown["resets_at"] == midnight.isoformat()
    ops = create_key(world.ctx.engine, "operator", "ops")
    with httpx.Client(base_url=str(http.base_url), timeout=10) as page:
        assert login(page, ops).status_code == 303
        panels = page.get("/operator/panels").text
    row = re.search(rf'<tr data-warming="{re.escape(brand)}">(.*?)</tr>', panels, re.S)
    assert row, panels
    cells = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row.group(1))).split())
    finish = (clock() + timedelta(days=2)).date().isoformat()  # 120 tomorrow, 240 after
    assert cells == f"{world.tenant.slug} {brand} warming 1/3 60 all 60 140 {finish}", cells

    # one recipient complains: the next day's review holds the ramp at its stage
    first = world.sink.handler.received[0].recipients[0]
    bounce = world.ctx.settings.bounce_domain
    assert deliver(listener, arf(sent_mail(world, first), bounce), f"fbl@{bounce}")[0] == 250
    clock.now = clock.now + timedelta(days=1, minutes=1)
    assert sweep(world)["warmup_reviewed"] >= 1  # other tests' domains may be due too
    held = http.get(f"/v1/domains/{brand}/warmup").json()
    assert (held["state"], held["stage"]) == ("held", 0), held
    assert held["reason"].startswith("held: complaint rate 1.67% over 0.10% on 60 sent")
    world.run(lambda: states(world, "ramp") == Counter(sent=120, deferred=80))
    assert len(world.sink.handler.received) == 120  # the same cap again, not the next stage

    # a clean day moves it on: stage 1's cap covers what is left
    clock.now = clock.now + timedelta(days=1)
    assert sweep(world)["warmup_reviewed"] >= 1  # other tests' domains may be due too
    moved = http.get(f"/v1/domains/{brand}/warmup").json()
    assert (moved["state"], moved["stage"], moved["cap_per_group_today"]) == ("warming", 1, 120)
    world.run(lambda: world.campaign_state("ramp") == "finished")
    assert states(world, "ramp") == Counter(sent=200)
    assert len(world.sink.handler.received) == 200
    assert len({r.recipients[0] for r in world.sink.handler.received}) == 200  # one copy each
    with world.ctx.engine.connect() as conn:
        audits = list(
            conn.scalars(
                select(t.audit_log.c.detail)
                .where(
                    t.audit_log.c.tenant_id == world.tenant_id,
                    t.audit_log.c.action == "warmup_reviewed",
                )
                .order_by(t.audit_log.c.id)
            )
        )
    assert [(a["stage"], a["state"]) for a in audits] == [(0, "held"), (1, "warming")]
