"""The SMS leg of the sender: claimed rows -> text -> route -> gateway -> recorded outcome.

Per batch (the sender has already blocked rows whose number was suppressed since
planning, a STOP that just came in included, for every kind of SMS): the rows are
rendered in the Jinja sandbox, get the opt-out line when promotional, are encoded under
the campaign's policy and parts limit, routed by calling code (the tenant's routes over
the platform's) and handed to the gateways, which start lazily on first use. A gateway
out of credit pauses the tenant's bulk SMS. A promotional SMS outside its send window in
the recipient's local time (``core/sms/quiet_hours.py``: the tenant's windows over
``SMS_SEND_WINDOW``) is not sent: its row waits as ``deferred`` until the window opens,
when the sweeper releases it. Transactional SMS are never held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from postgate.campaigns import deliveries as email_store
from postgate.core.outcome import Outcome
from postgate.core.rendering import TEXT_ENV
from postgate.core.sending_policy import may_send
from postgate.core.sms import quiet_hours
from postgate.core.sms.addressing import AddressError, e164
from postgate.core.sms.encoding import Policy, SmsTooLong, encode
from postgate.core.sms.outcomes import Action, SmsError, decide
from postgate.core.sms.routing import parse_routes, route
from postgate.core.states import Channel, Kind
from postgate.feedback.sms import DatabaseFeedback
from postgate.observability.metrics import MESSAGES
from postgate.providers import registry
from postgate.providers.sms import SmsMessage, SmsProvider, SmsResult
from postgate.runtime.context import Context
from postgate.sms import store
from postgate.store import tables as t
from postgate.tenants import sending as sending_blocks
from postgate.workers.outcomes import Outcomes

log = logging.getLogger("postgate.sms.dispatch")
SEGMENTS = Counter(
    "postgate_sms_segments_total", "SMS parts handed to a gateway.", ["tenant", "provider"]
)
ALERTS = Counter(
    "postgate_provider_alerts_total",
    "Provider conditions an operator must act on (no credit, auth failure).",
    ["provider", "kind"],
)
HELD = Counter(
    "postgate_sms_held_total",
    "Promotional SMS held for the recipient's send window (quiet hours), by region.",
    ["tenant", "region"],
)
REASONS = {SmsError.INVALID_NUMBER: "sms_invalid_number", SmsError.REJECTED: "sms_rejected"}
STATE_TTL_S = 1.0


@dataclass
class SmsCampaign:
    campaign_id: int
    tenant_id: int
    tenant: str
    kind: str
    template: Any
    sender: str
    policy: Policy
    max_parts: int
    routes: dict[str, str] | None
    paused: bool
    checked_at: float
    windows: dict[str, quiet_hours.Window]  # the tenant's own send windows


class SmsDispatch:
    def __init__(self, ctx: Context, providers: dict[str, SmsProvider] | None = None) -> None:
        self.ctx = ctx
        self.feedback = DatabaseFeedback(ctx.engine)
        self.providers: dict[str, SmsProvider] = dict(providers or {})
        self.routes = parse_routes(ctx.settings.sms_routes)
        self.windows = quiet_hours.windows(ctx.settings.sms_send_window)
        self.campaigns: dict[int, SmsCampaign] = {}
        self._lock = asyncio.Lock()

    async def provider(self, name: str) -> SmsProvider:
        async with self._lock:
            if name not in self.providers:
                gateway = registry.factory(name)(self.ctx.settings, self.feedback)
                await gateway.start()
                self.providers[name] = gateway
            return self.providers[name]

    async def close(self) -> None:
        for gateway in self.providers.values():
            await gateway.close()

    async def dispose(
        self,
        campaign_id: int,
        claimed: list[email_store.Claimed],
        context: dict[int, dict[str, str]] | None = None,
    ) -> None:
        """Send a claimed batch; ``context`` adds per-delivery template values (a signup
        confirmation's link, which travels in the batch message only)."""
        info = await self._campaign(campaign_id)
        engine, settings, now = self.ctx.engine, self.ctx.settings, self.ctx.clock()
        if info.paused and info.kind == Kind.PROMOTIONAL:
            ids = [c.recipient.delivery_id for c in claimed]
            await asyncio.to_thread(email_store.hold, engine, ids, "sms_paused", now)
            log.warning(
                "tenant=%s campaign=%s sms paused: held %d", info.tenant, campaign_id, len(ids)
            )
            return
        extra = context or {}
        if info.kind == Kind.PROMOTIONAL:
            claimed, held = self._outside_window(info, claimed, now)
            if held:
                await asyncio.to_thread(
                    store.record, engine, settings, info.tenant_id, held, now, info.campaign_id
                )
            if not claimed:
                return

        async def write(done: list[store.SmsOutcome]) -> None:
            await asyncio.to_thread(
                store.record,
                engine,
                settings,
                info.tenant_id,
                done,
                self.ctx.clock(),
                info.campaign_id,
            )

        recorder = Outcomes(write, settings.outcome_flush_count, settings.outcome_flush_s)

        async def one(claimed_row: email_store.Claimed) -> store.SmsOutcome:
            outcome = await self._one(
                info, claimed_row, extra.get(claimed_row.recipient.delivery_id, {})
            )
            recorder.add(outcome)  # recorded as it comes: a crash re-sends only what flew
            return outcome

        try:
            outcomes = await asyncio.gather(*(one(c) for c in claimed))
        finally:
            await recorder.close()
        if any(o.error is SmsError.NO_CREDIT for o in outcomes):
            await self._pause(info, next(o for o in outcomes if o.error is SmsError.NO_CREDIT))

    def _outside_window(
        self, info: SmsCampaign, claimed: list[email_store.Claimed], now: datetime
    ) -> tuple[list[email_store.Claimed], list[store.SmsOutcome]]:
        """Split a promotional batch into what may go now and what waits for its window."""
        sendable, held = [], []
        fallback = self.ctx.settings.sms_send_window_zone
        for c in claimed:
            number = c.recipient.address
            wait = quiet_hours.hold(number, now, info.windows, self.windows, fallback)
            if wait is None:
                sendable.append(c)
                continue
            HELD.labels(info.tenant, wait.region or "unknown").inc()
            log.info(
                "tenant=%s campaign=%s delivery=%s rcpt=%s %s",
                info.tenant,
                info.campaign_id,
                c.recipient.delivery_id,
                number,
                wait,
            )
            held.append(
                store.SmsOutcome(c, Outcome.DEFERRED, detail=str(wait), retry_at=wait.until)
            )
        return sendable, held

    async def _one(
        self, info: SmsCampaign, claimed: email_store.Claimed, extra: dict[str, str]
    ) -> store.SmsOutcome:
        rcpt = claimed.recipient
        try:
            number = e164(rcpt.address)
            text = info.template.render(
                extra
                | {
                    "name": rcpt.name,
                    "phone": number,
                    "contact": {"name": rcpt.name, "phone": number, **rcpt.attributes},
                }
            )
            if info.kind == Kind.PROMOTIONAL and self.ctx.settings.sms_opt_out_text:
                text = f"{text.rstrip()}\n{self.ctx.settings.sms_opt_out_text}"
            sms = encode(text, info.policy, info.max_parts)
        except (AddressError, SmsTooLong) as exc:
            why = "sms_too_long" if isinstance(exc, SmsTooLong) else "sms_invalid_number"
            log.info(
                "tenant=%s campaign=%s delivery=%s rcpt=%s %s",
                info.tenant,
                info.campaign_id,
                rcpt.delivery_id,
                rcpt.address,
                exc,
            )
            return store.SmsOutcome(claimed, Outcome.FAILED, reason=why, detail=str(exc))
        name = route(number, self.routes, info.routes)
        try:
            gateway = await self.provider(name)
        except registry.UnknownProvider as exc:  # a route names no provider: keep the row
            log.error(
                "tenant=%s campaign=%s delivery=%s rcpt=%s: %s",
                info.tenant,
                info.campaign_id,
                rcpt.delivery_id,
                number,
                exc,
            )
            return store.SmsOutcome(claimed, Outcome.DEFERRED, name, detail=str(exc))
        result: SmsResult = await gateway.send(
            SmsMessage(rcpt.delivery_id, number, info.sender, sms, info.tenant, info.campaign_id)
        )
        MESSAGES.labels(info.tenant, "sms", name, result.outcome.value).inc()
        if result.outcome is Outcome.SENT:
            SEGMENTS.labels(info.tenant, name).inc(sms.segments)
        else:
            log.info(
                "tenant=%s campaign=%s delivery=%s rcpt=%s via %s: %s %s %s",
                info.tenant,
                info.campaign_id,
                rcpt.delivery_id,
                number,
                name,
                result.outcome.value,
                result.code,
                result.detail,
            )
            if result.error is not None and decide(result.error).action is Action.HALT_PROVIDER:
                ALERTS.labels(name, "auth").inc()
        reason = REASONS.get(result.error) if result.error is not None else None
        return store.SmsOutcome(
            claimed,
            result.outcome,
            name,
            sms.segments,
            result.message_ids,
            reason,
            result.error,
            f"{result.code} {result.detail}".strip(),
        )

    async def _pause(self, info: SmsCampaign, outcome: store.SmsOutcome) -> None:
        ALERTS.labels(outcome.provider, "no_credit").inc()
        try:
            fresh = await asyncio.to_thread(
                store.pause_tenant_sms,
                self.ctx.engine,
                info.tenant_id,
                outcome.provider,
                outcome.detail,
                self.ctx.clock(),
            )
        except SQLAlchemyError:
            log.exception("could not record the sms pause of tenant %s", info.tenant)
            return
        info.paused = True
        if fresh:
            log.error(
                "tenant=%s bulk SMS paused: %s has no credit (%s)",
                info.tenant,
                outcome.provider,
                outcome.detail,
            )

    async def _campaign(self, campaign_id: int) -> SmsCampaign:
        info = self.campaigns.get(campaign_id)
        if info is None or time.monotonic() - info.checked_at >= STATE_TTL_S:
            info = await asyncio.to_thread(self._load, campaign_id, info)
            self.campaigns[campaign_id] = info
        return info

    def _load(self, campaign_id: int, cached: SmsCampaign | None) -> SmsCampaign:
        c, tn, profile = t.campaign.c, t.tenant.c, t.tenant_profile.c
        with self.ctx.engine.connect() as conn:
            row = conn.execute(
                select(
                    c.tenant_id,
                    tn.slug,
                    c.kind,
                    c.text,
                    c.sms_sender,
                    c.sms_policy,
                    c.sms_max_parts,
                    tn.sms_routes,
                    profile.sms_send_window,
                )
                .join(t.tenant, tn.id == c.tenant_id)
                .outerjoin(t.tenant_profile, profile.tenant_id == c.tenant_id)
                .where(c.id == campaign_id)
            ).one()
            # the one answer (core.sending_policy) for this campaign's promotional texts
            paused = not may_send(
                sending_blocks.active_scopes(conn, row.tenant_id), Channel.SMS, Kind.PROMOTIONAL
            )
        windows = self._tenant_windows(row.slug, row.sms_send_window)
        if cached is not None:
            cached.paused, cached.routes = paused, row.sms_routes or None
            cached.checked_at, cached.windows = time.monotonic(), windows
            return cached
        return SmsCampaign(
            campaign_id,
            row.tenant_id,
            row.slug,
            row.kind,
            TEXT_ENV.from_string(row.text),
            row.sms_sender or self.ctx.settings.sms_default_sender,
            Policy(row.sms_policy or Policy.UNICODE),
            row.sms_max_parts or 6,
            row.sms_routes or None,
            paused,
            time.monotonic(),
            windows,
        )

    def _tenant_windows(self, tenant: str, spec: Any) -> dict[str, quiet_hours.Window]:
        try:
            return quiet_hours.windows(spec or {})
        except quiet_hours.WindowError as exc:  # validated when set; never send in the night
            log.error(
                "tenant=%s has an unreadable SMS send window (%s): the platform's", tenant, exc
            )
            return {}
