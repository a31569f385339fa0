"""Before sending: how many recipients a ``campaign.v1`` message would reach, and how many
the gate would block, per reason. Reads only; writes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from postgate import tables as t
from postgate.consent import audience
from postgate.consent.gate import GateCampaign, gate
from postgate.delivery.message import CampaignV1, MessageError


def dry_run(engine: Engine, msg: CampaignV1, page_size: int, now: datetime) -> dict[str, Any]:
    lists = sorted(set(msg.audience))
    with engine.connect() as conn:
        tenant_id = conn.scalar(select(t.tenant.c.id).where(t.tenant.c.slug == msg.tenant))
        if tenant_id is None:
            raise MessageError(f"unknown tenant {msg.tenant!r}")
        owned = conn.scalar(select(func.count()).select_from(t.mailing_list).where(
            t.mailing_list.c.tenant_id == tenant_id, t.mailing_list.c.id.in_(lists)))
        if owned != len(lists):
            raise MessageError(f"audience names lists tenant {msg.tenant!r} does not own")
        spec = audience.AudienceSpec(tenant_id, msg.channel.value, msg.topic, tuple(lists))
        policy = GateCampaign(tenant_id=tenant_id, kind=msg.kind.value)
        blocked: Counter[str] = Counter()
        sendable = 0
        for recipients in audience.stream(conn, spec, page_size, now):
            for _, reason in gate(policy, recipients, now):
                if reason is None:
                    sendable += 1
                else:
                    blocked[reason.value] += 1
    return {"tenant": msg.tenant, "campaign_id": msg.campaign_id, "topic": msg.topic,
            "would_send": sendable, "blocked": dict(sorted(blocked.items())),
            "total": sendable + sum(blocked.values())}
