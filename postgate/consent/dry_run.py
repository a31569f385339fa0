"""Before sending: how many recipients a ``campaign.v1`` message would reach, and how many
the gate would block, per reason; for promotional SMS also how many would wait for their
send window if sent now. Reads only; writes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from postgate.consent import audience
from postgate.core.gate import GateCampaign, gate
from postgate.core.message import CampaignV1, MessageError, SmsOptions
from postgate.core.sms import quiet_hours
from postgate.core.sms.routing import parse_routes
from postgate.core.states import Channel, Kind
from postgate.settings import Settings
from postgate.sms.estimate import estimate
from postgate.store import tables as t
from postgate.tenants import slugs as tenants


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
        blocked: Counter[str] = Counter()
        sendable = 0
        numbers: list[str] = []
        for recipients in audience.stream(conn, spec, page_size, now):
            for recipient, reason in gate(policy, recipients, now):
                if reason is None:
                    sendable += 1
                    if msg.channel == Channel.SMS and recipient.address:
                        numbers.append(recipient.address)
                else:
                    blocked[reason.value] += 1
    result: dict[str, Any] = {
        "tenant": msg.tenant,
        "campaign_id": msg.campaign_id,
        "topic": msg.topic,
        "would_send": sendable,
        "blocked": dict(sorted(blocked.items())),
        "total": sendable + sum(blocked.values()),
    }
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
