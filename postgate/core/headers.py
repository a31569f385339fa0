"""Headers a tenant may add to its mail (pure).

A tenant can add its own headers (``X-Campaign``, ``Reply-To``, ``Precedence`` …) but
never one that identifies the sender or the path the mail took, nor one postgate
writes itself, and no value may contain a line break of any kind: a value that could
start a new header line is refused, not cleaned, so the tenant sees why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_HEADERS = 20
MAX_VALUE = 900
_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 field name: printable ASCII but ':'
_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
PROTECTED = frozenset(
    {
        # who sent it and how it travelled
        "from",
        "sender",
        "return-path",
        "received",
        "message-id",
        "resent-from",
        "resent-sender",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "resent-date",
        "resent-message-id",
        "dkim-signature",
        "domainkey-signature",
        "authentication-results",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "received-spf",
        "x-original-from",
        "delivered-to",
        "return-receipt-to",
        # what postgate writes itself
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "feedback-id",
    }
)
_PROTECTED_PREFIXES = ("arc-", "dkim-", "content-", "resent-")


class HeaderError(ValueError):
    """A tenant header that cannot be sent; the text names it and says why."""


def is_protected(name: str) -> bool:
    lower = name.lower()
    return lower in PROTECTED or lower.startswith(_PROTECTED_PREFIXES)


def validate(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The headers in order, or :class:`HeaderError` for the first one that is refused."""
    if len(headers) > MAX_HEADERS:
        raise HeaderError(f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    out = []
    for name, value in headers.items():
        if not _NAME.match(name):
            raise HeaderError(f"{name!r} is not a valid header name")
        if is_protected(name):
            raise HeaderError(f"header {name!r} is set by postgate and cannot be supplied")
        if name.lower() in seen:
            raise HeaderError(f"header {name!r} given twice")
        seen.add(name.lower())
        if any(ch in _BREAKS for ch in value):
            raise HeaderError(f"header {name!r} contains a line break")
        if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
            raise HeaderError(f"header {name!r} contains a control character")
        if len(value) > MAX_VALUE:
            raise HeaderError(f"header {name!r} is longer than {MAX_VALUE} characters")
        out.append((name, value.strip()))
    return out
