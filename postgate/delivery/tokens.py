"""Signed references carried in mail: VERP return paths and unsubscribe tokens.

Both embed a delivery id and a truncated HMAC-SHA256 so that a forged bounce or a
guessed unsubscribe link cannot act on someone else's delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import re

VERP_LOCAL = re.compile(r"^b\+(\d+)-([0-9a-f]{12})$")
MAILTO_LOCAL = re.compile(r"^unsubscribe\+(\d{1,19}\.[0-9a-f]{32})$", re.IGNORECASE)


def _mac(secret: str, purpose: str, delivery_id: int, length: int) -> str:
    msg = f"{purpose}:{delivery_id}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:length]


def verp_address(secret: str, delivery_id: int, domain: str) -> str:
    return f"b+{delivery_id}-{_mac(secret, 'verp', delivery_id, 12)}@{domain}"


def verp_decode(secret: str, address: str) -> int | None:
    """The delivery id a VERP return path stands for, or None when it is not ours."""
    local = address.rsplit("@", 1)[0].strip("<>").lower()
    match = VERP_LOCAL.match(local)
    if not match:
        return None
    delivery_id = int(match.group(1))
    expected = _mac(secret, "verp", delivery_id, 12)
    return delivery_id if hmac.compare_digest(expected, match.group(2)) else None


def unsubscribe_token(secret: str, delivery_id: int) -> str:
    return f"{delivery_id}.{_mac(secret, 'unsub', delivery_id, 32)}"


def unsubscribe_decode(secret: str, token: str) -> int | None:
    head, _, mac = token.partition(".")
    if not (head.isascii() and head.isdigit()) or len(head) > 19:
        return None
    delivery_id = int(head)
    expected = _mac(secret, "unsub", delivery_id, 32)
    return delivery_id if hmac.compare_digest(expected, mac) else None


def mailto_token(address: str) -> str | None:
    """The token in an ``unsubscribe+TOKEN@bounce-domain`` address (the List-Unsubscribe
    mailto), not yet verified: pass it to :func:`unsubscribe_decode`."""
    local = address.strip().strip("<>").rsplit("@", 1)[0]
    match = MAILTO_LOCAL.match(local)
    return match.group(1).lower() if match else None
