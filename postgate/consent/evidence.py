"""The evidence bundle for one contact: every consent proof and every message sent to
them, answering "why did this person get this mail?"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select

from postgate.store import tables as t


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _rows(result: Any) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in result]


def bundle(engine: Engine, tenant_id: int, contact_id: int) -> dict[str, Any] | None:
    c, cs, d, cp = t.contact.c, t.consent.c, t.delivery.c, t.campaign.c
    f, s = t.signup_form.c, t.suppression.c
    with engine.connect() as conn:
        contact = conn.execute(
            select(c.id, c.email, c.phone, c.name, c.created_at, c.last_activity_at).where(
                c.id == contact_id, c.tenant_id == tenant_id
            )
        ).first()
        if contact is None:
            return None
        consents = _rows(
            conn.execute(
                select(
                    cs.id,
                    cs.channel,
                    cs.topic,
                    cs.source,
                    cs.status,
                    cs.consented_at,
                    cs.created_at,
                    cs.form_id,
                    f.public_id.label("form_public_id"),
                    f.name.label("form_name"),
                    cs.consent_text_hash,
                    cs.consent_text_version,
                    cs.signup_ip,
                    cs.signup_user_agent,
                    cs.confirmed_at,
                    cs.confirm_ip,
                    cs.confirm_user_agent,
                    cs.evidence_ref,
                    cs.marketing_checkbox,
                )
                .outerjoin(t.signup_form, f.id == cs.form_id)
                .where(cs.tenant_id == tenant_id, cs.contact_id == contact_id)
                .order_by(cs.created_at, cs.id)
            )
        )
        deliveries = _rows(
            conn.execute(
                select(
                    d.id,
                    cp.external_id.label("campaign"),
                    cp.kind,
                    cp.channel,
                    cp.topic,
                    cp.subject,
                    d.address,
                    d.state,
                    d.reason,
                    d.created_at,
                    d.sent_at,
                    d.smtp_code,
                    d.complained_at,
                )
                .join(t.campaign, cp.id == d.campaign_id)
                .where(d.tenant_id == tenant_id, d.contact_id == contact_id)
                .order_by(d.created_at, d.id)
            )
        )
        addresses = [a for a in (contact.email, contact.phone) if a]
        suppressions = _rows(
            conn.execute(
                select(s.channel, s.address, s.reason, s.detail, s.created_at).where(
                    s.tenant_id == tenant_id, or_(s.address.in_(addresses))
                )
            )
        )
    return {
        "contact": {k: _plain(v) for k, v in contact._mapping.items()},
        "consents": consents,
        "deliveries": deliveries,
        "suppressions": suppressions,
    }
