"""When a promotional SMS may reach a phone: a daily window in the recipient's local time.

Pure (zoneinfo, phonenumbers). The window is per country, by ISO region code with ``*``
for every other (``"*=08:00-20:00,FR=10:00-20:00"``; 08:00–20:00 by default): a tenant's
windows (its profile) over the platform's (``SMS_SEND_WINDOW``). The recipient's zones
come from the number (``phonenumbers.timezone``); a number spanning several zones is sent
only when it is inside the window in all of them, and when no such moment exists (a
country across ten time zones) at the earliest moment inside it in the most of them.
DST changes are local-time arithmetic: 08:00 is 08:00 on the day the clocks move.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

_WINDOW = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)\s*$")
_REGION = re.compile(r"^(\*|[A-Z]{2})$")


class WindowError(ValueError):
    """A send window that cannot be read; the text names it."""


@dataclass(frozen=True, slots=True)
class Window:
    start: time
    end: time  # exclusive; time.max for "24:00"

    def __str__(self) -> str:
        end = "24:00" if self.end == time.max else self.end.strftime("%H:%M")
        return f"{self.start.strftime('%H:%M')}-{end}"

    def contains(self, local: time) -> bool:
        return self.start <= local < self.end


DEFAULT = Window(time(8, 0), time(20, 0))


def window(text: str) -> Window:
    """``HH:MM-HH:MM`` with start before end (``24:00`` ends at midnight)."""
    m = _WINDOW.match(text)
    if m is None:
        raise WindowError(f"send window {text!r}: write it as HH:MM-HH:MM, e.g. 08:00-20:00")
    sh, sm, eh, em = (int(g) for g in m.groups())
    if eh == 24 and em:
        raise WindowError(f"send window {text!r}: 24:00 is the latest end")
    start, end = time(sh, sm), (time.max if eh == 24 else time(eh, em))
    if not start < end:
        raise WindowError(f"send window {text!r}: the start must come before the end")
    return Window(start, end)


def windows(spec: str | Mapping[str, str]) -> dict[str, Window]:
    """``"*=08:00-20:00,HU=09:00-19:00"`` or ``{"*": "08:00-20:00", "HU": ...}``."""
    pairs: list[tuple[str, str]]
    if isinstance(spec, str):
        pairs = []
        for item in (p for p in spec.split(",") if p.strip()):
            region, sep, value = item.partition("=")
            if not sep:
                raise WindowError(f"send window {item.strip()!r}: write REGION=HH:MM-HH:MM")
            pairs.append((region, value))
    else:
        pairs = list(spec.items())
    out: dict[str, Window] = {}
    for region, value in pairs:
        code = region.strip().upper()
        if not _REGION.match(code):
            raise WindowError(f"send window region {region!r}: an ISO code such as HU, or *")
        out[code] = window(value)
    return out


def choose(region: str, tenant: Mapping[str, Window], platform: Mapping[str, Window]) -> Window:
    """The tenant's window for the country, else its ``*``, else the platform's."""
    for table in (tenant, platform):
        for key in (region, "*"):
            if key in table:
                return table[key]
    return DEFAULT


def zones_for(number: str, fallback: str) -> tuple[str, list[str]]:
    """(ISO region, time zones) of an E.164 number; ``fallback`` when it names none."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return "", [fallback]
    region = phonenumbers.region_code_for_number(parsed) or ""
    zones = [z for z in number_zones.time_zones_for_number(parsed) if _known(z)]
    return region, zones or [fallback]


def _known(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _inside(instant: datetime, zone: ZoneInfo, win: Window) -> bool:
    return win.contains(instant.astimezone(zone).time())


def next_opening(now: datetime, zones: Sequence[str], win: Window) -> datetime | None:
    """None when an SMS may go at ``now`` (aware); else the UTC moment it may go: the
    earliest within a day at which the most zones (all, where possible) are inside."""
    tzs = [ZoneInfo(z) for z in zones]
    candidates = [now]
    for tz in tzs:
        today = now.astimezone(tz).date()
        for days in range(-1, 3):
            local = datetime.combine(today + timedelta(days=days), win.start, tzinfo=tz)
            opening = local.astimezone(UTC)
            if now < opening <= now + timedelta(days=1):
                candidates.append(opening)
    candidates.sort()
    best, best_count = now, -1
    for moment in candidates:
        count = sum(_inside(moment, tz, win) for tz in tzs)
        if count > best_count:
            best, best_count = moment, count
        if count == len(tzs):
            break
    return None if best == now else best.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Hold:
    """A promotional SMS that must wait: until when, under which window, in which zones."""

    until: datetime
    window: Window
    zones: tuple[str, ...]
    region: str  # ISO code of the number, "" when it names none

    def __str__(self) -> str:
        return (
            f"send window {self.window} ({', '.join(self.zones)}): held until "
            f"{self.until.isoformat()}"
        )


def hold(
    number: str,
    now: datetime,
    tenant: Mapping[str, Window],
    platform: Mapping[str, Window],
    fallback_zone: str,
) -> Hold | None:
    """None when a promotional SMS to ``number`` may go at ``now``; else the hold."""
    region, zones = zones_for(number, fallback_zone)
    win = choose(region, tenant, platform)
    until = next_opening(now, zones, win)
    return None if until is None else Hold(until, win, tuple(zones), region)
