"""The feedback classifier on real-world bounce and complaint formats (tests/fixtures/feedback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from postgate.feedback.mail import parse

SECRET = "fixture-secret"  # the VERP/unsubscribe tokens in the .eml fixtures are signed with it

# Failed recipients as flufl.bounce's own test table lists them for these files.
FLUFL = {
    "postfix_01.txt": {"xxxxx@local.ie"},
    "postfix_04.txt": {"userx@mail1.example.com"},
    "exim_01.txt": {"userx@its.example.nl"},
    "sendmail_01.txt": {"zzzzz@shaft.coal.nl", "zzzzz@nfg.nl"},
    "qmail_01.txt": {"userx@example.de"},
    "qmail_02.txt": {"userx@example.com"},
    "microsoft_01.txt": {"userx@example.COM"},
    "yahoo_01.txt": {"userx@example.com"},
    "dsn_01.txt": {"userx@example.com"},
    "dsn_09.txt": {"userx@example.com"},
    "simple_01.txt": {"bbbsss@example.com"},
    "aol_01.txt": {"screenname@aol.com"},
    "groupwise_01.txt": {"userx@example.EDU"},
    "smtp32_01.txt": {"userx@example.ph"},
}

# file: (kind, hard, recipients, status, delivery)
OURS = {
    "gmail_550_5.1.1.eml": ("bounce", True, ("no.such.user@gmail.com",), "5.1.1", 4242),
    "ses_bounce_5.1.1.eml": ("bounce", True, ("gone@example.com",), "5.1.1", 4242),
    "postfix_452_mailbox_full.eml": ("bounce", False, ("full.box@example.org",), "5.2.2", 4243),
    "exchange_550_5.7.1_policy.eml": ("bounce", False, ("someone@contoso.com",), "5.7.1", 4244),
    "hotmail_fbl_arf.eml": ("complaint", None, ("redacted@hotmail.com",), "", 4242),
    "yahoo_arf.eml": ("complaint", None, ("complainer@yahoo.com",), "", 4243),
    "out_of_office.eml": ("auto_reply", None, ("anna@example.hu",), "", 4242),
    "mailto_unsubscribe.eml": ("unsubscribe", None, ("reader@example.com",), "", 4245),
    "garbage.eml": ("unknown", None, (), "", None),
}


@pytest.mark.parametrize("name", sorted(FLUFL))
def test_real_world_bounces_name_the_failed_recipients(fixtures_dir: Path, name: str) -> None:
    fb = parse((fixtures_dir / "feedback" / "flufl" / name).read_bytes(), SECRET)
    assert fb.kind == "bounce"
    assert set(fb.recipients) == FLUFL[name]
    assert fb.action == "failed"


def test_a_delay_warning_is_not_a_failure(fixtures_dir: Path) -> None:
    fb = parse((fixtures_dir / "feedback" / "flufl" / "dsn_05.txt").read_bytes(), SECRET)
    assert (fb.kind, fb.action, fb.hard, fb.status) == ("bounce", "delayed", False, "4.4.1")


def test_wording_decides_hardness_for_non_standard_bounces(fixtures_dir: Path) -> None:
    flufl = fixtures_dir / "feedback" / "flufl"
    exim = parse((flufl / "exim_01.txt").read_bytes(), SECRET)
    quota = parse((flufl / "dsn_01.txt").read_bytes(), SECRET)
    assert exim.hard is True and exim.status == "5.1.1"
    assert quota.hard is False  # 5.0.0 "recipient reached disk quota" is not a dead address


@pytest.mark.parametrize("name", sorted(OURS))
def test_provider_formats(fixtures_dir: Path, name: str) -> None:
    fb = parse((fixtures_dir / "feedback" / name).read_bytes(), SECRET)
    delivery = fb.ref.delivery_id if fb.ref else None
    assert (fb.kind, fb.hard, fb.recipients, fb.status, delivery) == OURS[name]
    assert fb.ref is None or fb.ref.legacy  # the fixtures hold references of the old format


def test_arf_and_dsn_find_our_message_id(fixtures_dir: Path) -> None:
    for name in ("hotmail_fbl_arf.eml", "yahoo_arf.eml", "gmail_550_5.1.1.eml"):
        fb = parse((fixtures_dir / "feedback" / name).read_bytes(), SECRET)
        assert fb.ref is not None and fb.ref.delivery_id in (4242, 4243)


def test_forged_verp_is_not_trusted(fixtures_dir: Path) -> None:
    fb = parse((fixtures_dir / "feedback" / "gmail_550_5.1.1.eml").read_bytes(), "other-secret")
    # the return path's MAC fails; what is left is the unsigned legacy Message-ID
    assert fb.kind == "bounce" and fb.ref is not None and not fb.ref.signed


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff" * 50,
        b"Content-Type: multipart/report\r\n\r\n",
        b"Content-Type: message/delivery-status\r\n\r\nAction: x\r\n",
    ],
)
def test_garbage_is_unknown_and_never_raises(raw: bytes) -> None:
    assert parse(raw, SECRET).kind == "unknown"


def test_classify_command_prints_one_json_line_per_file(fixtures_dir: Path) -> None:
    files = [
        str(fixtures_dir / "feedback" / n)
        for n in ("gmail_550_5.1.1.eml", "yahoo_arf.eml", "out_of_office.eml", "garbage.eml")
    ]
    out = subprocess.run(
        [sys.executable, "-m", "postgate", "feedback", "classify", *files],
        env=os.environ | {"SECRET_KEY": SECRET},
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["kind"], x["hard"], x["delivery"]) for x in lines] == [
        ("bounce", True, 4242),
        ("complaint", None, 4243),
        ("auto_reply", None, 4242),
        ("unknown", None, None),
    ]
    assert lines[0]["recipients"] == ["no.such.user@gmail.com"] and lines[0]["status"] == "5.1.1"
