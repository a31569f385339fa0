"""Signed references carried in mail: VERP return paths, Message-IDs, unsubscribe tokens.

Every reference that comes back to us names a delivery *and* the campaign and tenant it
belongs to, with a truncated HMAC-SHA256 over all three under ``SECRET_KEY``:

- return path ``b+<delivery>.<campaign>.<tenant>-<mac>@BOUNCE_DOMAIN``
- Message-ID ``<<delivery>.<campaign>.<tenant>.<mac>@tenant-domain>``
- unsubscribe token ``<delivery>.<campaign>.<tenant>.<mac>`` (``/u/TOKEN`` and the
  ``unsubscribe+TOKEN@BOUNCE_DOMAIN`` mailto)

A MAC is 26 base32 characters (130 bits), lowercase so that an MTA that folds case
keeps it valid, and a different purpose string per reference kind, so one kind can
never stand for another. A stranger who can guess ids still cannot compute one; the
store then checks that the delivery row really belongs to that campaign and tenant, so
a reused id (SQLite can reuse the ids of deleted rows) never matches an old reference.

Keys rotate: ``keys[0]`` (``SECRET_KEY``) signs, and every key in ``keys``
(``SECRET_KEYS_PREVIOUS`` too) verifies.

References issued before this format (``b+<delivery>-<hex12>``, ``<delivery.campaign@…>``,
``<delivery>.<hex32>``) decode as *legacy*: the store accepts them only for campaigns
created before the format changed and only for a bounded window (see
``feedback_store``); a legacy Message-ID carries no MAC at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

Keys = str | Sequence[str]
MAC_CHARS = 26
_ID = r"[0-9]{1,19}"  # ASCII digits only: int() refuses others
VERP_LOCAL = re.compile(rf"^b\+({_ID})\.({_ID})\.({_ID})-([a-z2-7]{{{MAC_CHARS}}})$")
LEGACY_VERP_LOCAL = re.compile(rf"^b\+({_ID})-([0-9a-f]{{12}})$")
TOKEN = re.compile(rf"^({_ID})\.({_ID})\.({_ID})\.([a-z2-7]{{{MAC_CHARS}}})$")
LEGACY_TOKEN = re.compile(rf"^({_ID})\.([0-9a-f]{{32}})$")
MESSAGE_ID = re.compile(
    rf"<({_ID})\.({_ID})\.({_ID})\.([a-z2-7]{{{MAC_CHARS}}})@[^>\s]+>", re.IGNORECASE
)
LEGACY_MESSAGE_ID = re.compile(rf"<({_ID})\.({_ID})@[^>\s]+>")
MAILTO_LOCAL = re.compile(
    rf"^unsubscribe\+((?:{_ID}\.){{3}}[a-z2-7]{{{MAC_CHARS}}}|{_ID}\.[0-9a-f]{{32}})$",
    re.IGNORECASE,
)
MAX_ROW_ID = 2**63 - 1  # BIGINT: a larger id in a reply must not reach a query


@dataclass(frozen=True, slots=True)
class Ref:
    """Which delivery a reference stands for. ``campaign_id``/``tenant_id`` are None only
    for legacy references, which did not carry them."""

    delivery_id: int
    campaign_id: int | None
    tenant_id: int | None
    legacy: bool = False  # an old-format reference (see the module docstring)
    signed: bool = True  # False: a legacy Message-ID, which never carried a MAC


def _keys(keys: Keys) -> tuple[str, ...]:
    return (keys,) if isinstance(keys, str) else tuple(keys)


@lru_cache(maxsize=16)
def _keyed(key: str) -> Any:
    """An HMAC-SHA256 with the key already absorbed: each MAC copies it (per message, the
    sender makes three)."""
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


def _mac(key: str, purpose: str, delivery_id: int, campaign_id: int, tenant_id: int) -> str:
    mac = _keyed(key).copy()
    mac.update(f"{purpose}:{tenant_id}:{campaign_id}:{delivery_id}".encode())
    # 26 base32 characters are the first 130 bits: 20 bytes of the digest encode them
    return base64.b32encode(mac.digest()[:20]).decode().lower()[:MAC_CHARS]


def _legacy_mac(key: str, purpose: str, delivery_id: int, length: int) -> str:
    msg = f"{purpose}:{delivery_id}".encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()[:length]


def _ids(*texts: str) -> tuple[int, ...] | None:
    values = tuple(int(x) for x in texts)
    return values if all(v <= MAX_ROW_ID for v in values) else None


def _signed(keys: Keys, purpose: str, parts: tuple[str, ...], mac: str) -> Ref | None:
    ids = _ids(*parts)
    if ids is None:
        return None
    delivery_id, campaign_id, tenant_id = ids
    for key in _keys(keys):
        expected = _mac(key, purpose, delivery_id, campaign_id, tenant_id)
        if hmac.compare_digest(expected.encode(), mac.lower().encode()):
            return Ref(delivery_id, campaign_id, tenant_id)
    return None


def _legacy(keys: Keys, purpose: str, head: str, mac: str) -> Ref | None:
    ids = _ids(head)
    if ids is None:
        return None
    for key in _keys(keys):
        if hmac.compare_digest(
            _legacy_mac(key, purpose, ids[0], len(mac)).encode(), mac.lower().encode()
        ):
            return Ref(ids[0], None, None, legacy=True)
    return None


def _triple(ref: Ref) -> tuple[int, int, int]:
    if ref.campaign_id is None or ref.tenant_id is None:
        raise ValueError("a new reference needs the delivery, campaign and tenant")
    return ref.delivery_id, ref.campaign_id, ref.tenant_id


def verp_address(keys: Keys, ref: Ref, domain: str) -> str:
    d, c, t = _triple(ref)
    return f"b+{d}.{c}.{t}-{_mac(_keys(keys)[0], 'verp', d, c, t)}@{domain}"


def verp_decode(keys: Keys, address: str) -> Ref | None:
    """The delivery a VERP return path stands for, or None when it is not ours."""
    local = address.strip().strip("<>").rsplit("@", 1)[0].lower()
    if match := VERP_LOCAL.match(local):
        return _signed(keys, "verp", match.groups()[:3], match.group(4))
    if match := LEGACY_VERP_LOCAL.match(local):
        return _legacy(keys, "verp", match.group(1), match.group(2))
    return None


def message_id(keys: Keys, ref: Ref, domain: str) -> str:
    d, c, t = _triple(ref)
    return f"<{d}.{c}.{t}.{_mac(_keys(keys)[0], 'msgid', d, c, t)}@{domain}>"


def message_id_decode(keys: Keys, text: str) -> Ref | None:
    """The delivery our Message-ID anywhere in ``text`` stands for: a signed one first,
    else a legacy ``<delivery.campaign@domain>`` (``signed=False``); None otherwise."""
    for match in MESSAGE_ID.finditer(text):
        if ref := _signed(keys, "msgid", match.groups()[:3], match.group(4)):
            return ref
    for match in LEGACY_MESSAGE_ID.finditer(text):
        if ids := _ids(match.group(1), match.group(2)):
            return Ref(ids[0], ids[1], None, legacy=True, signed=False)
    return None


def unsubscribe_token(keys: Keys, ref: Ref) -> str:
    d, c, t = _triple(ref)
    return f"{d}.{c}.{t}.{_mac(_keys(keys)[0], 'unsub', d, c, t)}"


def unsubscribe_decode(keys: Keys, token: str) -> Ref | None:
    token = token.strip()
    if not token.isascii():
        return None
    if match := TOKEN.match(token.lower()):
        return _signed(keys, "unsub", match.groups()[:3], match.group(4))
    if match := LEGACY_TOKEN.match(token.lower()):
        return _legacy(keys, "unsub", match.group(1), match.group(2))
    return None


def mailto_token(address: str) -> str | None:
    """The token in an ``unsubscribe+TOKEN@bounce-domain`` address (the List-Unsubscribe
    mailto), not yet verified: pass it to :func:`unsubscribe_decode`."""
    local = address.strip().strip("<>").rsplit("@", 1)[0]
    match = MAILTO_LOCAL.match(local)
    return match.group(1).lower() if match else None


def row_id(text: str) -> int | None:
    """A row id written in ASCII digits that fits the column, else None; never raises."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_ROW_ID:
        return None
    return int(text)
