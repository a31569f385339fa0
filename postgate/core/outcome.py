"""What one attempt to hand a message over came to: sent, deferred or failed (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"  # temporary: retry later
    FAILED = "failed"  # permanent for this recipient


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    code: int | None = None
    detail: str = ""
    unknown: bool = False  # the connection dropped: the message may have been accepted
    # deferred by our own pacing (traffic shaping), not by the destination: try again about
    # this many seconds from now instead of after the usual backoff
    retry_after: float | None = None


def reply_outcome(code: int, detail: str) -> SendResult:
    """An SMTP reply as an outcome: 2xx sent, 4xx deferred (retry), 5xx failed."""
    if 200 <= code < 300:
        return SendResult(Outcome.SENT, code, detail)
    if 400 <= code < 500:
        return SendResult(Outcome.DEFERRED, code, detail)
    return SendResult(Outcome.FAILED, code, detail)
