"""The sender: send batches -> claimed rows -> rendered mail -> provider -> recorded outcome."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from email.utils import formatdate

from sqlalchemy import select

from postgate import tables as t
from postgate.clock import utcnow
from postgate.delivery import dkim_signing, domain_store, store
from postgate.delivery.dkim_signing import DkimKey
from postgate.delivery.message import MessageError
from postgate.delivery.rendering import CampaignContent, CompiledCampaign
from postgate.delivery.sending_state import may_send
from postgate.delivery.states import BlockReason
from postgate.metrics import BATCH_SECONDS, BLOCKED, DKIM_SIGN_SECONDS, MESSAGES
from postgate.providers.base import EmailProvider, SendResult
from postgate.providers.smtp import SmtpPool
from postgate.workers.context import Context
from postgate.workers.runner import Runner

log = logging.getLogger("postgate.sender")
STATE_TTL_S = 1.0


@dataclass
class CampaignInfo:
    tenant_id: int
    tenant_slug: str
    channel: str
    kind: str
    compiled: CompiledCampaign
    tenant_status: str
    checked_at: float
    dkim: DkimKey | None = None


def parse_batch(body: bytes) -> tuple[int, list[int]]:
    try:
        data = json.loads(body)
        campaign_id = int(data["campaign_id"])
        ids = [int(i) for i in data["ids"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise MessageError(f"bad send batch: {exc!r}") from None
    if not ids:
        raise MessageError("bad send batch: no ids")
    return campaign_id, ids


class Sender(Runner):
    queue = "send"

    def __init__(self, ctx: Context, provider: EmailProvider | None = None) -> None:
        super().__init__(ctx)
        self.concurrency = ctx.settings.sender_prefetch
        self.provider: EmailProvider = provider or SmtpPool(ctx.settings)
        self.campaigns: dict[int, CampaignInfo] = {}

    async def setup(self) -> None:
        await self.provider.start()

    async def teardown(self) -> None:
        await self.provider.close()

    async def dispose(self, body: bytes) -> None:
        started = time.perf_counter()
        campaign_id, ids = parse_batch(body)
        info = await self._campaign(campaign_id)
        now = utcnow()
        engine, settings = self.ctx.engine, self.ctx.settings
        claimed = await asyncio.to_thread(store.claim, engine, ids, now, settings.lease_s)
        if not claimed:
            return
        if not may_send(info.tenant_status, info.kind):
            reason = BlockReason.TENANT_DISABLED.value
            await asyncio.to_thread(store.hold, engine, [c.recipient.delivery_id for c in claimed],
                                    reason, now)
            BLOCKED.labels(info.tenant_slug, info.channel, reason).inc(len(claimed))
            log.warning("tenant %s is %s: held %d deliveries of campaign %s",
                        info.tenant_slug, info.tenant_status, len(claimed), campaign_id)
            return
        date = formatdate(usegmt=True)
        results = await asyncio.gather(*(self._send(info, c, date) for c in claimed))
        await asyncio.to_thread(store.record, engine, settings, info.tenant_id,
                                list(zip(claimed, results, strict=True)), utcnow())
        BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _send(self, info: CampaignInfo, claimed: store.Claimed, date: str) -> SendResult:
        rcpt = claimed.recipient
        data = info.compiled.render(rcpt, date)
        if info.dkim is not None:
            signed = time.perf_counter()
            data = dkim_signing.sign(data, info.dkim)
            DKIM_SIGN_SECONDS.labels(info.dkim.algorithm).observe(time.perf_counter() - signed)
        result = await self.provider.send(info.compiled.envelope_from(rcpt.delivery_id),
                                          rcpt.address, data)
        MESSAGES.labels(info.tenant_slug, info.channel, self.provider.name,
                        result.outcome.value).inc()
        if result.outcome.value != "sent":
            log.info("tenant=%s campaign=%s delivery=%s rcpt=%s %s %s %s",
                     info.tenant_slug, info.compiled.content.campaign_id, rcpt.delivery_id,
                     rcpt.address, result.outcome.value, result.code, result.detail)
        return result

    async def _campaign(self, campaign_id: int) -> CampaignInfo:
        info = self.campaigns.get(campaign_id)
        if info is not None and time.monotonic() - info.checked_at < STATE_TTL_S:
            return info
        loaded = await asyncio.to_thread(self._load, campaign_id, info)
        self.campaigns[campaign_id] = loaded
        return loaded

    def _load(self, campaign_id: int, cached: CampaignInfo | None) -> CampaignInfo:
        c, tn = t.campaign.c, t.tenant.c
        with self.ctx.engine.connect() as conn:
            row = conn.execute(
                select(c.tenant_id, tn.slug, tn.domain, tn.status, c.channel, c.kind, c.subject,
                       c.text, c.html, c.from_email, c.from_name, c.headers)
                .join(t.tenant, tn.id == c.tenant_id)
                .where(c.id == campaign_id)
            ).first()
            if row is None:
                raise MessageError(f"send batch for unknown campaign {campaign_id}")
            dkim = domain_store.signing_key(conn, row.tenant_id, row.from_email)
        (tenant_id, slug, domain, status, channel, kind, subject, text, html,
         from_email, from_name, headers) = row
        if cached is not None:
            cached.tenant_status, cached.checked_at = status, time.monotonic()
            return cached
        s = self.ctx.settings
        compiled = CompiledCampaign(
            CampaignContent(campaign_id, slug, domain, kind, subject, text, html,
                            from_email, from_name, tuple((headers or {}).items())),
            s.secret_key, s.public_url, s.bounce_domain,
        )
        return CampaignInfo(tenant_id, slug, channel, kind, compiled, status, time.monotonic(),
                            dkim)
