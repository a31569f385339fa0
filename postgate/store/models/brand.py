"""What a tenant shows visitors: its brand, and its topics in words, per language."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import Timestamp


class TenantBrand(SQLModel, table=True):
    """How a tenant's pages and mails present it; one row per tenant, all optional."""

    __tablename__ = "tenant_brand"
    tenant_id: int = Field(foreign_key="tenant.id", primary_key=True)
    display_name: str = ""  # the tenant's name when empty
    logo_url: str = ""  # https only
    accent_color: str = ""  # #rrggbb
    website_url: str = ""
    privacy_url: str = ""
    locale: str = ""  # the language of its pages and mails; "" = the visitor's
    time_zone: str = "Europe/Budapest"
    allow_resubscribe: bool = True  # the preference centre offers double opt-in again
    updated_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class TopicLabel(SQLModel, table=True):
    """A topic's name and description in one language, as visitors read it."""

    __tablename__ = "topic_label"
    __table_args__ = (UniqueConstraint("tenant_id", "topic", "locale"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    topic: str
    locale: str
    name: str
    description: str = Field(default="", sa_type=Text)
