"""Seeding phone contacts with SMS consent, and reading back SMS rows."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from postgate.consent import records
from postgate.core.clock import utcnow
from postgate.store import tables as t
from tests.support import World


def phone_contact(world: World, name: str, phone: str, consent: bool = True) -> None:
    with Session(world.ctx.engine) as s:
        contact = records.add_contact(
            s, world.tenant_id, phone=phone, name=name, lists=[world.mlist]
        )
        if consent:
            when = utcnow() - timedelta(days=10)
            records.add_consent(
                s, contact, "sms", "news", "signup_form", "confirmed", when, confirmed_at=when
            )
        s.commit()


def sms_message(
    world: World, text: str, campaign_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "version": "campaign.v1",
        "tenant": world.tenant.slug,
        "campaign_id": campaign_id or f"s-{uuid.uuid4().hex[:8]}",
        "channel": "sms",
        "kind": "promotional",
        "topic": "news",
        "audience": [world.mlist.id],
        "content": {"text": text},
        "sms": {"sender": "Acme"},
    }
    msg.update(overrides)
    return msg


def rows(world: World, external_id: str) -> dict[str, Any]:
    d, c = t.delivery.c, t.campaign.c
    with world.ctx.engine.connect() as conn:
        found = conn.execute(
            select(
                d.address, d.state, d.reason, d.provider, d.segments, d.dlr_status, d.attempts, d.id
            )
            .join(t.campaign, c.id == d.campaign_id)
            .where(c.tenant_id == world.tenant_id, c.external_id == external_id)
        ).all()
    return {r.address: r for r in found}


def settled(world: World, external_id: str, count: int) -> bool:
    """All ``count`` rows have reached a final state and every sent one has its report."""
    found = rows(world, external_id).values()
    return len(found) == count and all(
        r.state in ("failed", "blocked") or (r.state == "sent" and r.dlr_status) for r in found
    )
