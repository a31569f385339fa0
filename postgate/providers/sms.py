"""The SMS provider interface, and the base class that owns the send algorithm.

A gateway module subclasses :class:`SmsGateway` and writes ``submit`` (translate one
SMS into the gateway's request and its reply into an :class:`SmsResult`), plus
``open``/``shut`` for its connections. The base class owns everything else, the same
for every gateway: the messages-per-second limit, the timeout of each submit, retries
with backoff for throttling and temporary errors, and halting the provider after an
authentication failure.

Delivery reports and inbound messages go to a :class:`FeedbackSink` the gateway is
given at construction; the sink writes them to the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from postgate.core.outcome import Outcome
from postgate.core.sms.encoding import EncodedSms
from postgate.core.sms.outcomes import Action, DlrStatus, SmsError, decide
from postgate.observability.metrics import SEND_SECONDS
from postgate.providers.rate import RateLimiter

log = logging.getLogger("postgate.sms")


@dataclass(frozen=True, slots=True)
class SmsMessage:
    delivery_id: int
    to: str  # E.164
    sender: str
    sms: EncodedSms
    tenant: str = ""
    campaign: int = 0


@dataclass(frozen=True, slots=True)
class SmsResult:
    outcome: Outcome
    message_ids: tuple[str, ...] = ()  # one per part (SMPP) or one per message (HTTP)
    error: SmsError | None = None
    code: str = ""  # the gateway's own code
    detail: str = ""
    unknown: bool = False  # no answer: the gateway may have taken it

    @classmethod
    def failure(
        cls, error: SmsError, code: str = "", detail: str = "", unknown: bool = False
    ) -> SmsResult:
        return cls(decide(error).outcome, (), error, code, detail, unknown)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    provider: str
    message_id: str
    status: DlrStatus
    code: str = ""
    done_at: datetime | None = None
    raw: str = ""


@dataclass(frozen=True, slots=True)
class InboundSms:
    provider: str
    sender: str  # the phone number that wrote, E.164
    recipient: str  # our number or short code
    text: str
    message_id: str = ""
    raw: str = ""


def callback_key(secret: str, provider: str) -> str:
    """The key in a gateway's callback URLs, derived from SECRET_KEY: nobody else can post
    reports (``/v1/sms/<provider>/report?k=...``, served by ``postgate.http.sms_callbacks``)."""
    mac = hmac.new(secret.encode(), f"{provider}-callback".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def callback_url(public_url: str, secret: str, provider: str, what: str = "report") -> str:
    return f"{public_url.rstrip('/')}/v1/sms/{provider}/{what}?k={callback_key(secret, provider)}"


class HttpCallbacks(Protocol):
    """What a gateway that reports over HTTP offers the callback routes: its parsers of the
    posted fields (a class attribute ``callbacks`` of its factory)."""

    @staticmethod
    def reports(params: Mapping[str, str]) -> list[tuple[DeliveryReport, int | None]]:
        """Delivery reports, each with our delivery id when the gateway echoes it."""
        ...

    @staticmethod
    def inbound(params: Mapping[str, str]) -> InboundSms | None:
        """A reply (STOP, START...), or None when the fields hold none."""
        ...


class FeedbackSink(Protocol):
    async def reports(self, reports: Sequence[DeliveryReport]) -> None: ...

    async def inbound(self, message: InboundSms) -> None: ...


class SmsProvider(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, message: SmsMessage) -> SmsResult: ...

    async def send_batch(self, messages: Sequence[SmsMessage]) -> list[SmsResult]: ...

    def health(self) -> dict[str, Any]: ...


@dataclass
class GatewayLimits:
    rate_per_s: float = 0.0  # <= 0: no limit
    timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0


@dataclass
class GatewayState:
    halted: str = ""  # why the provider stopped (auth failure), empty when running
    sent: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class SmsGateway:
    """Base class: rate limit, timeout, retry and halt; subclasses only translate."""

    name = "sms"
    retry_unknown = False  # True when a resubmission can never duplicate (idempotency key)

    def __init__(self, limits: GatewayLimits, feedback: FeedbackSink) -> None:
        self.limits = limits
        self.feedback = feedback
        self.limiter = RateLimiter(limits.rate_per_s)
        self.state = GatewayState()
        self._latency = SEND_SECONDS.labels("sms", self.name)

    async def open(self) -> None:
        """Open connections (subclasses)."""

    async def shut(self) -> None:
        """Close connections (subclasses)."""

    async def submit(self, message: SmsMessage) -> SmsResult:
        raise NotImplementedError

    async def start(self) -> None:
        await self.open()

    async def close(self) -> None:
        await self.shut()

    def health(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "halted": self.state.halted,
            "sent": self.state.sent,
            "errors": dict(self.state.errors),
        }

    async def send_batch(self, messages: Sequence[SmsMessage]) -> list[SmsResult]:
        return list(await asyncio.gather(*(self.send(m) for m in messages)))

    async def send(self, message: SmsMessage) -> SmsResult:
        limits = self.limits
        attempt = 0
        while True:
            if self.state.halted:
                return SmsResult.failure(
                    SmsError.AUTH, detail=f"provider halted: {self.state.halted}"
                )
            await self.limiter.acquire()
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(self.submit(message), limits.timeout_s)
            except (TimeoutError, ConnectionError, OSError) as exc:
                result = SmsResult.failure(
                    SmsError.TEMPORARY, detail=f"no answer: {exc!r}", unknown=True
                )
            self._latency.observe(time.perf_counter() - started)
            if result.error is None:
                self.state.sent += 1
                return result
            self.state.errors[result.error.value] = self.state.errors.get(result.error.value, 0) + 1
            decision = decide(result.error)
            if decision.action is Action.HALT_PROVIDER:
                self.state.halted = f"{result.code} {result.detail}".strip()
                log.error(
                    "provider %s halted: %s (tenant=%s campaign=%s)",
                    self.name,
                    self.state.halted,
                    message.tenant,
                    message.campaign,
                )
            retry = decision.retry_now and (not result.unknown or self.retry_unknown)
            if not retry or attempt >= limits.retries:
                return result
            delay = min(limits.backoff_max_s, limits.backoff_s * 2**attempt)
            if result.error is SmsError.THROTTLED:
                self.limiter.slow_down(delay)
            attempt += 1
            log.info(
                "provider %s: %s for delivery %s, retry %d in %.2fs",
                self.name,
                result.error.value,
                message.delivery_id,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)
