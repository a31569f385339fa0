"""Helpers for kill-switch tests: a sink that timestamps every SMTP transaction, and a
bulk audience (Core inserts, for campaigns of thousands)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select

from postgate.core.clock import utcnow
from postgate.sinks.smtp import SinkHandler
from postgate.store import tables as t
from tests.support import World


class TimedHandler(SinkHandler):
    """Records when each transaction starts (RCPT TO) and takes ``delay`` per message."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.starts: list[tuple[float, str]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            self.starts.append((time.time(), address.lower()))
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)

    def starts_for(self, domain: str) -> list[float]:
        with self.lock:
            return [at for at, address in self.starts if address.endswith("@" + domain)]


def bulk_audience(world: World, n: int) -> None:
    """``n`` consented list members at the tenant's domain, inserted in bulk."""
    now, tid = utcnow(), world.tenant_id
    c = t.contact.c
    with world.ctx.engine.begin() as conn:
        conn.execute(
            insert(t.contact),
            [
                {
                    "tenant_id": tid,
                    "email": f"m{i:05d}@{world.tenant.domain}",
                    "name": f"M{i}",
                    "attributes": {},
                    "created_at": now,
                }
                for i in range(n)
            ],
        )
        ids = list(conn.scalars(select(c.id).where(c.tenant_id == tid)))
        conn.execute(
            insert(t.list_member),
            [{"list_id": world.mlist.id, "contact_id": i, "tenant_id": tid} for i in ids],
        )
        when = now - timedelta(days=30)
        conn.execute(
            insert(t.consent),
            [
                {
                    "tenant_id": tid,
                    "contact_id": i,
                    "channel": "email",
                    "topic": "news",
                    "source": "signup_form",
                    "status": "confirmed",
                    "consented_at": when,
                    "confirmed_at": when,
                    "created_at": now,
                }
                for i in ids
            ],
        )
