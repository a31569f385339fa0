"""Tables of the delivery side."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from postgate.clock import utcnow
from postgate.columns import BigId, Json, Timestamp


class Tenant(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True)
    name: str
    domain: str  # verified sending domain
    status: str = "active"  # TenantStatus
    status_reason: str = ""
    sms_routes: dict[str, str] | None = Field(default=None, sa_column=Column(Json))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    closed_at: datetime | None = Field(default=None, sa_type=Timestamp)  # purge 90 days on


class Campaign(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    external_id: str  # the producer's idempotency key
    channel: str
    kind: str
    topic: str
    list_ids: list[int] = Field(default_factory=list, sa_column=Column(Json))
    subject: str = ""
    text: str = Field(default="", sa_type=Text)
    html: str = Field(default="", sa_type=Text)
    from_email: str = ""
    from_name: str = ""
    sms_sender: str | None = None
    sms_policy: str | None = None  # unicode | transliterate
    sms_max_parts: int | None = None
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(Json))  # tenant's own
    scheduled_at: datetime | None = Field(default=None, sa_type=Timestamp)
    state: str = "planning"  # CampaignState
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(Json))  # content verdict
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    planned_at: datetime | None = Field(default=None, sa_type=Timestamp)
    finished_at: datetime | None = Field(default=None, sa_type=Timestamp)
    # a live planner pushes this forward; past it, the sweeper re-plans (a planner died)
    plan_lease_until: datetime | None = Field(default=None, sa_type=Timestamp)
    # the format of the references its mail carries (delivery.references): 1 legacy, 2 MAC'd
    ref_format: int = 2


class Delivery(SQLModel, table=True):
    """One recipient of one campaign; ``state`` moves queued -> sending -> sent|deferred|failed."""

    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_delivery_campaign_state", "campaign_id", "state"),
        Index("ix_delivery_due", "state", "next_attempt_at"),
        Index("ix_delivery_state_updated", "state", "updated_at"),
        Index("ix_delivery_tenant_contact", "tenant_id", "contact_id"),
        Index("ix_delivery_tenant_sent", "tenant_id", "sent_at"),  # breaker windows
    )
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id")
    campaign_id: int = Field(foreign_key="campaign.id")
    contact_id: int = Field(sa_type=BigId, foreign_key="contact.id")
    address: str
    state: str
    reason: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=Timestamp)
    lease_until: datetime | None = Field(default=None, sa_type=Timestamp)
    smtp_code: int | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    sent_at: datetime | None = Field(default=None, sa_type=Timestamp)
    complained_at: datetime | None = Field(default=None, sa_type=Timestamp)
    provider: str | None = None  # the gateway that took an SMS
    segments: int | None = None
    dlr_status: str | None = None  # the delivery report's normalised status
    delivered_at: datetime | None = Field(default=None, sa_type=Timestamp)


class FeedbackEvent(SQLModel, table=True):
    """One normalised signal (bounce, complaint, unsubscribe...), applied once."""

    __table_args__ = (
        UniqueConstraint("dedup_key"),
        # breaker windows and soft-bounce scoring
        Index("ix_feedback_tenant_kind_created", "tenant_id", "kind", "created_at"),
        Index("ix_feedback_tenant_address", "tenant_id", "address"),
    )
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int | None = Field(default=None, foreign_key="tenant.id", index=True)
    delivery_id: int | None = Field(default=None, sa_type=BigId)
    channel: str
    kind: str  # bounce | complaint | unsubscribe | stop | delay | auto_reply | unknown
    hard: bool | None = None
    address: str = ""
    status: str = ""  # RFC 3463 code when there is one
    source: str = ""  # smtp_reply | dsn | arf | webhook | dlr | form
    # how its delivery was established: signed | legacy | provider | unverified (never acted
    # upon, no tenant) | "" (our own observation: an SMTP reply, a form, an SMS report)
    verification: str = ""
    dkim: str = ""  # our DKIM signature on the quoted original: pass | fail | "" (none)
    dedup_key: str
    raw: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int | None = Field(default=None, foreign_key="tenant.id", index=True)
    actor: str
    action: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(Json))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class DeadLetter(SQLModel, table=True):
    """A queue message that could not be processed, kept with the error for an operator."""

    __tablename__ = "dead_letter"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    queue: str
    error: str = Field(sa_type=Text)
    body: str = Field(default="", sa_type=Text)
    body_bytes: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class SendingBlock(SQLModel, table=True):
    """A stop on a tenant's sending, by scope; active until ``cleared_at`` is set.

    ``scope``: bulk_email | bulk_sms | all. ``source``: operator (kill switch) or
    breaker (the complaint/bounce circuit breaker, with its numbers in ``detail``).
    """

    __tablename__ = "sending_block"
    __table_args__ = (Index("ix_sending_block_active", "tenant_id", "cleared_at"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id")
    scope: str
    source: str
    reason: str = Field(sa_type=Text)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(Json))
    actor: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    cleared_at: datetime | None = Field(default=None, sa_type=Timestamp)
    cleared_by: str | None = None
    clear_reason: str | None = None


class ApiKey(SQLModel, table=True):
    """A bearer key for the api: a tenant's (its own data only) or an operator's.

    Only the SHA-256 of the key is stored; the key itself is shown once at creation.
    """

    __tablename__ = "api_key"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int | None = Field(default=None, foreign_key="tenant.id", index=True)
    role: str  # tenant | operator
    name: str
    key_hash: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    revoked_at: datetime | None = Field(default=None, sa_type=Timestamp)
