"""A campaign's send window in each recipient's local time, end to end with an injected
clock: at 16:30 UTC a 09:00-17:00 campaign reaches the New York contact at once, while the
Tokyo contact (01:30 there) and the one without a zone (17:30 in the window's Budapest)
wait as deferred rows until their own 09:00; the dry run counts them by zone; then each
goes when its morning comes, one copy each. Bad windows and zones are refused."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from postgate.consent.dry_run import dry_run
from postgate.core.contacts_message import parse_contacts
from postgate.core.message import MessageError, parse_campaign
from postgate.core.send_window import SendWindow
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.store import tables as t
from tests.sms.test_send_window import Clock
from tests.support import World

WINDOW = {"hours": "09:00-17:00", "zone": "Europe/Budapest"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.canary_min_audience = 0
    return settings


def zoned(world: World, local: str, zone: str | None) -> str:
    contact = world.contact(local)
    if zone is not None:
        with world.ctx.engine.begin() as conn:
            conn.execute(
                update(t.contact)
                .where(t.contact.c.id == contact.id)
                .values(attributes={"time_zone": zone})
            )
    return str(contact.email)


def due(world: World, campaign: str) -> dict[str, tuple[str, str, datetime | None]]:
    d, c = t.delivery.c, t.campaign.c
    with world.ctx.engine.connect() as conn:
        found = conn.execute(
            select(d.address, d.state, d.reason, d.next_attempt_at)
            .join(t.campaign, c.id == d.campaign_id)
            .where(c.tenant_id == world.tenant_id, c.external_id == campaign)
        ).all()
    return {
        a: (s, r, w.replace(tzinfo=UTC) if w is not None and w.tzinfo is None else w)
        for a, s, r, w in found
    }


def held(world: World) -> float:
    labels = {"tenant": world.tenant.slug, "channel": "email"}
    return REGISTRY.get_sample_value("postgate_send_window_held_total", labels) or 0


def test_each_recipient_gets_the_campaign_within_its_own_local_hours(world: World) -> None:
    clock = Clock(datetime(2026, 12, 3, 16, 30, tzinfo=UTC))
    world.ctx = Context(world.ctx.settings, world.ctx.engine, clock=clock)
    york = zoned(world, "anna", "America/New_York")  # 11:30 there
    tokyo = zoned(world, "kenji", "Asia/Tokyo")  # 01:30 there
    budapest = zoned(world, "bela", None)  # 17:30 in the window's zone
    msg = world.message("local", send_window=WINDOW)

    report = dry_run(
        world.ctx.engine, parse_campaign(json.dumps(msg), 10**6), 100, clock(), world.ctx.settings
    )["send_window"]
    assert report == WINDOW | {
        "waiting_now": 2,
        "by_zone": {"Asia/Tokyo": 1, "Europe/Budapest": 1},
        "last_opens_at": "2026-12-04T08:00:00+00:00",  # 09:00 CET
    }

    before = held(world)
    world.publish(msg)
    world.run(lambda: Counter(s for s, _, _ in due(world, "local").values()).get("sent") == 1)
    rows = due(world, "local")
    assert rows[york][0] == "sent"
    assert rows[tokyo] == ("deferred", "send_window", datetime(2026, 12, 4, 0, 0, tzinfo=UTC))
    assert rows[budapest] == ("deferred", "send_window", datetime(2026, 12, 4, 8, 0, tzinfo=UTC))
    assert [m.recipients for m in world.sink.handler.received] == [[york]]
    assert held(world) - before == 2

    clock.now = datetime(2026, 12, 4, 0, 0, 30, tzinfo=UTC)  # 09:00 in Tokyo, 01:00 here
    world.run(lambda: due(world, "local")[tokyo][0] == "sent")
    assert due(world, "local")[budapest][0] == "deferred"
    clock.now = datetime(2026, 12, 4, 8, 0, 30, tzinfo=UTC)  # 09:00 in Budapest
    world.run(world.finished("local"))
    got = [r for m in world.sink.handler.received for r in m.recipients]
    assert sorted(got) == sorted([york, tokyo, budapest])  # one copy each
    assert held(world) - before == 2  # released rows were not held again


def test_a_campaign_without_a_window_goes_at_any_hour(world: World) -> None:
    clock = Clock(datetime(2026, 12, 3, 2, 0, tzinfo=UTC))  # 03:00 in Budapest
    world.ctx = Context(world.ctx.settings, world.ctx.engine, clock=clock)
    night = zoned(world, "owl", "Europe/Budapest")
    world.publish(world.message("night"))
    world.run(world.finished("night"))
    assert [m.recipients for m in world.sink.handler.received] == [[night]]


def test_the_window_follows_the_recipients_clock_across_a_dst_change() -> None:
    window = SendWindow.parse(WINDOW)
    assert window is not None
    york = {"time_zone": "America/New_York"}
    saturday_evening = datetime(2026, 10, 31, 22, 0, tzinfo=UTC)  # 18:00 EDT
    # the clocks go back at 02:00 on Sunday 1 November: 09:00 EST is 14:00 UTC, not 13:00
    assert window.opens(saturday_evening, york) == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    assert window.opens(datetime(2026, 11, 2, 14, 0, tzinfo=UTC), york) is None
    # no zone of its own: a phone number's, else the window's
    assert window.zones({}, "+81312345678") == ["Asia/Tokyo"]
    assert window.zones({"time_zone": "Nowhere/Land"}) == ["Europe/Budapest"]
    local = window.opens(datetime(2026, 12, 3, 20, 0, tzinfo=UTC), {})
    assert local is not None and local.astimezone(ZoneInfo("Europe/Budapest")).hour == 9


@pytest.mark.parametrize(
    ("send_window", "why"),
    [
        ({"hours": "17:00-09:00"}, "the start must come before the end"),
        ({"hours": "9 to 5"}, "write it as HH:MM-HH:MM"),
        ({"hours": "09:00-17:00", "zone": "Mars/Olympus"}, "an IANA name"),
        ({"hours": "09:00-17:00", "zone": "../../etc/localtime"}, "an IANA name"),
        ({"hours": "09:00-17:00", "zone": "Europe/Budapest\x00"}, "an IANA name"),
        ({"hours": "09:00-17:00", "days": "mon-fri"}, "Extra inputs are not permitted"),
    ],
)
def test_an_unreadable_send_window_is_refused_with_the_reason(
    world: World, send_window: dict[str, str], why: str
) -> None:
    with pytest.raises(MessageError, match=why):
        parse_campaign(json.dumps(world.message(send_window=send_window)), 10**6)


def test_a_contact_time_zone_must_be_a_real_zone() -> None:
    doc = {"version": "contacts.v1", "tenant": "acme", "contacts": []}
    person = {"external_id": "c1", "email": "a@example.com"}
    good = doc | {"contacts": [person | {"attributes": {"time_zone": "Europe/Budapest"}}]}
    assert parse_contacts(json.dumps(good), 10**6).contacts[0].attributes == {
        "time_zone": "Europe/Budapest"
    }
    bad = doc | {"contacts": [person | {"attributes": {"time_zone": "CET+1"}}]}
    with pytest.raises(MessageError, match=r"time_zone.*IANA zone"):
        parse_contacts(json.dumps(bad), 10**6)
