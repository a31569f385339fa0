"""The events worker: puts the outbox in order, publishes it to the event exchange and
posts it to the tenants' webhook endpoints.

Each pass stamps newly committed events (:func:`postgate.events.stream.stamp`),
publishes stamped ones to ``<QUEUE_PREFIX>.events`` and only then marks them published,
and leases the webhook endpoints that are due, posting to up to
``WEBHOOK_CONCURRENCY`` of them at once. A worker killed at any point loses nothing:
an event not marked published is published again, an endpoint's cursor moves only
after its post was taken (both at least once, with the event's stable id to drop a
repeat). The exchange and the endpoints are independent: a broker outage does not stop
the webhooks, a failing endpoint delays nobody else, and sending never waits for either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from sqlalchemy import select

from postgate.core.clock import utcnow
from postgate.core.events import routing_key
from postgate.events import guard, posting, stream
from postgate.observability.metrics import (
    EVENTS_PUBLISHED,
    WEBHOOK_EVENTS,
    WEBHOOK_PAUSES,
)
from postgate.runtime.broker import Broker
from postgate.runtime.context import Context
from postgate.store import tables as t

log = logging.getLogger("postgate.events")
PUBLISH_PAGE = 500


class EventsWorker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.allow = guard.networks(ctx.settings.webhook_allow_networks)
        self.slugs: dict[str, str] = {}
        self.broker: Broker | None = None

    def _slug(self, tenant_id: str) -> str:
        if tenant_id not in self.slugs:
            with self.ctx.engine.connect() as conn:
                slug = conn.scalar(select(t.tenant.c.slug).where(t.tenant.c.id == int(tenant_id)))
            self.slugs[tenant_id] = slug or tenant_id
        return self.slugs[tenant_id]

    def _stamp(self) -> int:
        return stream.stamp(self.ctx.engine)

    def _publish(self) -> int:
        """One page of stamped events to the exchange (or, with the exchange off, just
        marked as handled so that retention can purge them)."""
        with self.ctx.engine.connect() as conn:
            events = stream.unpublished(conn, PUBLISH_PAGE)
        if not events:
            return 0
        if self.ctx.settings.events_exchange:
            if self.broker is None:
                self.broker = self.ctx.broker()
            try:
                self.broker.publish_events(
                    [(routing_key(ev["tenant"], ev["type"]), ev) for ev in events]
                )
            except Exception:
                self.broker.close()
                self.broker = None
                raise
            for ev in events:
                EVENTS_PUBLISHED.labels(ev["tenant"]).inc()
        stream.mark_published(self.ctx.engine, [ev["seq"] for ev in events], utcnow())
        return len(events)

    async def _webhooks(self, session: aiohttp.ClientSession) -> int:
        settings = self.ctx.settings
        leases = await asyncio.to_thread(
            posting.due,
            self.ctx.engine,
            utcnow(),
            settings.webhook_concurrency,
            settings.webhook_timeout_s + posting.LEASE_EXTRA_S,
        )
        if not leases:
            return 0
        results = await asyncio.gather(
            *(
                posting.deliver(self.ctx.engine, settings, session, lease, self.allow, utcnow)
                for lease in leases
            ),
            return_exceptions=True,
        )
        for lease, result in zip(leases, results, strict=True):
            if isinstance(result, BaseException):
                log.error("posting to webhook endpoint %s failed: %r", lease.id, result)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(posting.release, self.ctx.engine, lease.id)
                continue
            self._count(result)
        return len(leases)

    def _count(self, result: posting.Result) -> None:
        slug, endpoint = self._slug(str(result.tenant_id)), str(result.endpoint)
        if result.delivered:
            WEBHOOK_EVENTS.labels(slug, endpoint, "delivered").inc(result.delivered)
        if result.dead:
            WEBHOOK_EVENTS.labels(slug, endpoint, "dead_lettered").inc(result.dead)
        elif result.failed:
            WEBHOOK_EVENTS.labels(slug, endpoint, "retried").inc(result.failed)
            log.info(
                "webhook endpoint %s of tenant %s failed (%s); trying again later",
                endpoint,
                slug,
                result.error,
            )
        if result.paused:
            WEBHOOK_PAUSES.labels(slug, endpoint).inc()

    async def run(self, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(resolver=guard.GuardedResolver(self.allow), limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                while not stop.is_set():
                    busy = 0
                    for step in (self._stamp, self._publish):
                        try:
                            busy += await asyncio.to_thread(step)
                        except Exception:
                            log.exception("event stream: %s failed; trying again", step.__name__)
                    try:
                        busy += await self._webhooks(session)
                    except Exception:
                        log.exception("webhook pass failed; trying again")
                    if not busy:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), self.ctx.settings.events_poll_s)
            finally:
                if self.broker is not None:
                    self.broker.close()
