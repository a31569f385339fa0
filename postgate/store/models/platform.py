"""Tables of the platform side: what the operator sets up for a tenant beyond its row,
the CRM's own ids of contacts, and the report of every contact sync."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import BigId, Json, Timestamp


class TenantProfile(SQLModel, table=True):
    """The provisioning details of one tenant (its legal name is ``tenant.name``)."""

    __tablename__ = "tenant_profile"
    tenant_id: int = Field(foreign_key="tenant.id", primary_key=True)
    locale: str = "en"
    default_from_email: str = ""
    default_from_name: str = ""
    # max_lists, max_contacts: null means no limit
    limits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(Json))
    # the tenant's own promotional SMS send windows, ISO region (or "*") -> "HH:MM-HH:MM";
    # empty: the platform's SMS_SEND_WINDOW (core/sms/quiet_hours.py)
    sms_send_window: dict[str, str] = Field(default_factory=dict, sa_column=Column(Json))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class ContactRef(SQLModel, table=True):
    """The CRM's own id of a contact: contact syncs are idempotent by it."""

    __tablename__ = "contact_ref"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id")
    external_id: str
    contact_id: int = Field(sa_type=BigId, foreign_key="contact.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class ContactSync(SQLModel, table=True):
    """One contacts.v1 document applied (from the api or the queue) and its report."""

    __tablename__ = "contact_sync"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    source: str  # api | queue
    batch_id: str = ""  # the producer's name for the document, when it gave one
    actor: str = ""
    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dropped: int = 0
    consents: int = 0
    report: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(Json))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
