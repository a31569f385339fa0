"""Tenants, their sending blocks, api keys and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import BigId, Json, Timestamp


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


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int | None = Field(default=None, foreign_key="tenant.id", index=True)
    actor: str
    action: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(Json))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
