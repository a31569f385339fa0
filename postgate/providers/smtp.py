"""SMTP smarthost delivery over a pool of persistent connections.

A plain smarthost session (no TLS, no AUTH) uses postgate's own client with PIPELINING
(``providers.smtp_pipeline``, ``SMTP_PIPELINING``); TLS, STARTTLS and AUTH sessions, and
the direct-to-MX provider, use aiosmtplib.

``connections`` long-lived sessions each take jobs from one asyncio queue, so a
campaign reuses a few TCP/TLS sessions instead of opening one per message. Replies
map to outcomes: 2xx sent, 4xx deferred, 5xx failed; a dropped connection or a
timeout is deferred and flagged ``unknown`` (the server may have taken the message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import ClassVar, Literal

import aiosmtplib
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from postgate.core.outcome import Outcome, SendResult, reply_outcome
from postgate.observability.metrics import PROVIDER_ERRORS, SEND_SECONDS
from postgate.providers.smtp_pipeline import PipelinedSmtp
from postgate.settings import ProviderSettings, Settings

log = logging.getLogger("postgate.smtp")

_Job = tuple[str, str, bytes, "asyncio.Future[SendResult]"]


_UNSAFE = SendResult(Outcome.FAILED, None, "address not usable in an SMTP command")


def _safe(address: str) -> bool:
    """Nothing in the address could end or extend an SMTP command."""
    return bool(address) and not any(ch in address for ch in "<>\r\n \t\0")


class SmtpSettings(ProviderSettings):
    """The smarthost: ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_TLS``, ``SMTP_USER``,
    ``SMTP_PASSWORD``, ``SMTP_CONNECTIONS``, ``SMTP_TIMEOUT_S``, ``SMTP_VALIDATE_CERTS``,
    ``SMTP_PIPELINING``."""

    model_config = SettingsConfigDict(env_prefix="SMTP_", env_file=None, extra="ignore")
    name: ClassVar[str] = "smtp"
    host: str = "127.0.0.1"
    port: int = 8025
    tls: Literal["none", "starttls", "tls"] = "none"
    user: str = ""
    password: str = ""
    connections: int = Field(default=16, ge=1, le=512)  # also the sender's messages in flight
    timeout_s: float = 30.0
    validate_certs: bool = True
    pipelining: bool = True  # postgate's own pipelining client for plain sessions


class SmtpPool:
    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.own = settings.provider(SmtpSettings)
        self.jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []
        self._latency = SEND_SECONDS.labels("email", self.name)

    async def start(self) -> None:
        if not self.workers:
            self.workers = [asyncio.create_task(self._work()) for _ in range(self.own.connections)]

    async def close(self) -> None:
        for _ in self.workers:
            self.jobs.put_nowait(None)
        if self.workers:
            await asyncio.gather(*self.workers, return_exceptions=True)
        self.workers = []

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        future: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        self.jobs.put_nowait((envelope_from, recipient, data, future))
        return await future

    def _client(self) -> aiosmtplib.SMTP | PipelinedSmtp:
        o = self.own
        s = self.settings
        if o.tls == "none" and not o.user and o.pipelining:
            return PipelinedSmtp(o.host, o.port, s.helo_name, o.timeout_s)
        return aiosmtplib.SMTP(
            hostname=o.host,
            port=o.port,
            username=o.user or None,
            password=o.password or None,
            use_tls=o.tls == "tls",
            start_tls=o.tls == "starttls",
            validate_certs=o.validate_certs,
            timeout=o.timeout_s,
            local_hostname=s.helo_name,
        )

    async def _work(self) -> None:
        client: aiosmtplib.SMTP | PipelinedSmtp | None = None
        try:
            while (job := await self.jobs.get()) is not None:
                envelope_from, recipient, data, future = job
                if client is None or not client.is_connected:
                    client = self._client()
                    try:
                        await client.connect()
                    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:  # SmtpLost too
                        client = None
                        PROVIDER_ERRORS.labels("email", self.name, "connect").inc()
                        future.set_result(SendResult(Outcome.DEFERRED, None, f"connect: {exc}"))
                        await asyncio.sleep(0.5)
                        continue
                started = time.perf_counter()
                if isinstance(client, PipelinedSmtp):
                    result = (
                        await client.transact(envelope_from, recipient, data)
                        if _safe(envelope_from) and _safe(recipient)
                        else _UNSAFE
                    )
                else:
                    result = await self.transact(client, envelope_from, recipient, data)
                self._latency.observe(time.perf_counter() - started)
                if result.unknown:
                    PROVIDER_ERRORS.labels("email", self.name, "connection_lost").inc()
                if result.unknown or result.code == 421:
                    with contextlib.suppress(Exception):
                        client.close()
                    client = None
                if not future.done():
                    future.set_result(result)
        finally:
            if client is not None and client.is_connected:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.quit(), 2)

    async def transact(
        self, client: aiosmtplib.SMTP, envelope_from: str, recipient: str, data: bytes
    ) -> SendResult:
        """One SMTP transaction on an open ``client``; replies and failures mapped to an
        outcome. The direct-to-MX provider runs its own connections through this too.

        Only a connection lost once DATA began leaves the outcome unknown.
        """
        if not _safe(envelope_from) or not _safe(recipient):
            return _UNSAFE
        in_data = [False]
        try:
            if envelope_from.isascii() and recipient.isascii():
                return await self._commands(client, envelope_from, recipient, data, in_data)
            in_data[0] = True  # SMTPUTF8: aiosmtplib's full path, all stages in one call
            response, _ = await client.sendmail(envelope_from, [recipient], data)
            reply = response.get(recipient)
            return reply_outcome(reply[0], reply[1]) if reply else SendResult(Outcome.SENT, 250)
        except (
            aiosmtplib.SMTPServerDisconnected,
            aiosmtplib.SMTPTimeoutError,
            TimeoutError,
            OSError,
        ) as exc:
            return SendResult(Outcome.DEFERRED, None, f"connection lost: {exc}", unknown=in_data[0])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await self._reset(client)
            return reply_outcome(exc.recipients[0].code, exc.recipients[0].message)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            return reply_outcome(exc.code, exc.message)
        except aiosmtplib.SMTPException as exc:
            return SendResult(Outcome.DEFERRED, None, f"smtp error: {exc}", unknown=in_data[0])

    async def _commands(
        self,
        client: aiosmtplib.SMTP,
        envelope_from: str,
        recipient: str,
        data: bytes,
        in_data: list[bool],
    ) -> SendResult:
        """MAIL, RCPT, DATA as raw commands: the addresses are ours (VERP) or normalised
        at import, so nothing is gained by ``sendmail`` parsing each one twice."""
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        reply = await client.execute_command(b"MAIL", b"FROM:<%s>" % envelope_from.encode())
        if reply.code == 250:
            reply = await client.execute_command(b"RCPT", b"TO:<%s>" % recipient.encode())
        if reply.code not in (250, 251):
            await self._reset(client)
            return reply_outcome(reply.code, reply.message)
        in_data[0] = True
        await client.data(data)
        return SendResult(Outcome.SENT, 250, "")

    @staticmethod
    async def _reset(client: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(Exception):
            await client.rset()
