"""The provenance reminder (DESIGN.md §1 rule 10): a recipient who has not heard from the
tenant for a while (``REMINDER_AFTER_DAYS``, 90 by default) gets a short footer saying
where and when they signed up, so a mail never arrives out of nowhere.

``needs_reminder`` and ``reminder_text`` are pure; ``for_deliveries`` loads what they
need for one claimed batch with two queries (the sender already holds the campaign and
the contact ids it claimed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from postgate.core import i18n
from postgate.core.clock import aware
from postgate.core.states import DeliveryState
from postgate.store import tables as t
from postgate.tenants import brand


def needs_reminder(
    last_sent: datetime | None, consent_given: datetime, now: datetime, after_days: int
) -> bool:
    """Silent for ``after_days`` since the last mail, or since consenting if none came yet."""
    since = aware(last_sent) if last_sent is not None else aware(consent_given)
    return aware(now) - since >= timedelta(days=after_days)


def reminder_text(
    source: str,
    form_name: str | None,
    given_at: datetime,
    tenant_name: str,
    locale: str = i18n.DEFAULT_LOCALE,
    time_zone: str | None = None,
) -> str:
    """The footer in ``locale``, the day in its format and the tenant's time zone."""
    _ = i18n.Words(locale)
    day = i18n.date_text(aware(given_at), _.code, time_zone)
    if source == "signup_form" and form_name:
        return _(
            "You receive this because you signed up at %(form)s on %(day)s (%(tenant)s).",
            form=form_name,
            day=day,
            tenant=tenant_name,
        )
    if source == "written_consent":
        return _(
            "You receive this because you gave written consent on %(day)s (%(tenant)s).",
            day=day,
            tenant=tenant_name,
        )
    if source == "event":
        return _(
            "You receive this because you signed up at an event on %(day)s (%(tenant)s).",
            day=day,
            tenant=tenant_name,
        )
    if source == "purchase":
        return _(
            "You receive this because you left the marketing box ticked when buying "
            "from us on %(day)s (%(tenant)s).",
            day=day,
            tenant=tenant_name,
        )
    return _(
        "You receive this because you gave consent on %(day)s (%(tenant)s).",
        day=day,
        tenant=tenant_name,
    )


@dataclass(frozen=True, slots=True)
class Audience:
    """What the sender already knows of the campaign a batch belongs to."""

    tenant_id: int
    channel: str
    topic: str
    tenant_name: str
    campaign_id: int


def for_deliveries(
    engine: Engine,
    audience: Audience,
    rows: Sequence[tuple[int, int]],
    now: datetime,
    after_days: int,
) -> dict[int, str]:
    """Reminder footers for the (delivery, contact) rows of one campaign whose recipient
    needs one: two queries, the last mail per contact and the consent records."""
    d, cs, f = t.delivery.c, t.consent.c, t.signup_form.c
    contacts = sorted({contact_id for _, contact_id in rows})
    with engine.connect() as conn:
        shown = brand.load(conn, audience.tenant_id)
        last = dict(
            conn.execute(
                select(d.contact_id, func.max(d.sent_at))
                .where(
                    d.tenant_id == audience.tenant_id,
                    d.contact_id.in_(contacts),
                    d.state == DeliveryState.SENT,
                    d.campaign_id != audience.campaign_id,
                )
                .group_by(d.contact_id)
            ).all()
        )
        consents: dict[int, tuple[str, str | None, datetime]] = {}
        for contact_id, source, form_name, consented, confirmed in conn.execute(
            select(cs.contact_id, cs.source, f.name, cs.consented_at, cs.confirmed_at)
            .outerjoin(t.signup_form, f.id == cs.form_id)
            .where(
                cs.tenant_id == audience.tenant_id,
                cs.channel == audience.channel,
                cs.topic == audience.topic,
                cs.contact_id.in_(contacts),
            )
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
            out[delivery_id] = reminder_text(
                source,
                form_name,
                given,
                shown.name or audience.tenant_name,
                i18n.choose(shown.locale),
                shown.time_zone,
            )
    return out
