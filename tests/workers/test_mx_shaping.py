"""Traffic shaping in the whole pipeline (``EMAIL_PROVIDER=mx``): sends over the provider
group's pace wait as ``deferred`` rows with a due time and go out once each, and a
rule's action is in the audit log the operator page shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.store import tables as t
from tests.dns_server import LocalDns
from tests.providers.mx_servers import MxServer, publish
from tests.providers.shaping_servers import shaping_file
from tests.providers.test_shaping import GOOGLE_HOSTS, RATE_LIMITED
from tests.support import World
from tests.workers.test_mx_pipeline import member


@pytest.fixture
def dns_server() -> Iterator[LocalDns]:
    server = LocalDns()
    yield server
    server.close()


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


def test_a_rules_action_is_audited_for_the_operator_page(
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
