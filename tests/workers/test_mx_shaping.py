"""Traffic shaping in the whole pipeline (``EMAIL_PROVIDER=mx``): sends over the provider
group's pace wait as ``deferred`` rows with a due time and go out once each, and a
rule's action is in the audit log the operator page shows."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from postgate.core.clock import utcnow
from postgate.core.outcome import SendResult
from postgate.http.auth import create_key
from postgate.providers.mx import MxProvider
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.store import tables as t
from tests.dns_server import LocalDns
from tests.operator_page.test_sessions import login
from tests.providers.mx_servers import FROM, MESSAGE, MxServer, publish
from tests.providers.shaping_servers import shaping_file
from tests.providers.test_shaping import GOOGLE_HOSTS, RATE_LIMITED, REDIS, needs_redis
from tests.support import World, serve_api
from tests.workers.test_mx_pipeline import member


@pytest.fixture
def google(dns_server: LocalDns) -> Iterator[MxServer]:
    mx = MxServer()
    for domain, hosts in GOOGLE_HOSTS.items():
        publish(dns_server, domain, *((5 + 5 * i, h) for i, h in enumerate(hosts)))
    yield mx
    mx.stop()


def shaped(
    settings: Settings, dns: LocalDns, mx: MxServer, path: Path, **values: object
) -> Settings:
    ports = {h: mx.port for hosts in GOOGLE_HOSTS.values() for h in hosts}
    return settings.with_provider("mx", port_overrides=ports, timeout_s=5).model_copy(
        update={
            "email_provider": "mx",
            "dns_resolver": dns.address,
            "dns_timeout_s": 3,
            "shaping_file": str(path),
            **values,
        }
    )


def test_sends_over_the_groups_pace_are_deferred_with_a_due_time_and_go_once(
    world: World, settings: Settings, dns_server: LocalDns, google: MxServer, tmp_path: Path
) -> None:
    path = shaping_file(tmp_path, "connections = 2\nper_minute = 240", max_wait_s=0)
    # the usual backoff would retry in ten minutes: the rows come back on shaping's time
    world.ctx = Context.from_settings(
        shaped(settings, dns_server, google, path, retry_base_s=600, retry_max_s=600)
    )
    addresses = [f"m{i}@{d}" for i in range(3) for d in GOOGLE_HOSTS]
    for address in addresses:
        member(world, address)

    world.publish(world.message("paced"))
    world.run(world.finished("paced"), timeout=40)

    rows = world.deliveries("paced")
    assert {r.address: r.state for r in rows} == {a: "sent" for a in addresses}
    assert sorted(google.handler.recipients()) == sorted(addresses)  # each exactly once
    attempts = [r.attempts for r in rows]
    assert max(attempts) > 1  # deferred, then retried, without waiting ten minutes


def test_a_rules_action_is_audited_and_shown_on_the_operator_page(
    world: World, settings: Settings, dns_server: LocalDns, google: MxServer, tmp_path: Path
) -> None:
    path = shaping_file(tmp_path, "connections = 2\nper_minute = 1200")
    world.ctx = Context.from_settings(shaped(settings, dns_server, google, path))
    google.handler.script("first@gmail.com", RATE_LIMITED)  # once, then accepted
    for address in ["first@gmail.com", "second@corp.example"]:
        member(world, address)

    world.publish(world.message("audited"))
    world.run(world.finished("audited"), timeout=40)

    assert {r.address: r.state for r in world.deliveries("audited")} == {
        "first@gmail.com": "sent",
        "second@corp.example": "sent",
    }
    a = t.audit_log.c
    with world.ctx.engine.connect() as conn:
        entries = conn.execute(
            select(a.tenant_id, a.action, a.detail).where(a.actor == "shaping")
        ).all()
    mine = [e for e in entries if e.detail["tenant"] == world.tenant.slug]
    assert [(e.tenant_id, e.action) for e in mine] == [(None, "shaping_slow")]
    detail = mine[0].detail
    assert (detail["group"], detail["rule"], detail["factor"]) == (
        "google",
        "gmail-rate-limit",
        0.5,
    )
    assert detail["domain"] == "gmail.com" and detail["reply"].startswith("421 4.7.28")
    ops_key = create_key(world.ctx.engine, "operator", "ops")
    for base in serve_api(world.ctx.settings):
        with httpx.Client(base_url=base, timeout=10) as http:
            assert login(http, ops_key).status_code == 303
            panels = http.get("/operator/panels").text
    row = next(r for r in re.findall(r"<tr>(.*?)</tr>", panels, re.S) if "shaping_slow" in r)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
    assert "shaping shaping_slow provider group google rule gmail-rate-limit after 421 4.7.28" in (
        text
    )
    assert f"from gmail.com ({world.tenant.slug})" in text


@needs_redis
def test_the_operator_api_lists_the_automations_in_force_across_senders(
    world: World, settings: Settings, dns_server: LocalDns, google: MxServer, tmp_path: Path
) -> None:
    path = shaping_file(tmp_path, "connections = 2\nper_minute = 1200")
    settings = shaped(settings, dns_server, google, path, redis_url=REDIS)
    google.handler.script("first@gmail.com", RATE_LIMITED)
    provider = MxProvider(settings)  # a sender elsewhere, sharing the Redis state

    async def refused() -> SendResult:
        await provider.start()
        try:
            return await provider.send(FROM, "first@gmail.com", MESSAGE)
        finally:
            await provider.close()

    assert asyncio.run(refused()).code == 421
    ops = {"Authorization": f"Bearer {create_key(world.ctx.engine, 'operator', 'ops')}"}
    crm_key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    tenant = {"Authorization": f"Bearer {crm_key}"}
    for base in serve_api(settings):
        listed = httpx.get(f"{base}/v1/operator/shaping", headers=ops, timeout=10)
        forbidden = httpx.get(f"{base}/v1/operator/shaping", headers=tenant, timeout=10)

    assert forbidden.status_code == 403
    body = listed.json()
    assert body["shared"] is True
    assert body["groups"]["google"]["mx"] == ["*.google.com", "*.googlemail.com"]
    assert [
        (a["key"], a["group"], a["action"], a["rule"], a["factor"], a["tenant"])
        for a in body["actions"]
    ] == [("google", "google", "slow", "gmail-rate-limit", 0.5, None)]
    until = datetime.fromisoformat(body["actions"][0]["until"])
    assert timedelta(seconds=55) < until - utcnow() <= timedelta(seconds=60)
