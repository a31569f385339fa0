"""Warm-up caps are per provider group: the MX provider names a recipient domain's group
by its MX hosts (the tests' DNS server), and each group takes its own day's turns."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from postgate.core.clock import utcnow
from postgate.providers.mx import MxProvider
from postgate.store import tables as t
from postgate.tenants import domains as domain_store
from postgate.tenants import warmup
from tests.dns_server import LocalDns
from tests.providers.mx_servers import publish
from tests.providers.shaping_servers import CountingMx, shaping_file
from tests.providers.test_shaping import GOOGLE_HOSTS, running, settings_for
from tests.support import World


def test_the_mx_provider_names_each_domains_group(dns: LocalDns, tmp_path: Path) -> None:
    mx = CountingMx()
    for domain, hosts in GOOGLE_HOSTS.items():
        publish(dns, domain, *((5 + 5 * i, h) for i, h in enumerate(hosts)))
    publish(dns, "shop.example", (10, "mx.shop.example"))
    provider = MxProvider(settings_for(dns, mx, shaping_file(tmp_path, "connections = 3")))

    async def work() -> list[str]:
        return [await provider.group_of(d) for d in [*GOOGLE_HOSTS, "shop.example", "nx.invalid"]]

    try:
        groups = asyncio.run(running([provider], work))
    finally:
        mx.stop()
    assert groups == ["google", "google", "google", "default", "default"]


def test_each_group_takes_its_own_days_turns_and_no_more(world: World) -> None:
    engine, now = world.ctx.engine, utcnow()
    row = domain_store.add(
        engine, world.tenant_id, f"w.{world.tenant.domain}", "ed25519-sha256", now
    )
    assert warmup.take(engine, row.id, "google", now, 7, 10) == 7
    assert warmup.take(engine, row.id, "google", now, 7, 10) == 3  # the day's last three
    assert warmup.take(engine, row.id, "google", now, 1, 10) == 0
    assert warmup.take(engine, row.id, "microsoft", now, 12, 10) == 10  # a group of its own
    tomorrow = now + timedelta(days=1)
    assert warmup.take(engine, row.id, "google", tomorrow, 4, 10) == 4  # a new day's cap


def test_an_operator_puts_a_domain_at_a_stage_or_calls_it_warm(world: World) -> None:
    engine, now = world.ctx.engine, utcnow()
    domain = f"s.{world.tenant.domain}"
    domain_store.add(engine, world.tenant_id, domain, "ed25519-sha256", now)
    warmup.set_stage(engine, world.tenant_id, domain, 3, "ops", now)
    with engine.connect() as conn:
        placed = warmup.status(conn, world.ctx.settings, world.tenant_id, domain, now)
    assert (placed["state"], placed["stage"], placed["reason"]) == (
        "warming",
        3,
        "set to stage 3 by ops",
    )
    warmup.set_stage(engine, world.tenant_id, domain, None, "ops", now)
    with engine.connect() as conn:
        warm = warmup.status(conn, world.ctx.settings, world.tenant_id, domain, now)
        audits = conn.execute(
            select(t.audit_log.c.detail)
            .where(t.audit_log.c.tenant_id == world.tenant_id, t.audit_log.c.action == "warmup_set")
            .order_by(t.audit_log.c.id)
        ).scalars()
        assert [a["stage"] for a in audits] == [3, None]
    assert (warm["state"], warm["reason"]) == ("done", "declared warm by ops")
    with pytest.raises(LookupError, match="not claimed by this tenant"):
        warmup.set_stage(engine, world.tenant_id, "other.example", 1, "ops", now)
