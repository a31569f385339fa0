"""Hard or not: RFC 3463 enhanced status codes and the wordings servers really use.

The reason is read by ``feedback.mail.reasons`` (the text first, the status code when the
text is silent); hard is derived from it.

A hard bounce means the address itself is dead (5.1.1 bad mailbox, 5.1.2 bad domain,
5.1.6 moved, and their non-standard phrasings). A policy rejection (5.7.x: spam,
blocked, authentication, reputation) is permanent for this message but says nothing
about the address, so it is not hard. Full mailboxes and expiries are soft.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postgate.core.bounce_reasons import BounceReason, is_hard, reason, status_in

ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


POLICY_CLASS = "5.7"  # RFC 3463 X.7.X: security or policy status


def is_policy(status: str) -> bool:
    """A policy rejection (spam, blocked, authentication, reputation): permanent for this
    message, but it says nothing about the address — never a dead address."""
    return status.startswith(POLICY_CLASS)


@dataclass(frozen=True, slots=True)
class Verdict:
    hard: bool
    status: str  # the enhanced status code, "" when the reply had none
    reason: str = BounceReason.OTHER.value  # a core.bounce_reasons.BounceReason value


def classify_reply(code: int, text: str) -> Verdict:
    status = status_in(text)
    found = reason(status, text)
    return Verdict(is_hard(found), status, str(found))
