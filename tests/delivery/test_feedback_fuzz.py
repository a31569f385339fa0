"""Fuzzing the feedback parsers: mail sent back to the bounce domain (DSN, ARF, anything) and
provider webhook events. Whatever arrives, the parser answers with a Feedback of a known
kind, never an exception, and quickly. Inputs are mutations of the verbatim fixtures
(byte flips, cuts, splices, repeated and rewritten headers), generated reports with hostile
field values, and arbitrary bytes or JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postgate.feedback.event import MAX_ROW_ID
from postgate.feedback.mail import parse
from postgate.feedback.webhook import normalise, signature, verify

FIXTURES = Path(__file__).parent.parent / "fixtures" / "feedback"
MAILS = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))] + [
    p.read_bytes() for p in sorted((FIXTURES / "flufl").glob("*.txt"))
]
SECRET = "fixture-secret"
KINDS = {"bounce", "complaint", "auto_reply", "unsubscribe", "unknown"}
QUICK_S = 1.0  # per input, on a busy 2-core machine; typical is a few milliseconds
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

hostile_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200
) | st.sampled_from(
    [
        "",
        "\r\n",
        "\n\n",
        ";",
        "rfc822;",
        "<>",
        "5.1.1",
        "9.9.9",
        "x" * 5000,
        "=?utf-8?q?=0D=0ABcc:_x@y?=",
        "\u2028",
        "\x00",
        "rfc822; <" * 50,
        "<9999999999999999999.1@x>",
        "<1.\u0661\u0662@x>",
        "<²³.1@x>",
    ]
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(MAILS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "truncate", "header"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 400))]
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=200))
        elif op == "repeat":
            chunk = bytes(data[at : at + draw(st.integers(1, 300))])
            data[at:at] = chunk * draw(st.integers(1, 20))
        elif op == "truncate":
            del data[at:]
        else:
            name = draw(
                st.sampled_from(
                    [
                        b"Content-Type",
                        b"Action",
                        b"Status",
                        b"Final-Recipient",
                        b"Diagnostic-Code",
                        b"Feedback-Type",
                        b"Message-ID",
                        b"Original-Rcpt-To",
                        b"Auto-Submitted",
                        b"Subject",
                    ]
                )
            )
            value = draw(hostile_text).encode("utf-8", "surrogateescape")
            data[at:at] = b"\n" + name + b": " + value + b"\n"
    return bytes(data)


@st.composite
def report(draw: st.DrawFn) -> bytes:
    """A multipart/report (DSN or ARF) whose fields are hostile."""
    kind = draw(st.sampled_from(["delivery-status", "feedback-report"]))
    fields = "".join(
        f"{name}: {draw(hostile_text)}\n"
        for name in draw(
            st.lists(
                st.sampled_from(
                    [
                        "Action",
                        "Status",
                        "Final-Recipient",
                        "Original-Recipient",
                        "Diagnostic-Code",
                        "Feedback-Type",
                        "User-Agent",
                        "Original-Rcpt-To",
                        "Reporting-MTA",
                    ]
                ),
                max_size=12,
            )
        )
    )
    groups = draw(st.integers(0, 30))
    quoted = draw(st.sampled_from(["message/rfc822", "text/rfc822-headers"]))
    body = (
        "From: MAILER-DAEMON@mx.example\nTo: b+42-0123456789ab@bounces.example\n"
        f"Subject: {draw(hostile_text)}\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type={kind}; boundary="BB"\n\n'
        f"--BB\nContent-Type: text/plain\n\n{draw(hostile_text)}\n"
        f"--BB\nContent-Type: message/{kind}\n\n"
        + ("Reporting-MTA: dns; mx\n\n" + fields)
        * groups
        + f"\n--BB\nContent-Type: {quoted}"
        f"\n\nMessage-ID: {draw(hostile_text)}\nTo: {draw(hostile_text)}\n\n"
        + ("--BB--\n" if draw(st.booleans()) else "")
    )
    return body.encode("utf-8", "surrogateescape")


def assert_parses(raw: bytes, rcpts: tuple[str, ...] = ()) -> None:
    started = time.perf_counter()
    feedback = parse(raw, SECRET, rcpts)
    took = time.perf_counter() - started
    assert feedback.kind in KINDS
    assert feedback.hard in (True, False, None)
    assert all(isinstance(a, str) for a in feedback.recipients)
    ref = feedback.ref
    assert (
        ref is None
        or max(i or 0 for i in (ref.delivery_id, ref.campaign_id, ref.tenant_id)) <= MAX_ROW_ID
    )
    assert took < QUICK_S, f"{took:.2f}s for {len(raw)} bytes"


def test_the_fixtures_themselves_parse() -> None:
    for raw in MAILS:
        assert_parses(raw)


@FUZZ
@given(mutated())
def test_mutated_fixture_mail_never_raises(raw: bytes) -> None:
    assert_parses(raw)


@FUZZ
@given(report(), st.lists(hostile_text, max_size=3))
def test_generated_reports_with_hostile_fields_never_raise(raw: bytes, rcpts: list[str]) -> None:
    assert_parses(raw, tuple(rcpts))


@FUZZ
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert_parses(raw)


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
event_value = json_value | st.sampled_from(
    ["²", "١٢", "9" * 19, "9" * 400, "<1.2@x>", "<99999999999999999999.1@x>", "0", "-1", " 7"]
)


@st.composite
def webhook_event(draw: st.DrawFn) -> dict[str, Any]:
    keys = (
        st.sampled_from(
            [
                "id",
                "type",
                "event",
                "stat",
                "message_id",
                "delivery_id",
                "recipient",
                "email",
                "to",
                "status",
            ]
        )
        | hostile_text
    )
    event = draw(st.dictionaries(keys, event_value, max_size=8))
    if draw(st.booleans()):
        event["type"] = draw(
            st.sampled_from(
                ["hard_bounce", "complaint", "undeliv", "open", "stop", "HARD_BOUNCE", "weird"]
            )
        )
    return event


@FUZZ
@given(webhook_event())
def test_webhook_events_normalise_without_raising(event: dict[str, Any]) -> None:
    started = time.perf_counter()
    feedback = normalise(event)
    assert time.perf_counter() - started < QUICK_S
    if feedback is not None:
        assert feedback.kind in KINDS | {"stop"}
        assert feedback.delivery_id is None or 0 <= feedback.delivery_id < 2**63
        json.dumps(event)  # what the store keeps as the raw payload


@FUZZ
@given(
    st.text(max_size=20)
    | st.sampled_from(["²", "１２", "1" * 400, " 1", "-1"])
    | st.builds(lambda: str(int(time.time()))),
    st.text(max_size=80),
    st.binary(max_size=200),
)
def test_signature_checks_never_raise(timestamp: str, sent: str, body: bytes) -> None:
    now = time.time()
    assert verify("s3cret", timestamp, sent, body, now) is False or sent == signature(
        "s3cret", timestamp, body
    )
