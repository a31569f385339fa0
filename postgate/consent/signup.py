"""Double opt-in: a form post becomes a pending signup and a confirmation mail; a POST to
the confirmation link becomes a confirmed consent record carrying the full proof.

The confirmation token (256 random bits) exists in plain text only in the send-queue
message and in the mail; the database keeps its SHA-256. Confirmation mails are
transactional deliveries of a one-off campaign (``signup-confirm:<form>:<token hash prefix>``)
that the normal sender delivers; their per-delivery context carries the link.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.engine import Row

from postgate import tables as t
from postgate.clock import aware
from postgate.consent.gate import HARD_SUPPRESSIONS
from postgate.delivery.states import CampaignState, DeliveryState, Kind
from postgate.dialect import insert_ignore

log = logging.getLogger("postgate.signup")
CONFIRM_PREFIX = "signup-confirm:"
RESEND_AFTER = timedelta(hours=24)
LIFTED_BY_RECONFIRM = ("unsubscribe", "stop")

CONFIRM_SUBJECT = "Please confirm your subscription to {{ tenant_name }}"
CONFIRM_TEXT = (
    "Someone (hopefully you) asked to receive messages about \"{{ topic }}\" from "
    "{{ tenant_name }} at this address.\n\n"
    "To confirm, open this link and press the button:\n{{ confirm_url }}\n\n"
    "If this was not you, ignore this mail: nothing happens without your confirmation.\n"
)


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
    """What a submission produced: ``mail`` is the send batch to publish, if any."""

    status: str  # sent | already_sent | suppressed
    mail: dict[str, Any] | None = None
    pending_id: int | None = None


def find_form(engine: Engine, public_id: str) -> Row[Any] | None:
    f = t.signup_form.c
    with engine.connect() as conn:
        return conn.execute(
            select(t.signup_form, t.tenant.c.name.label("tenant_name"),
                   t.tenant.c.slug.label("tenant_slug"),
                   t.tenant.c.domain.label("tenant_domain"))
            .join(t.tenant, t.tenant.c.id == f.tenant_id)
            .where(f.public_id == public_id, f.enabled.is_(True))
        ).first()


def _contact(conn: Connection, tenant_id: int, email: str, phone: str | None,
             now: datetime) -> int:
    c = t.contact.c
    found = conn.scalar(select(c.id).where(c.tenant_id == tenant_id, c.email == email))
    if found is not None:
        return int(found)
    if phone and conn.scalar(select(c.id).where(c.tenant_id == tenant_id, c.phone == phone)):
        phone = None  # the number belongs to another contact; never merge on a form post
    return int(conn.execute(
        insert(t.contact).values(tenant_id=tenant_id, email=email, phone=phone, name="",
                                 attributes={}, created_at=now).returning(c.id)
    ).scalar_one())


def submit(engine: Engine, form: Row[Any], email: str, phone: str | None, name: str,
           visitor: Visitor, public_url: str, ttl_s: float, now: datetime) -> Signup:
    """Record a pending signup and prepare its confirmation mail (at most one per 24 h)."""
    tenant_id = form.tenant_id
    p, s = t.pending_signup.c, t.suppression.c
    with engine.begin() as conn:
        recent = conn.scalar(select(p.id).where(
            p.tenant_id == tenant_id, p.address == email, p.channel == "email",
            p.created_at > now - RESEND_AFTER).limit(1))
        if recent is not None:
            return Signup("already_sent")
        hard = conn.scalar(select(s.reason).where(
            s.tenant_id == tenant_id, s.channel == "email", s.address == email,
            s.reason.in_(HARD_SUPPRESSIONS)))
        if hard is not None:
            return Signup("suppressed")
        contact_id = _contact(conn, tenant_id, email, phone, now)
        token = secrets.token_urlsafe(32)
        digest = hash_token(token)
        pending_id = conn.execute(insert(t.pending_signup).values(
            tenant_id=tenant_id, form_id=form.id, contact_id=contact_id, channel="email",
            address=email, name=name, token_hash=digest,
            consent_text_hash=form.consent_text_hash,
            consent_text_version=form.consent_text_version, signup_ip=visitor.ip[:64],
            signup_user_agent=visitor.user_agent[:500], created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        ).returning(p.id)).scalar_one()
        campaign_id = conn.execute(insert(t.campaign).values(
            tenant_id=tenant_id, external_id=f"{CONFIRM_PREFIX}{form.public_id}:{digest[:24]}",
            channel="email", kind=Kind.TRANSACTIONAL.value, topic=form.topic, list_ids=[],
            subject=CONFIRM_SUBJECT, text=CONFIRM_TEXT, html="",
            from_email=f"no-reply@{form.tenant_domain}", from_name=form.tenant_name,
            state=CampaignState.SENDING.value, created_at=now, planned_at=now,
        ).returning(t.campaign.c.id)).scalar_one()
        delivery_id = conn.execute(insert(t.delivery).values(
            tenant_id=tenant_id, campaign_id=campaign_id, contact_id=contact_id, address=email,
            state=DeliveryState.QUEUED.value, created_at=now, updated_at=now,
        ).returning(t.delivery.c.id)).scalar_one()
    context = {"confirm_url": f"{public_url.rstrip('/')}/c/{token}",
               "tenant_name": form.tenant_name, "topic": form.topic}
    log.info("tenant=%s form=%s rcpt=%s pending signup %s, confirmation delivery %s",
             tenant_id, form.public_id, email, pending_id, delivery_id)
    return Signup("sent", {"campaign_id": campaign_id, "ids": [delivery_id],
                           "context": {str(delivery_id): context}}, pending_id)


def abandon(engine: Engine, signup: Signup, now: datetime) -> None:
    """Undo a signup whose confirmation could not be queued, so the person can retry."""
    if signup.mail is None or signup.pending_id is None:
        return
    d = t.delivery.c
    with engine.begin() as conn:
        conn.execute(update(t.delivery).where(d.id.in_(signup.mail["ids"]),
                                              d.state == DeliveryState.QUEUED)
                     .values(state=DeliveryState.CANCELLED, reason="queue_unavailable",
                             updated_at=now))
        conn.execute(t.pending_signup.delete().where(t.pending_signup.c.id == signup.pending_id))


def find_pending(conn: Connection, token: str, now: datetime) -> Row[Any] | None:
    """The unused, unexpired pending signup for ``token`` (compared in constant time)."""
    if not 20 <= len(token) <= 100:
        return None
    digest = hash_token(token)
    p = t.pending_signup.c
    row = conn.execute(
        select(t.pending_signup, t.signup_form.c.topic, t.signup_form.c.list_id,
               t.signup_form.c.confirmed_message, t.signup_form.c.name.label("form_name"),
               t.tenant.c.slug.label("tenant_slug"))
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
        taken = conn.execute(update(t.pending_signup).where(
            p.id == row.id, p.used_at.is_(None)).values(used_at=now)).rowcount
        if taken != 1:
            return None  # a concurrent POST used it first
        conn.execute(insert(t.consent).values(
            tenant_id=row.tenant_id, contact_id=row.contact_id, channel=row.channel,
            topic=row.topic, source="signup_form", status="confirmed",
            consented_at=row.created_at, created_at=now, form_id=row.form_id,
            consent_text_hash=row.consent_text_hash,
            consent_text_version=row.consent_text_version, signup_ip=row.signup_ip,
            signup_user_agent=row.signup_user_agent, confirmed_at=now,
            confirm_ip=visitor.ip[:64], confirm_user_agent=visitor.user_agent[:500],
        ))
        insert_ignore(conn, t.list_member, [{"list_id": row.list_id, "contact_id": row.contact_id,
                                             "tenant_id": row.tenant_id}],
                      ("list_id", "contact_id"))
        c = t.contact.c
        if row.name:
            conn.execute(update(t.contact).where(c.id == row.contact_id, c.name == "")
                         .values(name=row.name))
        s = t.suppression.c
        conn.execute(t.suppression.delete().where(
            s.tenant_id == row.tenant_id, s.channel == row.channel, s.address == row.address,
            s.reason.in_(LIFTED_BY_RECONFIRM)))
    log.info("tenant=%s form=%s rcpt=%s confirmed", row.tenant_id, row.form_id, row.address)
    return row
