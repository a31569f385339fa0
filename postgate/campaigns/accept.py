"""Turning a validated ``campaign.v1`` message into a campaign row, exactly once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from postgate.campaigns import content_review
from postgate.core.clock import aware
from postgate.core.message import CampaignV1, MessageError, Sender
from postgate.core.sender_domains import covering
from postgate.core.states import CampaignState, Channel, Kind
from postgate.observability.metrics import PREFLIGHT_REFUSALS, UNSIGNED_BULK
from postgate.store import tables as t
from postgate.tenants import domains as domain_store
from postgate.tenants import preflight as domain_preflight

log = logging.getLogger("postgate.campaigns")


@dataclass(frozen=True, slots=True)
class Accepted:
    campaign_id: int
    state: str
    created: bool


def judged(msg: CampaignV1) -> bool:
    """Whether the authentication preflight decides on this campaign: bulk email."""
    return msg.kind == Kind.PROMOTIONAL and msg.channel is Channel.EMAIL


def accept(
    conn: Connection,
    msg: CampaignV1,
    now: datetime,
    lexicon_dir: str = "",
    preflight: bool = False,
) -> Accepted:
    """Create the campaign (or find the one this idempotency key already made).

    With ``preflight`` (``PREFLIGHT_ENFORCE``) a promotional email From a verified domain
    whose latest authentication preflight fails, or whose DMARC alignment the From breaks,
    is refused (a MessageError naming the failing checks); transactional mail is not."""
    tenant = conn.execute(
        select(t.tenant.c.id, t.tenant.c.domain).where(t.tenant.c.slug == msg.tenant)
    ).first()
    if tenant is None:
        raise MessageError(f"unknown tenant {msg.tenant!r}")
    tenant_id, domain = tenant
    existing = _find(conn, tenant_id, msg.campaign_id)
    if existing is not None:
        log.info("campaign %s/%s seen again; idempotent", msg.tenant, msg.campaign_id)
        return Accepted(existing[0], existing[1], created=False)
    lists = set(msg.audience)
    owned = conn.execute(
        select(func.count())
        .select_from(t.mailing_list)
        .where(t.mailing_list.c.tenant_id == tenant_id, t.mailing_list.c.id.in_(lists))
    ).scalar_one()
    if owned != len(lists):
        raise MessageError(f"audience names lists tenant {msg.tenant!r} does not own")
    sender = msg.sender or _default_from(conn, tenant_id, msg)
    if sender is not None:
        sender_domain = sender.email.rsplit("@", 1)[1].lower()
        verified = domain_store.verified(conn, tenant_id)
        if covering(sender_domain, [domain, *verified]) is None:
            raise MessageError(
                f"from address domain {sender_domain!r} is not the tenant's verified domain"
            )
        if judged(msg) and covering(sender_domain, verified) is None:
            UNSIGNED_BULK.labels(msg.tenant).inc()
            log.warning(
                "campaign %s/%s: bulk mail From %s goes out unsigned and unjudged: %s is no "
                "sender domain of the tenant (claim it with POST /v1/domains)",
                msg.tenant,
                msg.campaign_id,
                sender_domain,
                domain,
            )
        if preflight and judged(msg):
            refused = domain_preflight.refusal(conn, tenant_id, sender_domain)
            if refused is not None:
                PREFLIGHT_REFUSALS.labels(msg.tenant).inc()
                log.warning("campaign %s/%s refused: %s", msg.tenant, msg.campaign_id, refused)
                raise MessageError(f"bulk campaign refused: {refused}")
    verdict = content_review.review(msg, lexicon_dir)
    due = msg.schedule_at is not None and aware(msg.schedule_at) > now
    state = CampaignState.SCHEDULED if due else CampaignState.PLANNING
    if verdict.blocked:
        state = CampaignState.REJECTED
    values = {
        "tenant_id": tenant_id,
        "external_id": msg.campaign_id,
        "channel": msg.channel.value,
        "kind": msg.kind.value,
        "topic": msg.topic,
        "list_ids": sorted(lists),
        "subject": msg.content.subject,
        "text": msg.content.text,
        "html": msg.content.html,
        "from_email": sender.email if sender else "",
        "from_name": sender.name if sender else "",
        "sms_sender": msg.sms.sender if msg.sms else None,
        "sms_policy": msg.sms.policy if msg.sms else None,
        "sms_max_parts": msg.sms.max_parts if msg.sms else None,
        "headers": msg.headers,
        "scheduled_at": msg.schedule_at,
        "send_window": msg.send_window.model_dump() if msg.send_window else {},
        "state": state.value,
        "policy": verdict.as_json(),
        "created_at": now,
    }
    try:
        with conn.begin_nested():
            campaign_id = conn.execute(
                insert(t.campaign).values(**values).returning(t.campaign.c.id)
            ).scalar_one()
    except IntegrityError:  # a concurrent planner took the same key first
        found = _find(conn, tenant_id, msg.campaign_id)
        if found is None:
            raise
        return Accepted(found[0], found[1], created=False)
    content_review.record(conn, tenant_id, msg, campaign_id, verdict)
    return Accepted(campaign_id, state.value, created=True)


def _default_from(conn: Connection, tenant_id: int, msg: CampaignV1) -> Sender | None:
    """An email campaign without ``from`` is sent from the tenant's default From."""
    if msg.channel is not Channel.EMAIL:
        return None
    pc = t.tenant_profile.c
    row = conn.execute(
        select(pc.default_from_email, pc.default_from_name).where(pc.tenant_id == tenant_id)
    ).first()
    if row is None or not row[0]:
        raise MessageError("email campaigns need 'from': the tenant has no default From")
    return Sender(email=row[0], name=row[1])


def _find(conn: Connection, tenant_id: int, external_id: str) -> tuple[int, str] | None:
    row = conn.execute(
        select(t.campaign.c.id, t.campaign.c.state).where(
            t.campaign.c.tenant_id == tenant_id, t.campaign.c.external_id == external_id
        )
    ).first()
    return (row[0], row[1]) if row else None
