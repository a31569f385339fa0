"""Dead-letter bodies: clean UTF-8 is kept as text, anything else as base64 (PostgreSQL's
text cannot hold NUL), and `postgate dead-letters` shows the base64 ones escaped."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import insert

from postgate.runtime.dead_letters import PREVIEW_BYTES, preview, raw, shown
from postgate.store import tables as t
from tests.support import World


@pytest.mark.parametrize(
    "body",
    [b"", b'{"version": "campaign.v1"}', b"tab\tcr\rlf\n", "Árvíztűrő tükörfúrógép ✓ 📨".encode()],
)
def test_clean_utf8_is_kept_as_text(body: bytes) -> None:
    assert preview(body) == body.decode()
    assert raw(preview(body)) == body


@pytest.mark.parametrize(
    "body",
    [
        b"a\x00b",
        b"\xff\xfe",
        b"\x1b[31mred",
        "\u0085".encode(),
        b"\x7f",
        b"caf\xc3",
        b"base64:looks like one",
    ],
)
def test_anything_else_is_base64(body: bytes) -> None:
    stored = preview(body)
    assert stored == "base64:" + base64.b64encode(body).decode()
    assert raw(stored) == body
    assert "\x00" not in stored


def test_only_the_first_preview_bytes_are_kept() -> None:
    text = b"a" + "é".encode() * PREVIEW_BYTES  # the limit cuts a two-byte character
    assert preview(text) == "a" + "é" * ((PREVIEW_BYTES - 1) // 2)
    binary = b"\x00" * (PREVIEW_BYTES + 10)
    assert raw(preview(binary)) == binary[:PREVIEW_BYTES]


def test_shown_escapes_what_a_terminal_should_not_get() -> None:
    assert shown("plain text") == ("utf-8", "plain text")
    assert shown(preview(b'{"a": 1}\x00\xff\\x00 \x1b\xc3\xa9')) == (
        "base64",
        '{"a": 1}\\x00\\xff\\\\x00 \\x1bé',
    )
    assert shown(preview(b"\x00" * 500)) == ("base64", "\\x00" * 200)


def test_the_dead_letters_command_says_base64_and_shows_it_escaped(world: World) -> None:
    body = b"garbage-" + world.tenant.slug.encode() + b"\x00\x01\xff"
    with world.ctx.engine.begin() as conn:
        conn.execute(
            insert(t.dead_letter).values(
                queue="campaigns", error="not JSON", body=preview(body), body_bytes=len(body)
            )
        )
        conn.execute(
            insert(t.dead_letter).values(
                queue="campaigns",
                error="not JSON",
                body="plain " + world.tenant.slug,
                body_bytes=6 + len(world.tenant.slug),
            )
        )
    out = subprocess.run(
        [sys.executable, "-m", "postgate", "dead-letters", "--limit", "2"],
        env=os.environ | {"DATABASE_URL": world.ctx.settings.database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    plain, binary = (json.loads(line) for line in out.splitlines())
    assert plain["encoding"] == "utf-8" and plain["body"] == "plain " + world.tenant.slug
    assert binary["encoding"] == "base64" and binary["bytes"] == len(body)
    assert binary["body"] == f"garbage-{world.tenant.slug}\\x00\\x01\\xff"
