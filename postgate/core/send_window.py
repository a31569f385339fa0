"""A campaign's send window in each recipient's own local time ("deliver between 09:00
and 17:00 where the contact lives"), for email and SMS alike.

Pure (zoneinfo). A ``campaign.v1`` may carry ``send_window: {"hours": "09:00-17:00",
"zone": "Europe/Budapest"}``. A recipient's zone is the contact's ``time_zone``
attribute (an IANA name, checked when the contact is synced); else, for a phone number,
the zones the number belongs to (``core/sms/quiet_hours.zones_for``); else the window's
``zone``. A delivery outside the window waits, deferred, until the window next opens
there; DST is local-time arithmetic as for SMS quiet hours (09:00 is 09:00 on the day
the clocks move). Promotional SMS are held by their quiet hours as well: a send window
narrows them, it never widens them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from postgate.core.sms import quiet_hours
from postgate.core.sms.quiet_hours import Window, WindowError

ZONE_ATTRIBUTE = "time_zone"  # the contact attribute that names its IANA time zone


def known_zone(name: str) -> bool:
    """An IANA zone name the machine's tz database knows (``Europe/Budapest``)."""
    if not name or name != name.strip() or ("/" not in name and name != "UTC"):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_zone(name: str) -> str:
    """``name`` when it is a known zone; else :class:`WindowError` saying so."""
    if not known_zone(name):
        raise WindowError(f"time zone {name!r}: an IANA name such as Europe/Budapest")
    return name


@dataclass(frozen=True, slots=True)
class SendWindow:
    hours: Window
    zone: str  # for recipients whose own zone is unknown

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None) -> SendWindow | None:
        """From the stored ``{"hours": ..., "zone": ...}`` ({} or None: no window)."""
        if not spec:
            return None
        return cls(quiet_hours.window(str(spec["hours"])), check_zone(str(spec["zone"])))

    def as_json(self) -> dict[str, str]:
        return {"hours": str(self.hours), "zone": self.zone}

    def zones(self, attributes: Mapping[str, Any], phone: str | None = None) -> list[str]:
        """The recipient's zones: its own, its number's, or the window's."""
        own = attributes.get(ZONE_ATTRIBUTE)
        if isinstance(own, str) and known_zone(own):
            return [own]
        if phone:
            return quiet_hours.zones_for(phone, self.zone)[1]
        return [self.zone]

    def opens(
        self, now: datetime, attributes: Mapping[str, Any], phone: str | None = None
    ) -> datetime | None:
        """None when the recipient is inside the window at ``now`` (aware); else the UTC
        moment it next opens there."""
        return self.opens_in(now, self.zones(attributes, phone))

    def opens_in(self, now: datetime, zones: list[str]) -> datetime | None:
        """``opens`` for a recipient whose zones (``zones``) are known already."""
        return quiet_hours.next_opening(now, zones, self.hours)


__all__ = ["ZONE_ATTRIBUTE", "SendWindow", "WindowError", "check_zone", "known_zone"]
