"""Before sending: how many recipients a ``campaign.v1`` message would reach, and how many
the gate would block, per reason; for promotional SMS also how many would wait for their
send window if sent now; with a campaign send window, how many recipients are outside it
now (by zone); for promotional email From a warming domain, its ramp and when the campaign
will have gone. Reads only; writes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from postgate.consent import audience
from postgate.core import warmup
from postgate.core.gate import GateCampaign, gate
from postgate.core.message import CampaignV1, MessageError, SmsOptions
from postgate.core.send_window import SendWindow
from postgate.core.sms import quiet_hours
from postgate.core.sms.routing import parse_routes
from postgate.core.states import Channel, Kind
from postgate.settings import Settings
from postgate.sms.estimate import estimate
from postgate.store import tables as t
from postgate.tenants import slugs as tenants
from postgate.tenants import warmup as warmup_store


def dry_run(
    engine: Engine, msg: CampaignV1, page_size: int, now: datetime, settings: Settings | None = None
) -> dict[str, Any]:
    """Counts per decision; for SMS also parts, routes and the estimated cost."""
    lists = sorted(set(msg.audience))
    with engine.connect() as conn:
        tenant_id = tenants.id_of(conn, msg.tenant)
        if tenant_id is None:
            raise MessageError(f"unknown tenant {msg.tenant!r}")
        owned = conn.scalar(
            select(func.count())
            .select_from(t.mailing_list)
            .where(t.mailing_list.c.tenant_id == tenant_id, t.mailing_list.c.id.in_(lists))
        )
        if owned != len(lists):
            raise MessageError(f"audience names lists tenant {msg.tenant!r} does not own")
        spec = audience.AudienceSpec(tenant_id, msg.channel.value, msg.topic, tuple(lists))
        policy = GateCampaign(tenant_id=tenant_id, kind=msg.kind.value)
        override = conn.scalar(select(t.tenant.c.sms_routes).where(t.tenant.c.id == tenant_id))
        own_windows = conn.scalar(
            select(t.tenant_profile.c.sms_send_window).where(
                t.tenant_profile.c.tenant_id == tenant_id
            )
        )
        warming = (
            warmup_store.for_from(conn, tenant_id, str(msg.sender.email))
            if msg.channel == Channel.EMAIL and msg.kind == Kind.PROMOTIONAL and msg.sender
            else None
        )
        blocked: Counter[str] = Counter()
        sendable = 0
        numbers: list[str] = []
        reached: list[tuple[int, str | None]] = []  # (contact, address) when a window is set
        for recipients in audience.stream(conn, spec, page_size, now):
            for recipient, reason in gate(policy, recipients, now):
                if reason is None:
                    sendable += 1
                    if msg.channel == Channel.SMS and recipient.address:
                        numbers.append(recipient.address)
                    if msg.send_window is not None:
                        reached.append((recipient.contact_id, recipient.address))
                else:
                    blocked[reason.value] += 1
        outside = None
        if msg.send_window is not None:
            window = SendWindow(quiet_hours.window(msg.send_window.hours), msg.send_window.zone)
            outside = _outside(conn, window, reached, msg.channel == Channel.SMS, now)
    result: dict[str, Any] = {
        "tenant": msg.tenant,
        "campaign_id": msg.campaign_id,
        "topic": msg.topic,
        "would_send": sendable,
        "blocked": dict(sorted(blocked.items())),
        "total": sendable + sum(blocked.values()),
    }
    if outside is not None:
        result["send_window"] = outside
    if warming is not None:
        with engine.connect() as conn:
            result["warmup"] = _projection(
                conn, settings or Settings(), tenant_id, warming, sendable, now
            )
    if msg.channel == Channel.SMS:
        s = settings or Settings()
        options = msg.sms or SmsOptions()
        result["sms"] = estimate(
            msg.content.text,
            msg.kind.value,
            s.sms_opt_out_text,
            options.policy,
            options.max_parts,
            numbers,
            parse_routes(s.sms_routes),
            override,
            s.sms_price_per_part,
        )
        if msg.kind == Kind.PROMOTIONAL:
            result["sms"]["waiting_for_window"] = _waiting(numbers, now, own_windows, s)
    return result


def _projection(
    conn: Any,
    settings: Settings,
    tenant_id: int,
    warming: warmup_store.Warming,
    count: int,
    now: datetime,
) -> dict[str, Any]:
    """The From domain's ramp and the day by which ``count`` messages will have gone if
    every later day is clean: at worst, all of them to one provider group."""
    shown = warmup_store.status(conn, settings, tenant_id, warming.domain, now)
    schedule = warmup.parse_schedule(settings.warmup_schedule)
    left = shown["cap_per_group_today"] - max(shown["sent_today"].values(), default=0)
    days = warmup.days_to_send(schedule, warming.stage, max(left, 0), count)
    return shown | {
        "finished_by": warmup.day_of(now + timedelta(days=days)),
        "days": days,
        "assumes": "every recipient on one provider group (spread over several: sooner)",
    }


def _outside(
    conn: Any,
    window: SendWindow,
    reached: list[tuple[int, str | None]],
    sms: bool,
    now: datetime,
) -> dict[str, Any]:
    """How many of the reached recipients are outside the campaign's send window at
    ``now``, by the zone that decides it, and when the last of them opens."""
    c = t.contact.c
    waiting: Counter[str] = Counter()
    last: datetime | None = None
    for i in range(0, len(reached), 1000):
        page = reached[i : i + 1000]
        ids = [cid for cid, _ in page]
        attrs = {i: a for i, a in conn.execute(select(c.id, c.attributes).where(c.id.in_(ids)))}
        for contact_id, address in page:
            own = attrs.get(contact_id) or {}
            phone = address if sms else None
            zones = window.zones(own, phone)
            opens = window.opens_in(now, zones)
            if opens is not None:
                waiting[", ".join(zones)] += 1
                last = opens if last is None or opens > last else last
    return window.as_json() | {
        "waiting_now": sum(waiting.values()),
        "by_zone": dict(sorted(waiting.items())),
        "last_opens_at": last.isoformat() if last else None,
    }


def _waiting(numbers: list[str], now: datetime, own: Any, settings: Settings) -> dict[str, Any]:
    """How many of ``numbers`` are outside their send window at ``now``, and when the
    last of them opens."""
    tenant = quiet_hours.windows(own or {})
    platform = quiet_hours.windows(settings.sms_send_window)
    holds = [
        h
        for n in numbers
        if (h := quiet_hours.hold(n, now, tenant, platform, settings.sms_send_window_zone))
    ]
    last = max((h.until for h in holds), default=None)
    return {"count": len(holds), "until": last.isoformat() if last else None}
