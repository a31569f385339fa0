"""Helpers for feedback tests: the real listener in a thread, fixtures re-signed for real
deliveries, and an aiosmtplib client to deliver them."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from postgate.delivery import tokens
from postgate.workers.context import Context
from postgate.workers.feedback import FeedbackListener

FIXTURE_SECRET = "fixture-secret"
FIXTURE_DOMAIN = "bounces.example.net"


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
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(stop),),
                              daemon=True)
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


def mail(fixtures_dir: Path, name: str, ctx: Context, delivery_id: int, campaign_id: int) -> bytes:
    """A fixture with its VERP/unsubscribe tokens and Message-ID re-signed for a real delivery."""
    raw = (fixtures_dir / "feedback" / name).read_bytes().decode()
    s = ctx.settings
    for fixture_id in (4242, 4243, 4244):
        raw = raw.replace(tokens.verp_address(FIXTURE_SECRET, fixture_id, FIXTURE_DOMAIN),
                          tokens.verp_address(s.secret_key, delivery_id, s.bounce_domain))
        raw = raw.replace(f"<{fixture_id}.77@acme.example>", f"<{delivery_id}.{campaign_id}@x>")
    raw = raw.replace(f"unsubscribe+{tokens.unsubscribe_token(FIXTURE_SECRET, 4245)}@"
                      f"{FIXTURE_DOMAIN}",
                      f"unsubscribe+{tokens.unsubscribe_token(s.secret_key, delivery_id)}@"
                      f"{s.bounce_domain}")
    return raw.encode()


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
