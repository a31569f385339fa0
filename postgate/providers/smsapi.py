"""SMSAPI (smsapi.com / smsapi.pl), the international gateway, over HTTP with aiohttp.

One ``aiohttp.ClientSession`` with a large keep-alive pool serves every send. Each
SMS is one ``POST {base}/sms.do`` with a Bearer token, ``format=json``, our delivery
id as ``idx`` and ``check_idx=1``: the gateway refuses a second message with the same
idx, so a retry after a lost answer can never send twice (``retry_unknown``).

Errors can come with HTTP 200: the body's ``error`` code decides, mapped here to the
normalised :class:`SmsError` kinds; the base class decides what each kind means.
Delivery reports arrive as callbacks on ``notify_url`` (see :mod:`postgate.http.sms_callbacks`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from postgate.core.outcome import Outcome
from postgate.core.sms.outcomes import DlrStatus, SmsError
from postgate.core.tokens import row_id
from postgate.providers.sms import (
    DeliveryReport,
    FeedbackSink,
    GatewayLimits,
    InboundSms,
    SmsGateway,
    SmsMessage,
    SmsResult,
    callback_url,
)
from postgate.providers.sms import callback_key as sms_callback_key
from postgate.settings import ProviderSettings, Settings


def callback_key(secret: str) -> str:
    return sms_callback_key(secret, "smsapi")


def notify_url(public_url: str, secret: str) -> str:
    return callback_url(public_url, secret, "smsapi")


ERRORS: dict[int, SmsError] = {
    8: SmsError.REJECTED,
    11: SmsError.REJECTED,
    12: SmsError.REJECTED,
    13: SmsError.INVALID_NUMBER,
    14: SmsError.REJECTED,
    17: SmsError.REJECTED,
    18: SmsError.REJECTED,
    20: SmsError.REJECTED,
    101: SmsError.AUTH,
    102: SmsError.AUTH,
    103: SmsError.NO_CREDIT,
    105: SmsError.AUTH,
    200: SmsError.TEMPORARY,
    201: SmsError.TEMPORARY,
    202: SmsError.THROTTLED,
    203: SmsError.THROTTLED,
    999: SmsError.TEMPORARY,
}
DUPLICATE_IDX = 53  # check_idx=1: a message with this idx was already accepted

STATUSES: dict[str, DlrStatus] = {
    "401": DlrStatus.UNKNOWN,
    "402": DlrStatus.EXPIRED,
    "403": DlrStatus.ACCEPTED,
    "404": DlrStatus.DELIVERED,
    "405": DlrStatus.UNDELIVERED,
    "406": DlrStatus.UNDELIVERED,
    "407": DlrStatus.REJECTED,
    "408": DlrStatus.UNKNOWN,
    "409": DlrStatus.ACCEPTED,
    "410": DlrStatus.ACCEPTED,
}


def classify(http_status: int, body: str) -> SmsResult:
    """Translate one ``sms.do`` answer (HTTP status and body) into a result. Pure."""
    try:
        data: Any = json.loads(body) if body else {}
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        if http_status >= 500 or http_status == 429:
            return SmsResult.failure(SmsError.TEMPORARY, str(http_status), body[:200])
        return SmsResult.failure(SmsError.UNKNOWN, str(http_status), body[:200])
    if data.get("error"):
        error = str(data["error"])
        code = int(error) if error.isascii() and error.isdigit() else -1
        message = str(data.get("message", ""))
        if code == DUPLICATE_IDX:
            return SmsResult(Outcome.SENT, (), None, str(code), "already accepted (idx)")
        kind = ERRORS.get(code)
        if kind is None:
            kind = SmsError.TEMPORARY if http_status >= 500 else SmsError.UNKNOWN
        return SmsResult.failure(kind, str(code), message)
    if http_status in (401, 403):
        return SmsResult.failure(SmsError.AUTH, str(http_status), body[:200])
    if http_status >= 500 or http_status == 429:
        return SmsResult.failure(SmsError.TEMPORARY, str(http_status), body[:200])
    items = data.get("list") or []
    ids = tuple(str(item["id"]) for item in items if isinstance(item, dict) and "id" in item)
    if not ids:
        return SmsResult.failure(SmsError.UNKNOWN, str(http_status), body[:200])
    return SmsResult(Outcome.SENT, ids, None, str(http_status))


def parse_callback(params: Mapping[str, str]) -> list[DeliveryReport]:
    """Delivery reports from a ``notify_url`` callback; SMSAPI batches them as
    comma-separated lists (MsgId, status, idx, donedate...). Pure."""
    ids = [v.strip() for v in params.get("MsgId", "").split(",") if v.strip()]
    statuses = params.get("status", "").split(",")
    done = params.get("donedate", "").split(",")
    reports = []
    for i, message_id in enumerate(ids):
        code = statuses[i].strip() if i < len(statuses) else ""
        stamp = done[i].strip() if i < len(done) else ""
        reports.append(
            DeliveryReport(
                "smsapi",
                message_id,
                STATUSES.get(code, DlrStatus.UNKNOWN),
                code,
                _stamp(stamp),
                json.dumps(dict(params))[:2000],
            )
        )
    return reports


def _stamp(text: str) -> datetime | None:
    """Unix seconds as a time; None for anything else (other digits, out of range)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        return None
    try:
        return datetime.fromtimestamp(int(text), UTC)
    except (ValueError, OverflowError, OSError):
        return None


class Callbacks:
    """SMSAPI calls ``notify_url`` with the report as query (GET) or form (POST) fields and
    expects ``OK``; our delivery id comes back as ``idx``, which ties a report to its row
    even before the sender recorded the MsgId."""

    @staticmethod
    def reports(params: Mapping[str, str]) -> list[tuple[DeliveryReport, int | None]]:
        reports = parse_callback(params)
        idx = [row_id(v) for v in params.get("idx", "").split(",")]
        return [(r, idx[i] if i < len(idx) else None) for i, r in enumerate(reports)]

    @staticmethod
    def inbound(params: Mapping[str, str]) -> InboundSms | None:
        message = InboundSms(
            "smsapi",
            params.get("sms_from", ""),
            params.get("sms_to", ""),
            params.get("sms_text", ""),
            params.get("MsgId", ""),
            str(sorted(params.items()))[:2000],
        )
        return message if message.sender and message.text else None


class SmsApiSettings(ProviderSettings):
    """``SMSAPI_URL``, ``SMSAPI_TOKEN``, ``SMSAPI_CONNECTIONS``, ``SMSAPI_RATE_PER_S``,
    ``SMSAPI_TIMEOUT_S``."""

    model_config = SettingsConfigDict(env_prefix="SMSAPI_", env_file=None, extra="ignore")
    name: ClassVar[str] = "smsapi"
    url: str = "https://api.smsapi.com"
    token: str = ""
    connections: int = Field(default=50, ge=1)
    rate_per_s: float = 0.0  # 0: no limit of our own
    timeout_s: float = 10.0


class SmsApiGateway(SmsGateway):
    name = "smsapi"
    callbacks = Callbacks
    retry_unknown = True  # idx + check_idx=1 make a resubmission harmless

    def __init__(self, settings: Settings, feedback: FeedbackSink) -> None:
        own = settings.provider(SmsApiSettings)
        super().__init__(
            GatewayLimits(
                own.rate_per_s, own.timeout_s, settings.sms_retries, settings.sms_backoff_s
            ),
            feedback,
        )
        self.url = own.url.rstrip("/") + "/sms.do"
        self.token = own.token
        self.notify_url = notify_url(settings.public_url, settings.secret_key)
        self.connections = own.connections
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections),
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=self.limits.timeout_s),
            )

    async def shut(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def form(self, message: SmsMessage) -> dict[str, str]:
        return {
            "to": message.to.lstrip("+"),
            "message": message.sms.text,
            "from": message.sender,
            "format": "json",
            "encoding": "utf-8",
            "idx": str(message.delivery_id),
            "check_idx": "1",
            "max_parts": str(max(message.sms.segments, 1)),
            "notify_url": self.notify_url,
        }

    async def submit(self, message: SmsMessage) -> SmsResult:
        await self.open()
        assert self.session is not None
        try:
            async with self.session.post(self.url, data=self.form(message)) as response:
                body = await response.text()
                return classify(response.status, body)
        except aiohttp.ClientConnectorError as exc:  # never reached the gateway
            return SmsResult.failure(SmsError.TEMPORARY, detail=f"connect: {exc}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SmsResult.failure(SmsError.TEMPORARY, detail=f"no answer: {exc!r}", unknown=True)
