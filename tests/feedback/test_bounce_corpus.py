"""The classifier on the labelled corpus (tests/fixtures/bounces, made by make_corpus.py):
kind, reason, hard and recipient against the labels, and never an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postgate.core.bounce_reasons import BounceReason
from postgate.feedback.mail import parse

CORPUS = Path(__file__).parent.parent / "fixtures" / "bounces"
LABELS: list[dict[str, Any]] = json.loads((CORPUS / "labels.json").read_text())
SECRET = "fixture-secret"
KINDS = {"bounce", "complaint", "auto_reply", "unsubscribe", "unknown"}
MAILS = [(CORPUS / label["file"]).read_bytes() for label in LABELS]


@pytest.fixture(scope="module")
def results() -> list[tuple[dict[str, Any], Any]]:
    return [(label, parse(raw, SECRET)) for label, raw in zip(LABELS, MAILS, strict=True)]


def _misreads(found: list[tuple[dict[str, Any], Any]], field: str) -> list[str]:
    return [
        f"{label['file']}: expected {label[field]!r}, got {getattr(fb, field)!r} "
        f"({fb.detail[:120]!r})"
        for label, fb in found
        if getattr(fb, field) != label[field]
    ]


def test_the_corpus_is_large_and_varied() -> None:
    mta_formats = {x["format"] for x in LABELS if x["kind"] in ("bounce", "complaint")}
    assert len(LABELS) >= 300 and len(mta_formats) >= 40
    assert all(x["source"] for x in LABELS)
    assert {x["reason"] for x in LABELS if x["kind"] == "bounce"} == {
        r.value for r in BounceReason if r is not BounceReason.OTHER
    }


def test_kind_is_read_right(results: list[tuple[dict[str, Any], Any]]) -> None:
    wrong = _misreads(results, "kind")
    assert 1 - len(wrong) / len(results) >= 0.98, "\n".join(wrong)


def test_reason_is_read_right(results: list[tuple[dict[str, Any], Any]]) -> None:
    wrong = _misreads(results, "reason")
    assert 1 - len(wrong) / len(results) >= 0.95, "\n".join(wrong)


def test_hard_only_for_dead_addresses(results: list[tuple[dict[str, Any], Any]]) -> None:
    bounces = [(label, fb) for label, fb in results if label["kind"] == "bounce"]
    wrong = _misreads(bounces, "hard")
    assert 1 - len(wrong) / len(bounces) >= 0.98, "\n".join(wrong)
    assert all(
        fb.hard is False
        for label, fb in bounces
        if label["reason"] in ("sender_rejected", "policy_block", "auth_failure")
    )


def test_the_recipient_is_named(results: list[tuple[dict[str, Any], Any]]) -> None:
    named = [(label, fb) for label, fb in results if label["recipient"]]
    wrong = [
        f"{label['file']}: {label['recipient']} not in {fb.recipients}"
        for label, fb in named
        if label["recipient"] not in fb.recipients
    ]
    assert 1 - len(wrong) / len(named) >= 0.98, "\n".join(wrong)
    ours = {"news@shop.example"}
    assert not [
        fb.recipients
        for _, fb in results
        if ours & set(fb.recipients) or any(a[0] in "|/{" for a in fb.recipients)
    ]


def test_the_delivery_is_found(results: list[tuple[dict[str, Any], Any]]) -> None:
    signed = [
        (label, fb)
        for label, fb in results
        if label["delivery"]
        and label["kind"] in ("bounce", "complaint", "unsubscribe")
        and label["format"] != "apple_unsubscribe"
    ]
    wrong = [
        label["file"]
        for label, fb in signed
        if fb.ref is None or fb.ref.delivery_id != label["delivery"]
    ]
    assert 1 - len(wrong) / len(signed) >= 0.98, wrong


def test_unreadable_mail_stays_unknown(results: list[tuple[dict[str, Any], Any]]) -> None:
    garbage = [(label, fb) for label, fb in results if label["format"] == "garbage"]
    assert garbage and all(fb.kind == "unknown" and fb.reason == "" for _, fb in garbage)


def test_not_a_bounce_is_not_a_bounce(results: list[tuple[dict[str, Any], Any]]) -> None:
    ordinary = [fb.kind for label, fb in results if label["kind"] == "unknown"]
    assert len(ordinary) >= 20 and set(ordinary) == {"unknown"}


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def garbled(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(MAILS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "crlf"]))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 300))]
        elif op == "insert":
            data[at:at] = draw(
                st.binary(max_size=120)
                | st.sampled_from(
                    [
                        b"\r\nAction: failed\r\nFinal-Recipient: rfc822; |/bin/sh\r\n",
                        b'\r\n{"notificationType": "Bounce", "bounce": [',
                        b"\r\n--\r\n",
                        b"\r\nContent-Type: multipart/report; boundary=\r\n",
                        b"=?utf-8?b?@@@?=",
                        b"\r\nX-Apple-Unsubscribe: \r\n",
                        b"\r\n<\x00@\xff>:\r\n",
                    ]
                )
            )
        elif op == "truncate":
            del data[at:]
        else:
            data = bytearray(bytes(data).replace(b"\r\n", b"\n"))
    return bytes(data)


@FUZZ
@given(garbled())
def test_garbled_corpus_mail_never_crashes(raw: bytes) -> None:
    fb = parse(raw, SECRET)
    assert fb.kind in KINDS
    assert fb.reason in {r.value for r in BounceReason} | {""}
    assert all(isinstance(a, str) and a[:1] not in ("|", "/") for a in fb.recipients)


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_never_crash(raw: bytes) -> None:
    fb = parse(raw, SECRET)
    assert fb.kind in KINDS and fb.hard in (True, False, None)


# Real-world bounces collected by GNU Mailman (tests/fixtures/feedback/flufl, copied
# unchanged from flufl.bounce), labelled by reading each report's own words.
REAL_WORLD = {
    "aol_01.txt": "policy_block",  # "they are not accepting mail from ..."
    "dsn_01.txt": "mailbox_full",  # "recipient reached disk quota"
    "dsn_05.txt": "network_error",  # delay warning, 4.4.1 no answer from host
    "dsn_09.txt": "policy_block",  # "5.7.1 Unable to relay"
    "exim_01.txt": "user_unknown",
    "groupwise_01.txt": "user_unknown",  # "The recipient name is not recognized"
    "microsoft_01.txt": "user_unknown",
    "postfix_01.txt": "user_unknown",
    "postfix_04.txt": "mailbox_full",  # "Mail quota exceeded"
    "qmail_01.txt": "other",  # no reason given
    "qmail_02.txt": "mailbox_full",  # "the user's mailfolder is full"
    "sendmail_01.txt": "network_error",  # "554 Too many hops"
    "simple_01.txt": "mailbox_full",
    "smtp32_01.txt": "expired",  # "Delivery failed 20 attempts"
    "yahoo_01.txt": "expired",  # "in the queue too long"
}


def test_real_world_bounces_get_their_reason() -> None:
    folder = CORPUS.parent / "feedback" / "flufl"
    found = {name: parse((folder / name).read_bytes(), SECRET).reason for name in REAL_WORLD}
    assert found == REAL_WORLD
