"""The SMS send window arithmetic (core/sms/quiet_hours.py): local time from the number,
DST changes in Europe/Budapest, several zones, and how windows are written."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from postgate.core.sms import quiet_hours as qh

BUD = ZoneInfo("Europe/Budapest")
WIN = qh.DEFAULT


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BUD)


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        # the night before the spring change (CET, +1): 08:00 CEST is 06:00 UTC
        (local(2026, 3, 28, 21, 30), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        # the night before the autumn change (CEST, +2): 08:00 CET is 07:00 UTC
        (local(2026, 10, 24, 21, 30), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        # on the change days themselves, early morning
        (local(2026, 3, 29, 3, 30), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        (local(2026, 10, 25, 2, 30), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        (local(2026, 12, 2, 7, 59), datetime(2026, 12, 2, 7, 0, tzinfo=UTC)),
        (local(2026, 12, 2, 20, 0), datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
    ],
)
def test_outside_the_window_waits_for_eight_local(now: datetime, opens: datetime) -> None:
    assert qh.next_opening(now, ["Europe/Budapest"], WIN) == opens
    assert opens.astimezone(BUD).time() == time(8, 0)


@pytest.mark.parametrize(
    "now", [local(2026, 3, 29, 8, 0), local(2026, 10, 25, 19, 59), local(2026, 12, 2, 12, 0)]
)
def test_inside_the_window_goes_now(now: datetime) -> None:
    assert qh.next_opening(now, ["Europe/Budapest"], WIN) is None


def test_several_zones_wait_for_the_latest_morning_and_the_earliest_evening() -> None:
    zones = ["Europe/London", "Europe/Budapest"]
    london = ZoneInfo("Europe/London")
    # 08:30 in Budapest is 07:30 in London: wait for London's 08:00
    assert qh.next_opening(datetime(2026, 12, 2, 7, 30, tzinfo=london), zones, WIN) == (
        datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    )
    # 19:30 in London is 20:30 in Budapest: the next morning, once both are past 08:00
    assert qh.next_opening(datetime(2026, 12, 2, 19, 30, tzinfo=london), zones, WIN) == (
        datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    )
    assert qh.next_opening(datetime(2026, 12, 2, 12, 0, tzinfo=london), zones, WIN) is None


def test_zones_with_no_common_window_go_when_the_most_are_inside() -> None:
    region, zones = qh.zones_for("+79161234567", "Europe/Budapest")
    assert region == "RU" and len(zones) > 10  # Bucharest's +2 to Anadyr's +12
    now = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    opens = qh.next_opening(now, zones, WIN)
    assert opens == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # 08:00 in the westernmost
    assert all(WIN.contains(opens.astimezone(ZoneInfo(z)).time()) for z in zones)
    # two hours each, nine hours apart: never both; the earliest moment one of them is in
    narrow = qh.window("10:00-12:00")
    apart = ["Europe/London", "Asia/Tokyo"]
    opens = qh.next_opening(now, apart, narrow)
    assert opens == datetime(2026, 12, 2, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
    assert qh.next_opening(opens, apart, narrow) is None  # and at that moment it goes


def test_zones_come_from_the_number_with_a_fallback() -> None:
    assert qh.zones_for("+36301234567", "UTC") == ("HU", ["Europe/Budapest"])
    assert qh.zones_for("+12125551234", "UTC") == ("US", ["America/New_York"])
    assert qh.zones_for("+15551234567", "Europe/Budapest")[1] == ["Europe/Budapest"]
    assert qh.zones_for("not a number", "UTC") == ("", ["UTC"])


def test_windows_are_read_per_country_tenant_first() -> None:
    platform = qh.windows("*=08:00-20:00, FR=10:00-20:00")
    tenant = qh.windows({"hu": "09:00-19:30"})
    assert str(qh.choose("HU", tenant, platform)) == "09:00-19:30"
    assert str(qh.choose("FR", tenant, platform)) == "10:00-20:00"
    assert str(qh.choose("DE", tenant, platform)) == "08:00-20:00"
    assert str(qh.choose("DE", {}, {})) == "08:00-20:00"
    assert str(qh.window("00:00-24:00")) == "00:00-24:00"
    for bad, why in [
        ("8-20", "HH:MM-HH:MM"),
        ("20:00-08:00", "before the end"),
        ("09:00-24:30", "24:00"),
    ]:
        with pytest.raises(qh.WindowError, match=why):
            qh.window(bad)
    with pytest.raises(qh.WindowError, match="ISO code"):
        qh.windows({"Hungary": "08:00-20:00"})
    with pytest.raises(qh.WindowError, match="REGION="):
        qh.windows("08:00-20:00")
