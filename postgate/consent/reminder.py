"""The provenance reminder (DESIGN.md §1 rule 10): a recipient who has not heard from the
tenant for a while (``REMINDER_AFTER_DAYS``, 90 by default) gets a short footer saying
where and when they signed up, so a mail never arrives out of nowhere.

``needs_reminder`` and ``reminder_text`` are pure; ``for_deliveries`` loads what they
need for one claimed batch with two queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from postgate import tables as t
from postgate.clock import aware
from postgate.delivery.states import DeliveryState

SOURCES = {
    "written_consent": "gave written consent",
    "event": "signed up at an event",
    "purchase": "left the marketing box ticked when buying from us",
    "import": "gave consent",
}


def needs_reminder(last_sent: datetime | None, consent_given: datetime, now: datetime,
                   after_days: int) -> bool:
    """Silent for ``after_days`` since the last mail, or since consenting if none came yet."""
    since = aware(last_sent) if last_sent is not None else aware(consent_given)
    return aware(now) - since >= timedelta(days=after_days)


def reminder_text(source: str, form_name: str | None, given_at: datetime,
                  tenant_name: str) -> str:
    day = aware(given_at).date().isoformat()
    if source == "signup_form" and form_name:
        how = f"signed up at {form_name}"
    else:
        how = SOURCES.get(source, "gave consent")
    return f"You receive this because you {how} on {day} ({tenant_name})."


def for_deliveries(engine: Engine, campaign_id: int, delivery_ids: Sequence[int],
                   now: datetime, after_days: int) -> dict[int, str]:
    """Reminder footers for the deliveries (of one campaign) whose recipient needs one."""
    d, cp, cs, f = t.delivery.c, t.campaign.c, t.consent.c, t.signup_form.c
    with engine.connect() as conn:
        camp = conn.execute(select(cp.tenant_id, cp.channel, cp.topic, t.tenant.c.name)
                            .join(t.tenant, t.tenant.c.id == cp.tenant_id)
                            .where(cp.id == campaign_id)).one()
        rows = conn.execute(select(d.id, d.contact_id).where(d.id.in_(list(delivery_ids)))).all()
        contacts = sorted({r[1] for r in rows})
        last = dict(conn.execute(
            select(d.contact_id, func.max(d.sent_at)).where(
                d.tenant_id == camp.tenant_id, d.contact_id.in_(contacts),
                d.state == DeliveryState.SENT, d.campaign_id != campaign_id)
            .group_by(d.contact_id)).all())
        consents: dict[int, tuple[str, str | None, datetime]] = {}
        for contact_id, source, form_name, consented, confirmed in conn.execute(
            select(cs.contact_id, cs.source, f.name, cs.consented_at, cs.confirmed_at)
            .outerjoin(t.signup_form, f.id == cs.form_id)
            .where(cs.tenant_id == camp.tenant_id, cs.channel == camp.channel,
                   cs.topic == camp.topic, cs.contact_id.in_(contacts))
            .order_by(cs.contact_id, cs.created_at, cs.id)
        ):  # oldest first: the latest record per contact wins
            consents[contact_id] = (source, form_name, confirmed or consented)
    out = {}
    for delivery_id, contact_id in rows:
        consent = consents.get(contact_id)
        if consent is None:
            continue
        source, form_name, given = consent
        if needs_reminder(last.get(contact_id), given, now, after_days):
            out[delivery_id] = reminder_text(source, form_name, given, camp.name)
    return out
