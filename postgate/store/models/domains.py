"""The table of sending domains a tenant has claimed, verified and signs for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import Json, Timestamp


class SenderDomain(SQLModel, table=True):
    """A domain a tenant wants to send From. Usable once ``verified_at`` is set: the
    tenant published ``token`` in a DNS TXT record. Mail From it is DKIM-signed with
    the key here; ``dkim_public_key`` is the TXT value to publish at the selector."""

    __tablename__ = "sender_domain"
    __table_args__ = (UniqueConstraint("tenant_id", "domain"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    domain: str
    token: str
    verified_at: datetime | None = Field(default=None, sa_type=Timestamp)
    checked_at: datetime | None = Field(default=None, sa_type=Timestamp)
    last_error: str = ""
    dkim_selector: str
    dkim_algorithm: str  # rsa-sha256 | ed25519-sha256
    dkim_private_key: str = Field(sa_type=Text)
    dkim_public_key: str = Field(sa_type=Text)
    # a second key of the other algorithm (DKIM_DUAL: ed25519 + rsa, RFC 8463); "" if none
    dkim2_selector: str = ""
    dkim2_algorithm: str = ""
    dkim2_private_key: str = Field(default="", sa_type=Text)
    dkim2_public_key: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    # warm-up (core/warmup.py): a domain verified through the API starts "warming" at
    # stage 0; "done" (the default, and every domain that existed before warm-up): no cap
    warmup_state: str = "done"
    warmup_stage: int = 0
    warmup_reason: str = ""
    warmup_reviewed_at: datetime | None = Field(default=None, sa_type=Timestamp)


class DomainPreflight(SQLModel, table=True):
    """The latest authentication preflight of a sender domain (``tenants/preflight.py``):
    each check's verdict and reason in ``checks`` (spf, dmarc, dkim required; mta_sts and
    tls_rpt reported), and the exact DNS records to publish in ``records``."""

    __tablename__ = "domain_preflight"
    sender_domain_id: int = Field(foreign_key="sender_domain.id", primary_key=True)
    tenant_id: int = Field(foreign_key="tenant.id", index=True)
    domain: str
    checked_at: datetime = Field(sa_type=Timestamp)
    passed: bool
    checks: dict[str, Any] = Field(default_factory=dict, sa_column=Column(Json))
    records: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(Json))


class WarmupDay(SQLModel, table=True):
    """Messages a warming domain sent (or has taken turns for) to one provider group on
    one UTC day: the count its cap is held against, shared by every sender."""

    __tablename__ = "warmup_day"
    sender_domain_id: int = Field(foreign_key="sender_domain.id", primary_key=True)
    group: str = Field(primary_key=True)
    day: str = Field(primary_key=True)  # YYYY-MM-DD
    sent: int = 0


class SourceAddress(SQLModel, table=True):
    """A source IP address direct-to-MX connections are made from (``MX_SOURCES``). One
    configured with ``warmup`` starts on a ramp the first time a sender sees it (the same
    schedule as domains, ``core/warmup.py``); "done": no cap."""

    __tablename__ = "source_address"
    address: str = Field(primary_key=True)
    warmup_state: str = "done"
    warmup_stage: int = 0
    warmup_reason: str = ""
    warmup_reviewed_at: datetime | None = Field(default=None, sa_type=Timestamp)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)


class SourceDay(SQLModel, table=True):
    """Messages a warming source address sent (or took turns for) to one provider group
    on one UTC day, shared by every sender."""

    __tablename__ = "source_day"
    address: str = Field(foreign_key="source_address.address", primary_key=True)
    group: str = Field(primary_key=True)
    day: str = Field(primary_key=True)  # YYYY-MM-DD
    sent: int = 0
