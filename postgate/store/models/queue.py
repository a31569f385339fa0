"""Queue messages that could not be processed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import BigId, Timestamp


class DeadLetter(SQLModel, table=True):
    """A queue message that could not be processed, kept with the error for an operator."""

    __tablename__ = "dead_letter"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    queue: str
    error: str = Field(sa_type=Text)
    body: str = Field(default="", sa_type=Text)
    body_bytes: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
