"""Double opt-in: a form post becomes a pending signup per channel of the form and a
confirmation to that channel's address (an email, or an SMS to the typed number); a POST to
the confirmation link becomes a confirmed consent record for that channel, carrying the full
proof. Each channel is confirmed on its own address: a link sent by SMS proves the number,
never the mailbox.

The confirmation token (256 random bits) exists in plain text only in the send-queue
message and in the email or SMS; the database keeps its SHA-256. Confirmations are
transactional deliveries of one-off campaigns
(``signup-confirm:<form>:<channel>:<token hash prefix>``) that the normal sender delivers;
their per-delivery context carries the link.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.engine import Row

from postgate.core import i18n
from postgate.core import texts as mail
from postgate.core.clock import aware
from postgate.core.gate import HARD_SUPPRESSIONS
from postgate.core.states import CampaignState, DeliveryState, Kind, SuppressionReason
from postgate.feedback import ledger
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.store.dialect import insert_ignore, insert_ignoring
from postgate.store.limits import contact_limit_reason, contact_room
from postgate.tenants import brand, erasure

log = logging.getLogger("postgate.signup")
CONFIRM_PREFIX = "signup-confirm:"
RESEND_AFTER = timedelta(hours=24)
LIFTED_BY_RECONFIRM = (SuppressionReason.UNSUBSCRIBE, SuppressionReason.STOP)

# The confirmation's texts, in the form's, the tenant's or the visitor's language, are
# templates of postgate.pages.mail; the send batch fills in the link and the names.


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Visitor:
    ip: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class Signup:
    """What a submission produced: one send batch per confirmation to publish, and the
    pending signups they confirm. ``status`` sums it up: sent when any confirmation goes
    out, else already_sent (within 24 h) or suppressed."""

    status: str  # sent | already_sent | capped | full (the contact limit) | suppressed
    batches: list[dict[str, Any]] = field(default_factory=list)
    pending_ids: list[int] = field(default_factory=list)
    capped: bool = False  # the SMS confirmation was over the tenant's daily number


@dataclass(frozen=True, slots=True)
class Applicant:
    """What the visitor typed, already normalised: an address per channel they gave."""

    email: str | None
    phone: str | None
    name: str

    def address(self, channel: str) -> str | None:
        return self.email if channel == "email" else self.phone


def find_form(engine: Engine, public_id: str) -> Row[Any] | None:
    f = t.signup_form.c
    with engine.connect() as conn:
        return conn.execute(
            select(
                t.signup_form,
                t.tenant.c.name.label("tenant_name"),
                t.tenant.c.slug.label("tenant_slug"),
                t.tenant.c.domain.label("tenant_domain"),
            )
            .join(t.tenant, t.tenant.c.id == f.tenant_id)
            .where(f.public_id == public_id, f.enabled.is_(True))
        ).first()


def _contact(
    conn: Connection, tenant_id: int, channel: str, address: str, now: datetime, may_create: bool
) -> tuple[int, bool] | None:
    """The contact holding ``address`` in ``channel``'s column, or a new one holding just
    that address: (id, created); None when a new one would pass the tenant's contact
    limit. A form post never merges contacts and never writes a
    typed address next to anything it did not prove, so confirming one channel never lets
    another address reach that contact's data (a new visitor on both channels gets two)."""
    c = t.contact.c
    key = "email" if channel == "email" else "phone"
    column = c.email if channel == "email" else c.phone
    found = conn.scalar(select(c.id).where(c.tenant_id == tenant_id, column == address))
    if found is not None:
        return int(found), False
    if not may_create:
        return None
    row: dict[str, Any] = {
        "tenant_id": tenant_id,
        "email": None,
        "phone": None,
        "name": "",
        "attributes": {},
        "created_at": now,
    } | {key: address}
    created = conn.scalar(
        insert_ignoring(conn, t.contact, ("tenant_id", key)).values(**row).returning(c.id)
    )  # None: added meanwhile, and wins
    if created is not None:
        return int(created), True
    made = conn.execute(select(c.id).where(c.tenant_id == tenant_id, column == address)).one()
    return int(made.id), False


def _confirmation(
    conn: Connection,
    form: Row[Any],
    channel: str,
    address: str,
    contact_id: int,
    digest: str,
    now: datetime,
    locale: str,
) -> tuple[int, int]:
    """A one-off transactional campaign and its single delivery: (campaign, delivery)."""
    email = channel == "email"
    subject, text = mail.confirmation(channel, locale)
    campaign_id = conn.execute(
        insert(t.campaign)
        .values(
            tenant_id=form.tenant_id,
            external_id=f"{CONFIRM_PREFIX}{form.public_id}:{channel}:{digest[:24]}",
            channel=channel,
            kind=Kind.TRANSACTIONAL.value,
            topic=form.topic,
            list_ids=[],
            subject=subject,
            text=text,
            html="",
            from_email=f"no-reply@{form.tenant_domain}" if email else "",
            from_name=brand.load(conn, form.tenant_id).name,
            sms_policy=None if email else "transliterate",
            state=CampaignState.SENDING.value,
            created_at=now,
            planned_at=now,
        )
        .returning(t.campaign.c.id)
    ).scalar_one()
    delivery_id = conn.execute(
        insert(t.delivery)
        .values(
            tenant_id=form.tenant_id,
            campaign_id=campaign_id,
            contact_id=contact_id,
            address=address,
            state=DeliveryState.QUEUED.value,
            created_at=now,
            updated_at=now,
        )
        .returning(t.delivery.c.id)
    ).scalar_one()
    return int(campaign_id), int(delivery_id)


def submit(
    engine: Engine,
    settings: Settings,
    form: Row[Any],
    who: Applicant,
    channels: list[str],
    visitor: Visitor,
    now: datetime,
    locale: str = i18n.DEFAULT_LOCALE,
) -> Signup:
    """Record a pending signup per channel in ``channels`` (the form's, less any the
    caller rate-limited) and prepare its confirmation: an email, or an SMS to the typed
    number. At most one per address and channel per 24 h, and at most
    ``SIGNUP_SMS_PER_DAY`` confirmation SMS per tenant. A mailbox that bounced hard,
    complained or was erased gets no confirmation (one that unsubscribed may sign up
    again); a number that is suppressed for any reason, a STOP included, is never texted
    because of a form post someone else could have made. The confirmation is written in
    ``locale``."""
    tenant_id = form.tenant_id
    p = t.pending_signup.c
    batches: list[dict[str, Any]] = []
    pending_ids: list[int] = []
    statuses: set[str] = set()
    with engine.begin() as conn:
        _one_at_a_time(conn, tenant_id)
        room = contact_room(conn, tenant_id)
        shown = brand.load(conn, tenant_id)
        topic = brand.topic(conn, tenant_id, form.topic, locale).name
        for channel in channels:
            address = who.address(channel)
            if not address:
                continue
            refused = _refused(conn, settings, tenant_id, channel, address, now)
            if refused:
                statuses.add(refused)
                continue
            found = _contact(conn, tenant_id, channel, address, now, room is None or room > 0)
            if found is None:
                log.warning(
                    "tenant=%s form=%s rcpt=%s no signup: %s",
                    tenant_id,
                    form.public_id,
                    address,
                    contact_limit_reason(conn, tenant_id),
                )
                statuses.add("full")
                continue
            contact_id, created = found
            if created and room is not None:
                room -= 1
            token = secrets.token_urlsafe(32)
            digest = hash_token(token)
            pending_id = conn.execute(
                insert(t.pending_signup)
                .values(
                    tenant_id=tenant_id,
                    form_id=form.id,
                    contact_id=contact_id,
                    channel=channel,
                    address=address,
                    name=who.name if created else "",
                    token_hash=digest,
                    consent_text_hash=form.consent_text_hash,
                    consent_text_version=form.consent_text_version,
                    signup_ip=visitor.ip[:64],
                    signup_user_agent=visitor.user_agent[:500],
                    created_at=now,
                    expires_at=now + timedelta(seconds=settings.signup_token_ttl_s),
                )
                .returning(p.id)
            ).scalar_one()
            campaign_id, delivery_id = _confirmation(
                conn, form, channel, address, contact_id, digest, now, locale
            )
            expires = now + timedelta(seconds=settings.signup_token_ttl_s)
            context = {
                "confirm_url": f"{settings.public_url.rstrip('/')}/c/{token}",
                "tenant_name": shown.name,
                "topic": topic,
                "consent_text": form.consent_text,
                "expires": i18n.datetime_text(expires, locale, shown.time_zone),
            }
            batches.append(
                {
                    "campaign_id": campaign_id,
                    "ids": [delivery_id],
                    "context": {str(delivery_id): context},
                }
            )
            pending_ids.append(int(pending_id))
            log.info(
                "tenant=%s form=%s rcpt=%s pending %s signup %s, confirmation delivery %s",
                tenant_id,
                form.public_id,
                address,
                channel,
                pending_id,
                delivery_id,
            )
    capped = "capped" in statuses
    if batches:
        return Signup("sent", batches, pending_ids, capped)
    for status in ("already_sent", "capped", "full"):
        if status in statuses:
            return Signup(status, capped=capped)
    return Signup("suppressed")


def _one_at_a_time(conn: Connection, tenant_id: int) -> None:
    """On PostgreSQL, hold the tenant row until the signup commits, so two posts at once
    cannot both pass the 24 h check or both slip under the SMS cap. FOR NO KEY UPDATE:
    the foreign-key checks of other inserts for the tenant are not held up (SQLite
    serialises writers anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(t.tenant.c.id).where(t.tenant.c.id == tenant_id).with_for_update(key_share=True)
        )


def _sms_today(conn: Connection, tenant_id: int, now: datetime) -> int:
    """Confirmation SMS of the tenant in the last 24 h."""
    p = t.pending_signup.c
    return int(
        conn.scalar(
            select(func.count()).where(
                p.tenant_id == tenant_id, p.channel == "sms", p.created_at > now - timedelta(days=1)
            )
        )
        or 0
    )


def _refused(
    conn: Connection, settings: Settings, tenant_id: int, channel: str, address: str, now: datetime
) -> str | None:
    """Why this address gets no confirmation now, or None when it may."""
    p = t.pending_signup.c
    if (
        conn.scalar(
            select(p.id)
            .where(
                p.tenant_id == tenant_id,
                p.address == address,
                p.channel == channel,
                p.created_at > now - RESEND_AFTER,
            )
            .limit(1)
        )
        is not None
    ):
        return "already_sent"
    reason = erasure.suppressions(conn, tenant_id, channel, [address]).get(address)
    if reason is not None and (channel == "sms" or reason in HARD_SUPPRESSIONS):
        return "suppressed"
    if channel == "sms" and _sms_today(conn, tenant_id, now) >= settings.signup_sms_per_day:
        log.warning(
            "tenant=%s rcpt=%s no confirmation SMS: %d sent in the last 24 h",
            tenant_id,
            address,
            settings.signup_sms_per_day,
        )
        return "capped"
    return None


def abandon(engine: Engine, signup: Signup, now: datetime, first: int = 0) -> None:
    """Undo the confirmations from ``first`` on, which could not be queued, so the person
    can retry them; the ones before it were queued and stay."""
    batches, pending_ids = signup.batches[first:], signup.pending_ids[first:]
    if not batches:
        return
    d = t.delivery.c
    ids = [i for batch in batches for i in batch["ids"]]
    with engine.begin() as conn:
        conn.execute(
            update(t.delivery)
            .where(d.id.in_(ids), d.state == DeliveryState.QUEUED)
            .values(state=DeliveryState.CANCELLED, reason="queue_unavailable", updated_at=now)
        )
        conn.execute(t.pending_signup.delete().where(t.pending_signup.c.id.in_(pending_ids)))


def find_pending(conn: Connection, token: str, now: datetime) -> Row[Any] | None:
    """The unused, unexpired pending signup for ``token`` (compared in constant time)."""
    if not 20 <= len(token) <= 100:
        return None
    digest = hash_token(token)
    p = t.pending_signup.c
    row = conn.execute(
        select(
            t.pending_signup,
            t.signup_form.c.topic,
            t.signup_form.c.list_id,
            t.signup_form.c.confirmed_message,
            t.signup_form.c.name.label("form_name"),
            t.tenant.c.slug.label("tenant_slug"),
        )
        .join(t.signup_form, t.signup_form.c.id == p.form_id)
        .join(t.tenant, t.tenant.c.id == p.tenant_id)
        .where(p.token_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if row.used_at is not None or aware(row.expires_at) <= now:
        return None
    return row


def confirm(engine: Engine, token: str, visitor: Visitor, now: datetime) -> Row[Any] | None:
    """Use the token once and append the confirmed consent with its proof."""
    p = t.pending_signup.c
    with engine.begin() as conn:
        row = find_pending(conn, token, now)
        if row is None:
            return None
        taken = conn.execute(
            update(t.pending_signup).where(p.id == row.id, p.used_at.is_(None)).values(used_at=now)
        ).rowcount
        if taken != 1:
            return None  # a concurrent POST used it first
        conn.execute(
            insert(t.consent).values(
                tenant_id=row.tenant_id,
                contact_id=row.contact_id,
                channel=row.channel,
                topic=row.topic,
                source="signup_form",
                status="confirmed",
                consented_at=row.created_at,
                created_at=now,
                form_id=row.form_id,
                consent_text_hash=row.consent_text_hash,
                consent_text_version=row.consent_text_version,
                signup_ip=row.signup_ip,
                signup_user_agent=row.signup_user_agent,
                confirmed_at=now,
                confirm_ip=visitor.ip[:64],
                confirm_user_agent=visitor.user_agent[:500],
            )
        )
        insert_ignore(
            conn,
            t.list_member,
            [{"list_id": row.list_id, "contact_id": row.contact_id, "tenant_id": row.tenant_id}],
            ("list_id", "contact_id"),
        )
        c = t.contact.c
        if row.name:
            conn.execute(
                update(t.contact).where(c.id == row.contact_id, c.name == "").values(name=row.name)
            )
        ledger.lift(conn, row.tenant_id, row.channel, [row.address], LIFTED_BY_RECONFIRM)
    log.info("tenant=%s form=%s rcpt=%s confirmed", row.tenant_id, row.form_id, row.address)
    return row
