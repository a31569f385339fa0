"""Tables of the consent side. Every row belongs to exactly one tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import BigId, Json, Timestamp


class Contact(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        UniqueConstraint("tenant_id", "phone"),
    )
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    email: str | None = None  # normalised by email-validator
    phone: str | None = None  # E.164
    name: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(Json))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    last_activity_at: datetime | None = Field(default=None, sa_type=Timestamp)
    erased_at: datetime | None = Field(default=None, sa_type=Timestamp)


class MailingList(SQLModel, table=True):
    __tablename__ = "mailing_list"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    name: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class ListMember(SQLModel, table=True):
    __tablename__ = "list_member"
    __table_args__ = (Index("ix_list_member_list_contact", "list_id", "contact_id"),)
    list_id: int = Field(foreign_key="mailing_list.id", primary_key=True)
    contact_id: int = Field(sa_type=BigId, foreign_key="contact.id", primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)


class Consent(SQLModel, table=True):
    """One consent record. Append-only: a confirmation or a withdrawal is a new row."""

    __table_args__ = (Index("ix_consent_lookup", "tenant_id", "channel", "topic", "contact_id"),)
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id")
    contact_id: int = Field(sa_type=BigId, foreign_key="contact.id")
    channel: str
    topic: str
    source: str  # signup_form | written_consent | purchase | event | import
    status: str  # pending | confirmed | withdrawn
    consented_at: datetime = Field(sa_type=Timestamp)  # when the person agreed
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    # proof
    form_id: int | None = None
    consent_text_hash: str | None = None
    consent_text_version: str | None = None
    signup_ip: str | None = None
    signup_user_agent: str | None = None
    confirmed_at: datetime | None = Field(default=None, sa_type=Timestamp)
    confirm_ip: str | None = None
    confirm_user_agent: str | None = None
    evidence_ref: str | None = None
    marketing_checkbox: bool | None = None  # purchases: was the box left ticked


class Suppression(SQLModel, table=True):
    """An address this tenant must not mail on this channel, and why."""

    __table_args__ = (UniqueConstraint("tenant_id", "channel", "address"),)
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id")
    channel: str
    address: str
    reason: str  # unsubscribe | complaint | hard_bounce | stop | manual | erasure
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    detail: str = ""


class SignupForm(SQLModel, table=True):
    """A tenant's public signup form. ``public_id`` is random: ids are not enumerable."""

    __tablename__ = "signup_form"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    public_id: str = Field(unique=True)
    name: str
    topic: str
    list_id: int = Field(foreign_key="mailing_list.id")
    channels: list[str] = Field(default_factory=lambda: ["email"], sa_column=Column(Json))
    consent_text: str = Field(sa_type=Text)
    consent_text_version: str
    consent_text_hash: str
    success_message: str = ""
    confirmed_message: str = ""
    locale: str = ""  # the language of its page and mails; "" = the tenant's, the visitor's
    # sites whose scripts may post to it (CORS), e.g. "https://shop.example"
    allowed_origins: list[str] = Field(default_factory=list, sa_column=Column(Json))
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class PendingSignup(SQLModel, table=True):
    """A form post waiting for its double opt-in confirmation. The token is stored hashed."""

    __tablename__ = "pending_signup"
    __table_args__ = (Index("ix_pending_signup_address", "tenant_id", "address", "created_at"),)
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id")
    form_id: int = Field(foreign_key="signup_form.id")
    contact_id: int = Field(sa_type=BigId, foreign_key="contact.id")
    channel: str
    address: str
    name: str = ""  # what the visitor typed; applied at confirmation, never mailed before
    token_hash: str = Field(unique=True)
    consent_text_hash: str
    consent_text_version: str
    signup_ip: str = ""
    signup_user_agent: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    expires_at: datetime = Field(sa_type=Timestamp)
    used_at: datetime | None = Field(default=None, sa_type=Timestamp)


class ListImport(SQLModel, table=True):
    """One list import with its provenance declaration and its per-row report."""

    __tablename__ = "list_import"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    list_id: int = Field(foreign_key="mailing_list.id")
    source: str
    collected_at: datetime = Field(sa_type=Timestamp)
    evidence_ref: str
    actor: str = ""
    rows_total: int = 0
    rows_imported: int = 0
    rows_dropped: int = 0
    report: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(Json))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
