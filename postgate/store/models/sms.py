"""The table that ties a gateway's message ids to our delivery rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import BigId, Timestamp


class SmsPart(SQLModel, table=True):
    """One message id a gateway gave us (one per part over SMPP, one per SMS over HTTP).

    Either side may arrive first: the sender writes ``delivery_id`` when the gateway
    accepts, the delivery report writes ``status``; the row with both is applied.
    """

    __tablename__ = "sms_part"
    __table_args__ = (UniqueConstraint("provider", "message_id"),)
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    provider: str
    message_id: str
    delivery_id: int | None = Field(default=None, sa_type=BigId, index=True)
    part: int = 1
    parts: int = 1
    status: str | None = None  # DlrStatus
    error: str | None = None
    done_at: datetime | None = Field(default=None, sa_type=Timestamp)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
