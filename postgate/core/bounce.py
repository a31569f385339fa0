"""Hard or not: RFC 3463 enhanced status codes and the wordings servers really use.

A hard bounce means the address itself is dead (5.1.1 bad mailbox, 5.1.2 bad domain,
5.1.6 moved, and their non-standard phrasings). A policy rejection (5.7.x: spam,
blocked, authentication, reputation) is permanent for this message but says nothing
about the address, so it is not hard. Full mailboxes and expiries are soft.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
HARD_STATUSES = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10"})
DEAD_ADDRESS = re.compile(
    r"user unknown|unknown user|no such user|no such (mailbox|recipient)|mailbox (not found|"
    r"unavailable|does not exist)|recipient (address rejected|not found|unknown)|"
    r"does not exist|account (has been )?(disabled|closed|deactivated)|invalid (mailbox|"
    r"recipient)|address rejected|unrouteable|host or domain name not found|"
    r"domain (not found|does not exist)",
    re.IGNORECASE,
)
POLICY = re.compile(
    r"spam|blocked|block list|blacklist|reputation|policy|authenticat|dmarc|spf|dkim|"
    r"rate limit|too many",
    re.IGNORECASE,
)


POLICY_CLASS = "5.7"  # RFC 3463 X.7.X: security or policy status


def is_policy(status: str) -> bool:
    """A policy rejection (spam, blocked, authentication, reputation): permanent for this
    message, but it says nothing about the address — never a dead address."""
    return status.startswith(POLICY_CLASS)


@dataclass(frozen=True, slots=True)
class Verdict:
    hard: bool
    status: str  # the enhanced status code, "" when the reply had none


def classify_reply(code: int, text: str) -> Verdict:
    match = ENHANCED.search(text)
    status = ".".join(match.groups()) if match else ""
    if code < 500:
        return Verdict(False, status)
    if status:
        if is_policy(status) or status in ("5.2.2", "5.3.4", "5.2.3"):
            return Verdict(False, status)
        if status in HARD_STATUSES:
            return Verdict(True, status)
    if POLICY.search(text):
        return Verdict(False, status)
    return Verdict(bool(DEAD_ADDRESS.search(text)), status)
