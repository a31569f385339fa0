from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from postgate.core import tokens
from postgate.core.retry import next_attempt

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_backoff_doubles_up_to_the_cap_and_stops_at_the_deadline() -> None:
    delays = [
        (next_attempt(n, T0, T0, 60, 600, 86400) - T0).total_seconds()  # type: ignore[operator]
        for n in range(1, 7)
    ]
    assert delays == [60, 120, 240, 480, 600, 600]
    near = T0 + timedelta(seconds=86400 - 10)
    assert next_attempt(3, T0, near, 60, 600, 86400) == T0 + timedelta(seconds=86400)
    assert next_attempt(3, T0, T0 + timedelta(days=2), 60, 600, 86400) is None


REF = tokens.Ref(4711, 12, 3)


def test_verp_round_trip_and_forgery() -> None:
    address = tokens.verp_address("k", REF, "bounces.example")
    assert tokens.verp_decode("k", address) == REF
    assert tokens.verp_decode("k", address.upper()) == REF  # an MTA that folds case
    assert tokens.verp_decode("k", address.replace("4711", "4712")) is None
    assert tokens.verp_decode("k", address.replace(".12.", ".13.")) is None  # another campaign
    assert tokens.verp_decode("k", address.replace(".3-", ".4-")) is None  # another tenant
    assert tokens.verp_decode("other", address) is None
    assert tokens.verp_decode("k", "someone@else.example") is None
    assert len(address.split("@")[0]) <= 64  # an SMTP local part


def test_message_id_round_trip_and_forgery() -> None:
    mid = tokens.message_id("k", REF, "acme.example")
    assert tokens.message_id_decode("k", f"In-Reply-To: {mid}") == REF
    assert tokens.message_id_decode("k", mid.replace("<4711.", "<4712.")) is None
    assert tokens.message_id_decode("other", mid) is None
    legacy = tokens.message_id_decode("k", "<4711.12@acme.example>")
    assert legacy == tokens.Ref(4711, 12, None, legacy=True, signed=False)


def test_unsubscribe_token_round_trip_and_forgery() -> None:
    token = tokens.unsubscribe_token("k", REF)
    assert tokens.unsubscribe_decode("k", token) == REF
    assert tokens.unsubscribe_decode("k", "4712" + token[4:]) is None
    assert tokens.unsubscribe_decode("k", "garbage") is None
    assert len(token.rsplit(".", 1)[1]) * 5 >= 128
    assert len(f"unsubscribe+{token}") <= 64  # it is the local part of the mailto, too


def test_rotation_new_key_signs_old_keys_still_verify() -> None:
    old = tokens.verp_address("old-key", REF, "b.example")
    new = tokens.verp_address(("new-key", "old-key"), REF, "b.example")
    assert new != old and new == tokens.verp_address("new-key", REF, "b.example")
    assert tokens.verp_decode(("new-key", "old-key"), old) == REF
    assert tokens.verp_decode(("new-key", "old-key"), new) == REF
    assert tokens.verp_decode("new-key", old) is None  # retired for good


def legacy_mac(key: str, purpose: str, delivery_id: int, length: int) -> str:
    """How references were signed before they covered the campaign and tenant."""
    msg = f"{purpose}:{delivery_id}".encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()[:length]


def test_legacy_references_decode_as_legacy() -> None:
    verp = f"b+4711-{legacy_mac('k', 'verp', 4711, 12)}@bounces.example"
    assert tokens.verp_decode("k", verp) == tokens.Ref(4711, None, None, legacy=True)
    assert tokens.verp_decode("other", verp) is None
    token = f"4711.{legacy_mac('k', 'unsub', 4711, 32)}"
    assert tokens.unsubscribe_decode("k", token) == tokens.Ref(4711, None, None, legacy=True)
    assert tokens.unsubscribe_decode("k", token.replace("4711", "4712")) is None
