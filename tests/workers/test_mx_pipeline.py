"""A campaign end to end with ``EMAIL_PROVIDER=mx``: queue message -> planner -> sender ->
each recipient domain's own MX host (aiosmtpd servers found through the local DNS server).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlmodel import Session

from postgate.consent import records
from postgate.core.clock import utcnow
from postgate.providers.mx_dns import MxSettings
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.sinks.smtp import _free_port
from postgate.store import tables as t
from tests.dns_server import LocalDns
from tests.providers.mx_servers import MxServer, publish
from tests.support import World


@pytest.fixture
def north_south() -> Iterator[tuple[MxServer, MxServer]]:
    north, south = MxServer(), MxServer()
    yield north, south
    north.stop()
    south.stop()


def member(world: World, address: str) -> None:
    """A list member at any domain, with a fresh confirmed double opt-in consent."""
    when = utcnow() - timedelta(days=30)
    with Session(world.ctx.engine, expire_on_commit=False) as s:
        contact = records.add_contact(
            s, world.tenant_id, email=address, name="Reader", lists=[world.mlist]
        )
        records.add_consent(
            s, contact, "email", "news", "signup_form", "confirmed", when, confirmed_at=when
        )
        s.commit()


def test_a_campaign_reaches_each_domain_through_its_own_mx(
    world: World, settings: Settings, dns_server: LocalDns, north_south: tuple[MxServer, MxServer]
) -> None:
    north, south = north_south
    publish(dns_server, "north.example", (10, "mx.north.example"))
    publish(dns_server, "south.example", (10, "mx1.south.example"), (20, "mx2.south.example"))
    ports = {
        "mx.north.example": north.port,
        "mx2.south.example": south.port,
        "mx1.south.example": _free_port(),
    }  # refuses connections: the backup takes over
    settings = settings.with_provider("mx", port_overrides=ports, timeout_s=5).model_copy(
        update={"email_provider": "mx", "dns_resolver": dns_server.address, "dns_timeout_s": 3}
    )
    world.ctx = Context.from_settings(settings)
    norths = [f"n{i}@north.example" for i in range(3)]
    souths = [f"s{i}@south.example" for i in range(3)]
    for address in [*norths, *souths, "lost@gone.example"]:
        member(world, address)

    world.publish(world.message("direct"))
    world.run(world.finished("direct"))

    rows = {r.address: (r.state, r.reason, r.smtp_code) for r in world.deliveries("direct")}
    assert rows == {
        **{a: ("sent", None, 250) for a in [*norths, *souths]},
        "lost@gone.example": ("failed", "smtp_rejected", 550),
    }
    assert sorted(north.handler.recipients()) == norths
    assert sorted(south.handler.recipients()) == souths
    assert (
        north.handler.ehlos <= settings.provider(MxSettings).connections_per_domain
    )  # connections reused
    assert all(b"Subject: Hello Reader" in r.data for r in north.handler.received)
    with world.ctx.engine.connect() as conn:
        suppressed = conn.execute(
            select(t.suppression.c.address, t.suppression.c.reason).where(
                t.suppression.c.tenant_id == world.tenant_id
            )
        ).all()
    assert [tuple(r) for r in suppressed] == [("lost@gone.example", "hard_bounce")]
    assert (
        REGISTRY.get_sample_value(
            "postgate_messages_total",
            {"tenant": world.tenant.slug, "channel": "email", "provider": "mx", "outcome": "sent"},
        )
        == 6
    )
