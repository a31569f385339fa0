"""Helpers for feedback tests: the real listener in a thread, fixtures re-signed for real
deliveries, and an aiosmtplib client to deliver them."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import select

from postgate.core import tokens
from postgate.feedback.mail import parse
from postgate.runtime.context import Context
from postgate.store import tables as t
from postgate.workers.feedback import FeedbackListener
from tests.support import ref_for

FIXTURE_SECRET = "fixture-secret"
FIXTURE_DOMAIN = "bounces.example.net"
LEGACY_VERP = re.compile(r"b\+42\d\d-[0-9a-f]{12}@" + re.escape(FIXTURE_DOMAIN))
LEGACY_MESSAGE_ID = re.compile(r"<42\d\d\.77@acme\.example>")
LEGACY_MAILTO = re.compile(r"unsubscribe\+4245\.[0-9a-f]{32}@" + re.escape(FIXTURE_DOMAIN))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener(ctx: Context) -> Iterator[int]:
    """The real listener worker on its own event loop in a thread; yields its port."""
    ctx.settings.feedback_port = free_port()
    worker = FeedbackListener(ctx)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(stop),), daemon=True)
    thread.start()
    for _ in range(200):
        if worker.port:
            break
        threading.Event().wait(0.02)
    assert worker.port, "listener did not start"
    yield worker.port
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=10)
    loop.close()


def mail(
    fixtures_dir: Path, name: str, ctx: Context, delivery_id: int, campaign_id: int | None = None
) -> bytes:
    """A fixture made genuine for a real delivery: its (legacy-format, fixture-signed)
    return path, unsubscribe token and Message-ID replaced by the references postgate
    signs into that delivery's mail, and a bounce's failed recipient by its address."""
    raw = (fixtures_dir / "feedback" / name).read_bytes().decode()
    s = ctx.settings
    ref = ref_for(ctx.engine, delivery_id)
    assert campaign_id is None or campaign_id == ref.campaign_id
    fixture = parse(raw.encode(), FIXTURE_SECRET)
    if fixture.kind == "bounce":
        with ctx.engine.connect() as conn:
            address = conn.scalar(
                select(t.delivery.c.address).where(t.delivery.c.id == delivery_id)
            )
        for recipient in fixture.recipients:
            raw = raw.replace(recipient, str(address))
    raw = LEGACY_VERP.sub(tokens.verp_address(s.secret_key, ref, s.bounce_domain), raw)
    raw = LEGACY_MESSAGE_ID.sub(tokens.message_id(s.secret_key, ref, "acme.example"), raw)
    return LEGACY_MAILTO.sub(
        f"unsubscribe+{tokens.unsubscribe_token(s.secret_key, ref)}@{s.bounce_domain}", raw
    ).encode()


def deliver(port: int, raw: bytes, rcpt: str) -> tuple[int, str]:
    async def go() -> tuple[int, str]:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10)
        await client.connect()
        try:
            errors, reply = await client.sendmail("", [rcpt], raw)
            return 250 if not errors else 550, reply
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return exc.recipients[0].code, exc.recipients[0].message
        finally:
            await client.quit()

    return asyncio.run(go())
