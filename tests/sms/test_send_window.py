"""SMS quiet hours end to end with an injected clock: a promotional campaign planned at
21:30 in Budapest (the evening before the clocks go forward) waits as deferred rows, the
sweeper leaves it alone at 07:59 and releases it at 08:00 CEST, when the local SMSC gets
it; transactional SMS go at once; a tenant's own window applies; the dry run counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from postgate.consent.dry_run import dry_run
from postgate.core.message import parse_campaign
from postgate.platform import provisioning as prov
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.sinks.smsc import SmscSink
from postgate.store import tables as t
from postgate.workers.sweeper import sweep_once
from tests.sms.world import phone_contact, rows, sms_message
from tests.support import World

BUD = ZoneInfo("Europe/Budapest")
HU = "+36301234567"


class Clock:
    """The time the workers read (in UTC, as ``utcnow`` gives it: SQLite compares text)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


def with_clock(world: World, settings: Settings, clock: Clock) -> None:
    real = settings.model_copy(update={"sms_send_window": "*=08:00-20:00"})
    world.ctx = Context(real, world.ctx.engine, clock=clock)


def next_attempts(world: World, campaign: str) -> list[datetime]:
    d, c = t.delivery.c, t.campaign.c
    with world.ctx.engine.connect() as conn:
        found = conn.scalars(
            select(d.next_attempt_at)
            .join(t.campaign, c.id == d.campaign_id)
            .where(c.tenant_id == world.tenant_id, c.external_id == campaign)
        ).all()
    return [w.replace(tzinfo=UTC) if w.tzinfo is None else w for w in found]


def state(world: World, campaign: str) -> list[str]:
    return [r.state for r in rows(world, campaign).values()]


def test_an_evening_campaign_waits_for_eight_in_the_morning(
    world: World, settings: Settings, smsc: SmscSink
) -> None:
    clock = Clock(datetime(2026, 3, 28, 21, 30, tzinfo=BUD))
    with_clock(world, settings, clock)
    phone_contact(world, "Anna", HU)
    promo = sms_message(world, "Tavaszi akcio", "evening")
    receipt = sms_message(world, "A rendelesed uton van", "receipt", kind="transactional")

    report = dry_run(
        world.ctx.engine, parse_campaign(json.dumps(promo), 10**6), 100, clock(), world.ctx.settings
    )
    opens = datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 08:00 CEST, the clocks went forward
    assert report["sms"]["waiting_for_window"] == {"count": 1, "until": opens.isoformat()}
    assert (
        "waiting_for_window"
        not in dry_run(
            world.ctx.engine,
            parse_campaign(json.dumps(receipt), 10**6),
            100,
            clock(),
            world.ctx.settings,
        )["sms"]
    )

    world.publish(promo)
    world.publish(receipt)
    world.run(
        lambda: state(world, "evening") == ["deferred"] and state(world, "receipt") == ["sent"]
    )
    assert next_attempts(world, "evening") == [opens]
    assert [m.text for m in smsc.state.to(HU)] == ["A rendelesed uton van"]  # only the receipt

    broker = world.ctx.broker()
    try:
        early = datetime(2026, 3, 29, 7, 59, tzinfo=BUD).astimezone(UTC)
        assert sweep_once(world.ctx.engine, broker, world.ctx.settings, early)["retried"] == 0
        clock.now = datetime(2026, 3, 29, 8, 0, tzinfo=BUD)
        assert sweep_once(world.ctx.engine, broker, world.ctx.settings, clock())["retried"] == 1
    finally:
        broker.close()
    world.run(lambda: state(world, "evening") == ["sent"])
    texts = [m.text for m in smsc.state.to(HU)]
    assert len(texts) == 2 and texts[1].startswith("Tavaszi akcio")


def test_a_tenant_window_of_its_own(world: World, settings: Settings, smsc: SmscSink) -> None:
    clock = Clock(datetime(2026, 10, 24, 21, 30, tzinfo=BUD))
    with_clock(world, settings, clock)
    phone_contact(world, "Bela", HU)
    patch = prov.TenantPatch(sms_send_window={"hu": "22:00-23:00"})
    shown: dict[str, Any] = prov.update_tenant(
        world.ctx.engine, world.tenant.slug, patch, "test", clock(), settings
    )
    assert shown["sms_send_window"] == {"HU": "22:00-23:00"}
    world.publish(sms_message(world, "Ejszakai akcio", "late"))
    world.run(lambda: state(world, "late") == ["deferred"])
    assert next_attempts(world, "late") == [datetime(2026, 10, 24, 22, 0, tzinfo=BUD)]
    assert smsc.state.to(HU) == []
    try:
        prov.TenantPatch(sms_send_window={"HU": "20:00-08:00"})
    except ValueError as exc:
        assert "start must come before the end" in str(exc)
    else:
        raise AssertionError("an overnight window was accepted")
