"""Fuzzing the feedback listener itself over a real SMTP socket: random bytes, broken MIME,
huge headers, NUL bytes, non-UTF-8, truncated DSNs, mutated corpus mails and clients
that hang up mid-DATA. Whatever comes, the listener keeps answering; every mail it
accepted (250) is stored as one feedback event whose raw bytes are exactly the bytes it
received, unreadable ones as ``unknown``; a mail it refused (a line over RFC 5321's
1000 characters) is refused with a reply, so the sending MTA knows."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from pathlib import Path

import aiosmtplib
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from postgate.feedback.apply import raw_bytes
from postgate.runtime.context import Context
from postgate.store import tables as t
from tests.delivery.test_feedback_fuzz import mutated, report
from tests.workers.listening import listener

__all__ = ["listener"]  # the fixture
CORPUS = [
    p.read_bytes()
    for p in sorted((Path(__file__).parent.parent / "fixtures" / "bounces").glob("*.eml"))
]
KINDS = {"bounce", "complaint", "auto_reply", "unsubscribe", "unknown", "delay"}
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one listener serves every example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@st.composite
def corpus_mutated(draw: st.DrawFn) -> bytes:
    """A corpus mail with bytes flipped, cut, duplicated or truncated."""
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "nul", "latin1"]))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 500))]
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=100))
        elif op == "truncate":
            del data[at:]
        elif op == "nul":
            data[at:at] = b"\x00" * draw(st.integers(1, 5))
        else:
            data[at:at] = "Ügyfél árvíztűrő".encode("latin-1", "replace")
    return bytes(data)


@st.composite
def huge_headers(draw: st.DrawFn) -> bytes:
    """Thousands of headers, or one header folded over many lines."""
    many = draw(st.booleans())
    if many:
        headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 50) for i in range(5000))
    else:
        headers = b"Subject: " + b"\r\n ".join([b"w" * 900] * draw(st.integers(50, 300))) + b"\r\n"
    return headers + b"From: MAILER-DAEMON@mx.example\r\n\r\n" + draw(st.binary(max_size=200))


@st.composite
def truncated_dsn(draw: st.DrawFn) -> bytes:
    full = draw(st.sampled_from([m for m in CORPUS if b"delivery-status" in m]))
    return full[: draw(st.integers(0, len(full)))]


LONG_LINE = b"X-Long: " + b"y" * 3000 + b"\r\n\r\nbody"  # over 1000 characters: refused
hostile = st.one_of(
    st.binary(max_size=3000),
    st.binary(max_size=300).map(lambda b: b"\x00" + b + b"\xff\xfe"),
    corpus_mutated(),
    mutated(),
    report(),
    huge_headers(),
    truncated_dsn(),
    st.sampled_from(
        [
            b"",
            b".",
            b"\r\n.\r\n",
            b"..\r\n.\r\n..",
            b"Content-Type: multipart/report; boundary=\r\n\r\n--\r\n--",
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\n" * 2000,
            b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!====",
            b"Content-Type: text/plain; charset=utf-7\r\n\r\n+ZeVnLIqe-",
            b"Subject: =?utf-8?b?" + b"\xc3\x28" * 100 + b"?=\r\n\r\n",
        ]
    ),
)


def smtp_data(raw: bytes) -> bytes:
    """What an SMTP server receives for ``raw`` from aiosmtplib: CRLF line endings and a
    final CRLF (dot-stuffing is undone by the server)."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def deliver(port: int, raw: bytes, rcpt: str) -> int:
    async def go() -> int:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=20)
        await client.connect()
        try:
            await client.sendmail("", [rcpt], raw)
            return 250
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code
        finally:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()

    return asyncio.run(go())


def hang_up_mid_data(port: int, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rwb")
        f.readline()
        for line in (b"HELO fuzz\r\n", b"MAIL FROM:<>\r\n", b"RCPT TO:<b@bounces.example>\r\n"):
            f.write(line)
            f.flush()
            f.readline()
        f.write(b"DATA\r\n")
        f.flush()
        f.readline()
        f.write(raw[: len(raw) // 2])
        f.flush()


def answers(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rwb")
        greeting = f.readline()
        f.write(b"NOOP\r\n")
        f.flush()
        return greeting.startswith(b"220") and f.readline().startswith(b"250")


def stored(ctx: Context, after: int) -> list[tuple[int, str, bytes]]:
    e = t.feedback_event.c
    with ctx.engine.connect() as conn:
        return [
            (r.id, r.kind, raw_bytes(r.raw))
            for r in conn.execute(select(e.id, e.kind, e.raw).where(e.id > after))
        ]


def last_id(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return int(
            conn.scalar(select(t.feedback_event.c.id).order_by(t.feedback_event.c.id.desc())) or 0
        )


def test_the_listener_survives_hostile_mail_and_keeps_every_accepted_one_whole(
    ctx: Context, listener: int
) -> None:
    rcpt = f"b+fuzz@{ctx.settings.bounce_domain}"
    start = last_id(ctx)
    accepted: dict[bytes, None] = {}
    replies: dict[int, int] = {}
    hung_up = []

    @FUZZ
    @given(raw=hostile, hang_up=st.integers(0, 9))  # 7: hang up (not 0, where it shrinks)
    @example(raw=LONG_LINE, hang_up=1)
    @example(raw=CORPUS[0], hang_up=7)
    @example(raw=b"\x00\xff\xfe" * 300, hang_up=1)
    def send(raw: bytes, hang_up: int) -> None:
        if hang_up == 7:  # a client that gives up half-way through DATA
            hang_up_mid_data(listener, raw)
            hung_up.append(1)
            assert answers(listener)
            return
        code = deliver(listener, raw, rcpt)
        replies[code] = replies.get(code, 0) + 1
        assert code in (250, 500, 552), code  # stored, or a line over 1000 characters
        if code == 250:
            data = smtp_data(raw)
            accepted[data] = None
            kept = {body: kind for _, kind, body in stored(ctx, start)}
            assert data in kept, "an accepted mail was not stored whole"
            assert kept[data] in KINDS
            if not data.strip() or (b"\x00" in data[:40] and b":" not in data):
                assert kept[data] == "unknown"
        else:
            assert any(len(line) > 1000 for line in smtp_data(raw).split(b"\r\n"))
        assert answers(listener)

    send()
    assert replies.get(250, 0) > 10 and replies.get(500) and hung_up
    events = stored(ctx, start)
    kept = {body for _, _, body in events}
    assert set(accepted) == kept  # nothing accepted is lost, a hang-up stores nothing
    assert len(events) == len(accepted)  # one event per distinct mail
    assert answers(listener)
