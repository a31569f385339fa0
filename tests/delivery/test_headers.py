"""Tenant-supplied headers: their own are added, identity and path headers are refused,
and a line break of any kind in a value is refused rather than cleaned."""

from __future__ import annotations

import json

import pytest

from postgate.core.headers import HeaderError, validate
from postgate.core.message import MessageError, parse_campaign
from postgate.core.rendering import CampaignContent, CompiledCampaign, RecipientData
from tests.delivery.test_rendering import compiled, parse

BREAKS = ["\r\n", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def test_own_headers_pass_in_order() -> None:
    assert validate(
        {
            "X-Campaign": " spring ",
            "Reply-To": "help@acme.example",
            "List-Id": "News <news.acme.example>",
        }
    ) == [
        ("X-Campaign", "spring"),
        ("Reply-To", "help@acme.example"),
        ("List-Id", "News <news.acme.example>"),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "From",
        "SENDER",
        "Return-Path",
        "Received",
        "Message-ID",
        "DKIM-Signature",
        "ARC-Seal",
        "ARC-Anything",
        "Authentication-Results",
        "Received-SPF",
        "To",
        "Bcc",
        "Subject",
        "Date",
        "Content-Type",
        "Content-Disposition",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Feedback-ID",
        "Resent-From",
        "MIME-Version",
    ],
)
def test_identity_path_and_postgate_headers_cannot_be_supplied(name: str) -> None:
    with pytest.raises(HeaderError, match="set by postgate"):
        validate({name: "x"})


@pytest.mark.parametrize("brk", BREAKS, ids=[hex(ord(b[-1])) for b in BREAKS])
def test_any_line_break_in_a_value_is_refused(brk: str) -> None:
    with pytest.raises(HeaderError, match="line break"):
        validate({"X-Tag": f"a{brk}Bcc: victim@x.example"})


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"X Tag": "a"}, "not a valid header name"),
        ({"X:Tag": "a"}, "not a valid header name"),
        ({"": "a"}, "not a valid header name"),
        ({"X-Ünicode": "a"}, "not a valid header name"),
        ({"X-Tag": "a\x00b"}, "control character"),
        ({"X-Tag": "a" * 901}, "longer than"),
        ({"X-Tag": "a", "x-tag": "b"}, "twice"),
        ({f"X-{i}": "a" for i in range(21)}, "at most"),
    ],
)
def test_bad_names_and_values_are_refused(headers: dict[str, str], why: str) -> None:
    with pytest.raises(HeaderError, match=why):
        validate(headers)


def test_the_campaign_message_refuses_them_with_a_clear_error() -> None:
    base = {
        "version": "campaign.v1",
        "tenant": "acme",
        "campaign_id": "c",
        "channel": "email",
        "kind": "promotional",
        "topic": "news",
        "audience": [1],
        "from": {"email": "news@acme.example"},
        "content": {"subject": "s", "text": "t"},
    }
    ok = parse_campaign(json.dumps(base | {"headers": {"X-Tag": "a"}}), 10**6)
    assert ok.headers == {"X-Tag": "a"}
    with pytest.raises(MessageError, match=r"headers: .*'From' is set by postgate"):
        parse_campaign(json.dumps(base | {"headers": {"From": "ceo@bank.example"}}), 10**6)
    with pytest.raises(MessageError, match=r"headers: .*line break"):
        parse_campaign(json.dumps(base | {"headers": {"X-Tag": "a\r\nBcc: v@x"}}), 10**6)


def test_rendered_mail_carries_them_once_and_keeps_ours() -> None:
    assert compiled().extra_headers == b""
    content = CampaignContent(
        9,
        "acme",
        "acme.example",
        "promotional",
        "Hi",
        "Hello\n",
        "",
        "news@acme.example",
        "Acme",
        (("X-Campaign", "spring"), ("Reply-To", "Ügyfélszolgálat <help@acme.example>")),
    )
    camp = CompiledCampaign(content, "secret", "https://pg.example", "bounces.example")
    msg = parse(camp.render(RecipientData(1, "a@x.example"), "d"))
    assert msg["X-Campaign"] == "spring"
    assert msg["Reply-To"].addresses[0].display_name == "Ügyfélszolgálat"
    assert msg.get_all("From") == ["Acme <news@acme.example>"]
    assert not msg.defects
