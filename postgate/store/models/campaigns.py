"""Campaigns and their deliveries: one row per recipient, with the gate's decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import BigId, Json, Timestamp


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
    # {"hours": "HH:MM-HH:MM", "zone": ...} in each recipient's local time; {}: any hour
    send_window: dict[str, str] = Field(default_factory=dict, sa_column=Column(Json))
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
        Index("ix_delivery_source_sent", "source_ip", "sent_at"),  # source warm-up reviews
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
    source_ip: str | None = None  # the source address of an MX connection (MX_SOURCES)
    segments: int | None = None
    dlr_status: str | None = None  # the delivery report's normalised status
    delivered_at: datetime | None = Field(default=None, sa_type=Timestamp)
