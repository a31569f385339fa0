"""What a parser makes of one incoming signal (pure): the one shape every source's parser
returns — returned mail (``feedback.mail``), a provider webhook (``feedback.webhook``) —
before ``feedback.apply`` decides which delivery it may act on and stores it."""

from __future__ import annotations

from dataclasses import dataclass, field

from postgate.core import tokens
from postgate.core.states import FeedbackKind
from postgate.core.tokens import MAX_ROW_ID, row_id

__all__ = ["MAX_ROW_ID", "Feedback", "row_id"]


@dataclass(frozen=True, slots=True)
class Feedback:
    kind: FeedbackKind  # bounce | complaint | auto_reply | unsubscribe | unknown
    hard: bool | None = None
    recipients: tuple[str, ...] = ()
    status: str = ""
    ref: tokens.Ref | None = None  # from a VERP return path, unsubscribe token or Message-ID
    delivery_id: int | None = None  # named by an authenticated provider (webhooks)
    provider_signed: bool = False  # came in a signed provider webhook: its references hold
    action: str = ""  # DSN action: failed | delayed
    detail: str = ""
    reason: str = ""  # a bounce's core.bounce_reasons.BounceReason value
    extra: dict[str, str] = field(default_factory=dict)
