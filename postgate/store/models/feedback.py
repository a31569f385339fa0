"""Feedback events: every bounce, complaint, unsubscribe and STOP, stored once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import BigId, Timestamp


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
    reason: str = ""  # a bounce's BounceReason (core.bounce_reasons); "" for other kinds
    dkim: str = ""  # our DKIM signature on the quoted original: pass | fail | "" (none)
    dedup_key: str
    raw: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
