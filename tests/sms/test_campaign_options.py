"""campaign.v1's ``sms`` options, and ``postgate sms inspect`` as a real command."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from postgate.core.message import MessageError, parse_campaign


def sms(**overrides: Any) -> bytes:
    msg: dict[str, Any] = {
        "version": "campaign.v1",
        "tenant": "acme",
        "campaign_id": "s1",
        "channel": "sms",
        "kind": "promotional",
        "topic": "news",
        "audience": [1],
        "content": {"text": "Hi"},
    }
    msg.update(overrides)
    return json.dumps(msg).encode()


def test_sms_options_parse_with_defaults() -> None:
    msg = parse_campaign(sms(sms={"sender": "Acme Kft."}), 100_000)
    assert msg.sms is not None
    assert (msg.sms.sender, msg.sms.policy, msg.sms.max_parts) == ("Acme Kft.", "unicode", 6)
    assert parse_campaign(sms(), 100_000).sms is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"sender": "AcmeWebshop24"}, "at most 11"),
        ({"sender": "Ácme"}, "at most 11"),
        ({"policy": "ascii"}, "sms.policy"),
        ({"max_parts": 0}, "sms.max_parts"),
        ({"max_parts": 11}, "sms.max_parts"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_sms_options_are_refused_with_a_reason(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(MessageError, match=expected):
        parse_campaign(sms(sms=options), 100_000)


def test_sms_options_on_an_email_campaign_are_refused() -> None:
    body = sms(
        channel="email",
        content={"subject": "S", "text": "T"},
        sms={"sender": "Acme"},
        **{"from": {"email": "a@acme.example"}},
    )
    with pytest.raises(MessageError, match="'sms' options are for sms campaigns"):
        parse_campaign(body, 100_000)


def _inspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postgate", "sms", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_inspect_prints_one_json_line() -> None:
    out = _inspect("Szép nyári ősz")
    assert out.returncode == 0
    assert json.loads(out.stdout) == {
        "encoding": "ucs2",
        "segments": 1,
        "chars": 14,
        "units": 14,
        "text": "Szép nyári ősz",
    }
    out = _inspect("Szép nyári ősz {€}", "--policy", "transliterate")
    assert json.loads(out.stdout) == {
        "encoding": "gsm7",
        "segments": 1,
        "chars": 18,
        "units": 21,
        "text": "Szép nyari ösz {€}",
    }
    assert out.stdout.count("\n") == 1


def test_inspect_refuses_a_text_over_the_parts_limit() -> None:
    out = _inspect("a" * 161, "--max-parts", "1")
    assert out.returncode == 2 and "2 gsm7 parts; at most 1" in out.stderr and not out.stdout


def test_inspect_estimates_the_cost_from_the_parts() -> None:
    out = _inspect("é" * 200, "--price-per-part", "0.16")
    assert json.loads(out.stdout)["segments"] == 2 and json.loads(out.stdout)["cost"] == 0.32
