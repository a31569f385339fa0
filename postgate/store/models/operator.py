"""The operator page's login sessions."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from postgate.core.clock import utcnow
from postgate.store.columns import Timestamp


class OperatorSession(SQLModel, table=True):
    """A browser logged in with an operator key. Only the token's SHA-256 is kept; the
    session ends at ``expires_at``, at logout, or when its key is revoked."""

    __tablename__ = "operator_session"
    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(foreign_key="api_key.id", index=True)
    token_hash: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Timestamp)
    expires_at: datetime = Field(sa_type=Timestamp)
    ended_at: datetime | None = Field(default=None, sa_type=Timestamp)
