"""The feedback listener: an SMTP server (aiosmtpd) for mail to the bounce domain.

Bounces come back to the VERP return path ``b+<delivery>-<mac>@BOUNCE_DOMAIN``,
feedback loops send ARF reports to an address at that domain and recipients mail
``unsubscribe+<token>@`` from their List-Unsubscribe header. Each message is
classified (``delivery.feedback_mail``), applied once (``delivery.feedback_store``)
and, for bounces and complaints, the tenant's circuit breaker is re-evaluated; a trip
is announced to every sender at once. The reply is 250 only once the mail is stored:
if the database is down the listener answers 451 and the sending MTA tries again, so
nothing is lost. Mail for other domains is refused at RCPT.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP
from sqlalchemy.exc import DBAPIError

from postgate.core.clock import utcnow
from postgate.core.states import FeedbackKind
from postgate.feedback import apply as feedback_store
from postgate.feedback.event import Feedback
from postgate.feedback.mail import parse
from postgate.runtime.announce import announce
from postgate.runtime.context import Context

log = logging.getLogger("postgate.feedback")
SOURCES = {
    FeedbackKind.BOUNCE: "dsn",
    FeedbackKind.COMPLAINT: "arf",
    FeedbackKind.UNSUBSCRIBE: "mailto",
}


class FeedbackHandler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rsplit("@", 1)[-1].lower()
        if domain != self.ctx.settings.bounce_domain.lower():
            return "550 5.7.1 relaying denied: not a feedback address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        try:
            await asyncio.to_thread(self.process, raw, tuple(envelope.rcpt_tos))
        except Exception:
            log.exception("feedback mail not stored; asking the sender to retry")
            return "451 4.3.0 temporary failure, try again later"
        return "250 2.0.0 OK"

    def process(self, raw: bytes, rcpts: tuple[str, ...]) -> feedback_store.Applied:
        engine, settings, now = self.ctx.engine, self.ctx.settings, utcnow()
        fb = parse(raw, settings.keys, rcpts)
        try:
            applied = feedback_store.apply(
                engine, settings, fb, raw, SOURCES.get(fb.kind, "mail"), now
            )
        except DBAPIError:
            raise
        except Exception as exc:  # a parse we trusted too far: keep the mail as unknown
            log.exception("feedback mail could not be applied; kept as unknown")
            applied = feedback_store.apply(
                engine, settings, Feedback(FeedbackKind.UNKNOWN, detail=repr(exc)), raw, "mail", now
            )
        if applied.tripped and applied.tenant_id is not None:
            announce(settings, applied.tenant_id)
        return applied


class FeedbackListener:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.handler = FeedbackHandler(ctx)
        self.port: int | None = None
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        s = self.ctx.settings
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(
                self.handler,
                hostname=s.helo_name,
                data_size_limit=s.max_message_bytes * 10,
                decode_data=False,
                loop=loop,
            ),
            host=s.feedback_host,
            port=s.feedback_port,
        )
        self.port = int(server.sockets[0].getsockname()[1])
        self.ready.set()
        log.info("feedback listener on %s:%s for @%s", s.feedback_host, self.port, s.bounce_domain)
        try:
            await stop.wait()
        finally:
            server.close()
            await server.wait_closed()
