"""The sender: send batches -> claimed rows -> rendered mail -> provider -> recorded outcome."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import formatdate

from sqlalchemy import select

from postgate.campaigns import deliveries as store
from postgate.consent import reminder, send_checks
from postgate.consent.signup import CONFIRM_PREFIX
from postgate.core import i18n
from postgate.core.bounce import classify_reply
from postgate.core.dkim_signing import Signer
from postgate.core.message import MessageError
from postgate.core.outcome import Outcome, SendResult
from postgate.core.rendering import CampaignContent, CompiledCampaign
from postgate.core.send_window import SendWindow, WindowError
from postgate.core.sms import quiet_hours
from postgate.core.states import Channel, Kind
from postgate.observability.metrics import (
    BATCH_SECONDS,
    BLOCKED,
    FEEDBACK,
    MESSAGES,
    reason_label,
)
from postgate.providers import registry
from postgate.providers.base import SENDING_SOURCE, SENDING_TENANT, EmailProvider
from postgate.providers.shaper import Shaper
from postgate.providers.smtp import SmtpSettings
from postgate.runtime.context import Context
from postgate.runtime.runner import Runner
from postgate.store import tables as t
from postgate.tenants import brand
from postgate.tenants import domains as domain_store
from postgate.tenants import sending as sending_blocks
from postgate.tenants import warmup as warmup_store
from postgate.workers import send_windows, warmup_turns
from postgate.workers.outcomes import Outcomes
from postgate.workers.sending_switch import SendingSwitch
from postgate.workers.shaping_audit import ShapingAudit
from postgate.workers.signing import SigningPool
from postgate.workers.sms_dispatch import SmsDispatch
from postgate.workers.source_turns import SourcePlan

log = logging.getLogger("postgate.sender")
STATE_TTL_S = 1.0
SIGN_CHUNK = 32  # messages rendered and signed per hand-off to a signing process


@dataclass
class CampaignInfo:
    tenant_id: int
    tenant_slug: str
    channel: str
    kind: str
    compiled: CompiledCampaign
    checked_at: float
    needs_context: bool = False  # signup confirmations: the link travels in the batch only
    dkim: tuple[Signer, ...] = ()  # the keys (two when dual-signing), parsed once per campaign
    topic: str = ""
    tenant_name: str = ""
    warming: warmup_store.Warming | None = None  # its From domain is on a warm-up ramp
    window: SendWindow | None = None  # deliver only within these hours, recipients' local time


def parse_batch(body: bytes) -> tuple[int, list[int], dict[int, dict[str, str]]]:
    """(campaign, delivery ids, per-delivery template values such as a confirmation link)
    from one send batch, decoded once."""
    try:
        data = json.loads(body)
        campaign_id = int(data["campaign_id"])
        ids = [int(i) for i in data["ids"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise MessageError(f"bad send batch: {exc!r}") from None
    if not ids:
        raise MessageError("bad send batch: no ids")
    try:
        raw = data.get("context") or {}
        context = {int(k): {str(n): str(v) for n, v in vals.items()} for k, vals in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise MessageError(f"bad send batch context: {exc!r}") from None
    return campaign_id, ids, context


class Sender(Runner):
    queue = "send"

    def __init__(self, ctx: Context, provider: EmailProvider | None = None) -> None:
        super().__init__(ctx)
        self.concurrency = ctx.settings.sender_prefetch
        self.provider: EmailProvider = provider or registry.factory(ctx.settings.email_provider)(
            ctx.settings
        )  # EMAIL_PROVIDER: smtp or mx
        self.campaigns: dict[int, CampaignInfo] = {}
        shaper = getattr(self.provider, "shaper", None)  # direct-to-MX: audit its automations
        if isinstance(shaper, Shaper):
            shaper.on_action = ShapingAudit(
                ctx.engine,
                lambda: {i.tenant_slug: i.tenant_id for i in self.campaigns.values()},
            )
        self.switch = SendingSwitch(ctx)
        # the provider group of a recipient domain (warm-up caps are per group); a provider
        # that knows none (a smarthost) puts every domain in one
        self.group_of: warmup_turns.GroupOf = getattr(
            self.provider, "group_of", warmup_turns.no_groups
        )
        self.slots = asyncio.Semaphore(ctx.settings.provider(SmtpSettings).connections)
        # MX_SOURCES: the source address of each email, the warming ones on their ramp
        configured: list[tuple[str, bool]] = getattr(self.provider, "sources", [])
        self.sources = SourcePlan(ctx.engine, ctx.settings, configured) if configured else None
        self.sms: SmsDispatch | None = None  # started on the first SMS batch
        self.signing = SigningPool(ctx.settings.dkim_pool, ctx.settings.dkim_workers)

    async def setup(self) -> None:
        await self.switch.start()
        await self.provider.start()
        if self.sources is not None:
            await self.sources.start(self.ctx.clock())

    async def teardown(self) -> None:
        await self.provider.close()
        if self.sms is not None:
            await self.sms.close()
        await self.switch.close()
        await self.signing.close()

    def _allowed(self, info: CampaignInfo) -> bool:
        return self.switch.may_send(info.tenant_id, info.channel, info.kind)

    async def _still_blocked(self, info: CampaignInfo) -> bool:
        """Before holding rows, re-read the blocks: a re-enable may be newer than our copy,
        and rows held after it would wait for the next operator action."""
        await self.switch.reload(info.tenant_id)
        return not self._allowed(info)

    async def _hold(self, info: CampaignInfo, claimed: list[store.Claimed]) -> None:
        reason = (
            await asyncio.to_thread(
                sending_blocks.hold_reason,
                self.ctx.engine,
                info.tenant_id,
                info.channel,
                info.kind,
            )
        ).value
        await asyncio.to_thread(
            store.hold,
            self.ctx.engine,
            [c.recipient.delivery_id for c in claimed],
            reason,
            self.ctx.clock(),
        )
        BLOCKED.labels(info.tenant_slug, info.channel, reason).inc(len(claimed))
        log.warning(
            "tenant %s may not send %s now: held %d deliveries of campaign %s",
            info.tenant_slug,
            info.kind,
            len(claimed),
            info.compiled.content.campaign_id,
        )

    async def dispose(self, body: bytes) -> None:
        started = time.perf_counter()
        campaign_id, ids, context = parse_batch(body)
        info = await self._campaign(campaign_id)
        now = self.ctx.clock()
        engine, settings = self.ctx.engine, self.ctx.settings
        claimed = await asyncio.to_thread(store.claim, engine, ids, now, settings.lease_s)
        if not claimed:
            return
        keeper = asyncio.create_task(self._keep_leases([c.recipient.delivery_id for c in claimed]))
        try:
            await self._deliver(info, claimed, context, now, started)
        finally:
            keeper.cancel()

    async def _keep_leases(self, ids: list[int]) -> None:
        """While a batch is in hand, push its rows' lease forward, so that a slow batch (a
        slow server, many retries) is never mistaken for a dead sender's and sent twice."""
        lease = self.ctx.settings.lease_s
        while True:
            await asyncio.sleep(lease / 3)
            try:
                await asyncio.to_thread(
                    store.renew, self.ctx.engine, ids, self.ctx.clock() + timedelta(seconds=lease)
                )
            except Exception as exc:  # the database is away: try again at the next beat
                log.warning("could not renew the lease of %d rows: %s", len(ids), exc)

    async def _deliver(
        self,
        info: CampaignInfo,
        claimed: list[store.Claimed],
        context: dict[int, dict[str, str]],
        now: datetime,
        started: float,
    ) -> None:
        engine, settings = self.ctx.engine, self.ctx.settings
        campaign_id = info.compiled.content.campaign_id
        claimed, extra = await self._late_checks(info, claimed, context, now)
        if not claimed:
            return
        if not self._allowed(info) and await self._still_blocked(info):
            await self._hold(info, claimed)
            return
        if info.window is not None:  # outside the hours where the recipient lives: later
            claimed = await send_windows.split(
                engine,
                info.window,
                claimed,
                self.ctx.clock(),
                info.tenant_slug,
                campaign_id,
                info.channel,
            )
            if not claimed:
                return
        if info.warming is not None:  # promotional email From a domain on its ramp
            claimed = await warmup_turns.split(
                engine,
                settings,
                info.warming,
                claimed,
                self.group_of,
                self.ctx.clock(),
                info.tenant_slug,
            )
            if not claimed:
                return
        if info.channel == Channel.SMS:
            self.sms = self.sms or SmsDispatch(self.ctx)
            await self.sms.dispose(campaign_id, claimed, context)
            BATCH_SECONDS.observe(time.perf_counter() - started)
            return
        if self.sources is not None:
            claimed = await self.sources.assign(
                claimed, info.kind, self.group_of, self.ctx.clock(), info.tenant_slug
            )
            if not claimed:
                return
        date = formatdate(usegmt=True)

        async def write(done: list[tuple[store.Claimed, SendResult]]) -> None:
            await asyncio.to_thread(
                store.record,
                engine,
                settings,
                info.tenant_id,
                done,
                self.ctx.clock(),
                info.compiled.content.campaign_id,
            )

        outcomes = Outcomes(write, settings.outcome_flush_count, settings.outcome_flush_s)
        todo = claimed
        try:
            for _ in range(2):
                results = await self._send_all(info, todo, date, extra, outcomes)
                todo = [c for c, r in zip(todo, results, strict=True) if r is None]
                if not todo or await self._still_blocked(info):
                    break
            if todo:
                await self._hold(info, todo)
        finally:
            await outcomes.close()  # what was sent is recorded even when the batch fails
        BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _late_checks(
        self,
        info: CampaignInfo,
        claimed: list[store.Claimed],
        context: dict[int, dict[str, str]],
        now: datetime,
    ) -> tuple[list[store.Claimed], dict[int, dict[str, str]]]:
        engine = self.ctx.engine
        pairs = [(c.recipient.delivery_id, c.recipient.address) for c in claimed]
        stopped = await asyncio.to_thread(
            send_checks.late_suppressed, engine, info.tenant_id, info.channel, info.kind, pairs, now
        )
        if stopped:
            BLOCKED.labels(info.tenant_slug, info.channel, "suppressed").inc(len(stopped))
        if info.needs_context:
            lost = [i for i, _ in pairs if i not in context and i not in stopped]
            if lost:
                await asyncio.to_thread(send_checks.cancel, engine, lost, "link_lost", now)
            stopped |= set(lost)
            claimed = [
                replace(c, recipient=replace(c.recipient, name="", attributes={})) for c in claimed
            ]
        claimed = [c for c in claimed if c.recipient.delivery_id not in stopped]
        if info.kind == Kind.PROMOTIONAL and claimed:
            footers = await asyncio.to_thread(
                reminder.for_deliveries,
                engine,
                reminder.Audience(
                    info.tenant_id,
                    info.channel,
                    info.topic,
                    info.tenant_name,
                    info.compiled.content.campaign_id,
                ),
                [(c.recipient.delivery_id, c.contact_id) for c in claimed],
                now,
                self.ctx.settings.reminder_after_days,
            )
            for delivery_id, text in footers.items():
                context.setdefault(delivery_id, {})["provenance_reminder"] = text
        return claimed, context

    async def _send_all(
        self,
        info: CampaignInfo,
        todo: list[store.Claimed],
        date: str,
        extra: dict[int, dict[str, str]],
        outcomes: Outcomes[tuple[store.Claimed, SendResult]],
    ) -> list[SendResult | None]:
        """Render and sign in chunks of SIGN_CHUNK (one hand-off to a signing process per
        chunk, the chunks on every core at once) and send each chunk as soon as it is
        signed; a result is None where the tenant was switched off before its turn."""

        async def chunk(part: list[store.Claimed]) -> list[SendResult | None]:
            if info.dkim:  # rendered and signed off the event loop, on every core
                datas = await self.signing.render_and_sign(
                    info.compiled,
                    info.dkim,
                    [(c.recipient, extra.get(c.recipient.delivery_id)) for c in part],
                    date,
                )
            else:
                datas = [
                    info.compiled.render(c.recipient, date, extra.get(c.recipient.delivery_id))
                    for c in part
                ]
            return list(
                await asyncio.gather(
                    *(
                        self._send(info, c, data, outcomes)
                        for c, data in zip(part, datas, strict=True)
                    )
                )
            )

        parts = await asyncio.gather(
            *(chunk(todo[i : i + SIGN_CHUNK]) for i in range(0, len(todo), SIGN_CHUNK))
        )
        return [result for part in parts for result in part]

    async def _send(
        self,
        info: CampaignInfo,
        claimed: store.Claimed,
        data: bytes,
        outcomes: Outcomes[tuple[store.Claimed, SendResult]],
    ) -> SendResult | None:
        """Send one rendered message and hand its outcome on at once; None when the tenant
        was switched off before its turn came."""
        rcpt = claimed.recipient
        async with self.slots:  # a free connection: the kill switch is checked right here
            if not self._allowed(info):
                return None
            SENDING_TENANT.set(info.tenant_slug)  # this send's own task: no reset needed
            SENDING_SOURCE.set(claimed.source or "")
            result = await self.provider.send(
                info.compiled.envelope_from(rcpt.delivery_id), rcpt.address, data
            )
        outcomes.add((claimed, result))
        MESSAGES.labels(
            info.tenant_slug, info.channel, self.provider.name, result.outcome.value
        ).inc()
        if result.outcome is Outcome.FAILED and result.code is not None:
            verdict = classify_reply(result.code, result.detail)  # as the bounce event says
            FEEDBACK.labels(
                info.tenant_slug,
                Channel.EMAIL,
                "bounce_hard" if verdict.hard else "bounce_soft",
                reason_label(verdict.reason),
            ).inc()
        if result.outcome.value != "sent":
            log.info(
                "tenant=%s campaign=%s delivery=%s rcpt=%s %s %s %s",
                info.tenant_slug,
                info.compiled.content.campaign_id,
                rcpt.delivery_id,
                rcpt.address,
                result.outcome.value,
                result.code,
                result.detail,
            )
        return result

    async def _campaign(self, campaign_id: int) -> CampaignInfo:
        info = self.campaigns.get(campaign_id)
        if info is not None and time.monotonic() - info.checked_at < STATE_TTL_S:
            return info
        loaded = await asyncio.to_thread(self._load, campaign_id, info)
        self.campaigns[campaign_id] = loaded
        return loaded

    def _load(self, campaign_id: int, cached: CampaignInfo | None) -> CampaignInfo:
        """The campaign, compiled and with its signing keys parsed, once; for a cached one only
        its tenant's sending blocks are re-read (every ``STATE_TTL_S``: the kill switch holds
        within a second even when a pub/sub notice is lost)."""
        c, tn = t.campaign.c, t.tenant.c
        with self.ctx.engine.connect() as conn:
            if cached is not None:
                self.switch.scopes[cached.tenant_id] = sending_blocks.active_scopes(
                    conn, cached.tenant_id
                )
                if cached.warming is not None:  # its stage moves on once a day
                    cached.warming = warmup_store.for_from(
                        conn, cached.tenant_id, cached.compiled.content.from_email
                    )
                cached.checked_at = time.monotonic()
                return cached
            row = conn.execute(
                select(
                    c.tenant_id,
                    tn.slug,
                    tn.domain,
                    c.channel,
                    c.kind,
                    c.subject,
                    c.text,
                    c.html,
                    c.from_email,
                    c.from_name,
                    c.external_id,
                    c.headers,
                    c.topic,
                    tn.name,
                    c.send_window,
                )
                .join(t.tenant, tn.id == c.tenant_id)
                .where(c.id == campaign_id)
            ).first()
            if row is None:
                raise MessageError(f"send batch for unknown campaign {campaign_id}")
            keys = domain_store.signing_keys(conn, row.tenant_id, row.from_email)
            warming = (
                warmup_store.for_from(conn, row.tenant_id, row.from_email)
                if row.kind == Kind.PROMOTIONAL and row.channel == Channel.EMAIL
                else None
            )
            locale = i18n.choose(brand.load(conn, row.tenant_id).locale)  # its footer's
        (
            tenant_id,
            slug,
            domain,
            channel,
            kind,
            subject,
            text,
            html,
            from_email,
            from_name,
            external_id,
            headers,
            topic,
            tenant_name,
            window_spec,
        ) = row
        s = self.ctx.settings
        compiled = CompiledCampaign(
            CampaignContent(
                campaign_id,
                slug,
                domain,
                kind,
                subject,
                text,
                html,
                from_email,
                from_name,
                tuple((headers or {}).items()),
                tenant_id,
                locale,
            ),
            s.secret_key,
            s.public_url,
            s.bounce_domain,
        )
        return CampaignInfo(
            tenant_id,
            slug,
            channel,
            kind,
            compiled,
            time.monotonic(),
            external_id.startswith(CONFIRM_PREFIX),
            tuple(Signer(key) for key in keys),
            topic,
            tenant_name,
            warming,
            self._window(slug, campaign_id, window_spec),
        )

    def _window(self, tenant: str, campaign_id: int, spec: object) -> SendWindow | None:
        try:
            return SendWindow.parse(spec if isinstance(spec, dict) else None)
        except (WindowError, KeyError) as exc:  # checked at acceptance; never send at night
            log.error(
                "tenant=%s campaign=%s has an unreadable send window (%s): %s in %s",
                tenant,
                campaign_id,
                exc,
                quiet_hours.DEFAULT,
                self.ctx.settings.sms_send_window_zone,
            )
            return SendWindow(quiet_hours.DEFAULT, self.ctx.settings.sms_send_window_zone)
