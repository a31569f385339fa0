"""The event stream's tables: the outbox every state change writes into in its own
transaction, the tenants' webhook endpoints with their cursors, and the events an
endpoint could not take within the retry window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import BigId, Json, Timestamp


class EventOutbox(SQLModel, table=True):
    """One ``event.v1``. ``seq`` is the stream's order, stamped by one writer at a time
    after the row's transaction committed, so a cursor over ``seq`` never skips a row
    committed late; ``published_at`` is when the event exchange took it."""

    __tablename__ = "event_outbox"
    __table_args__ = (
        Index("ix_event_outbox_tenant_seq", "tenant_id", "seq"),
        Index("ix_event_outbox_unpublished", "published_at", "seq"),
    )
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    event_id: str = Field(unique=True)  # stable: a uuid5 of what happened, for de-duplication
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True))
    tenant_id: int = Field(foreign_key="tenant.id")
    type: str  # delivery.sent, feedback.complaint, ...
    channel: str
    campaign_id: int | None = None
    delivery_id: int | None = Field(default=None, sa_type=BigId)
    recipient: str = ""
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(Json))
    occurred_at: datetime = Field(sa_type=Timestamp)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    published_at: datetime | None = Field(default=None, sa_type=Timestamp)


class WebhookEndpoint(SQLModel, table=True):
    """A tenant's URL that receives its events in ``seq`` order, signed with ``secret``."""

    __tablename__ = "webhook_endpoint"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    url: str = Field(sa_type=Text)
    types: list[str] = Field(default_factory=list, sa_column=Column(Json))  # empty: all
    description: str = ""
    secret: str
    state: str = "active"  # active | paused
    paused_reason: str = ""
    cursor: int = Field(default=0, sa_type=BigInteger)  # the last seq delivered (or skipped)
    attempts: int = 0  # consecutive failures of the events after the cursor
    failing_since: datetime | None = Field(default=None, sa_type=Timestamp)
    next_attempt_at: datetime | None = Field(default=None, sa_type=Timestamp)
    lease_until: datetime | None = Field(default=None, sa_type=Timestamp)
    last_status: int | None = None
    last_error: str = ""
    delivered: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class WebhookDeadLetter(SQLModel, table=True):
    """An event an endpoint did not take within the retry window (it stays in the outbox:
    the tenant can replay it from ``GET /v1/events``)."""

    __tablename__ = "webhook_dead_letter"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    endpoint_id: int = Field(foreign_key="webhook_endpoint.id", index=True)
    event_id: str
    seq: int = Field(sa_type=BigInteger)
    attempts: int = 0
    error: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
