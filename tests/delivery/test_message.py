"""campaign.v1 validation: every malformed message gets a reason an operator can read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from postgate.core.message import MessageError, json_schema, parse_campaign

LIMIT = 100_000


def valid(**overrides: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "version": "campaign.v1",
        "tenant": "acme",
        "campaign_id": "c1",
        "channel": "email",
        "kind": "promotional",
        "topic": "news",
        "audience": [1],
        "from": {"email": "news@acme.example"},
        "content": {"subject": "Hi", "text": "Hello"},
    }
    msg.update(overrides)
    return msg


def test_a_valid_message_parses() -> None:
    msg = parse_campaign(json.dumps(valid()).encode(), LIMIT)
    assert msg.tenant == "acme" and msg.sender is not None and msg.sender.email


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[]", "JSON object"),
        (json.dumps(valid(version=None)).encode(), "unknown version"),
        (json.dumps(valid(audience=[])).encode(), "audience"),
        (json.dumps(valid(content={"subject": "", "text": "x"})).encode(), "subject"),
        (json.dumps(valid(content={"subject": "s"})).encode(), "text or html"),
        (json.dumps(valid(**{"from": {"email": "not an address"}})).encode(), "from"),
        (json.dumps(valid(schedule_at="2026-01-01T10:00:00")).encode(), "timezone"),
        (json.dumps(valid(kind="spam")).encode(), "kind"),
        (b" " * (LIMIT + 1), "payload too large"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        parse_campaign(body, LIMIT)


def test_sms_needs_text_but_no_sender() -> None:
    msg = valid(channel="sms", content={"text": "Sale!"})
    del msg["from"]
    assert parse_campaign(json.dumps(msg), LIMIT).channel == "sms"


def test_email_may_leave_from_to_the_tenants_default() -> None:
    msg = valid()
    del msg["from"]  # acceptance takes the tenant's default From, or dead-letters it
    assert parse_campaign(json.dumps(msg), LIMIT).sender is None


def test_the_schema_is_published_with_the_wire_names() -> None:
    schema = json_schema()
    assert "from" in schema["properties"] and "version" in schema["required"]
