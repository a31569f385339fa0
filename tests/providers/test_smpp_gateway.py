"""The SMPP gateway against the local SMSC over TCP: window, rate, rejections, binds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from aiosmpplib import SmppCommandStatus

from postgate.core.outcome import Outcome
from postgate.core.sms.encoding import encode
from postgate.core.sms.outcomes import SmsError
from postgate.feedback.sms import DatabaseFeedback
from postgate.providers.rate import RateLimiter
from postgate.providers.smpp import SmppGateway
from postgate.providers.sms import SmsMessage, SmsResult
from postgate.settings import Settings
from postgate.sinks.smsc import SmscSink
from postgate.store.db import engine_for

HU = "+36201234567"


@pytest.fixture
def smsc() -> Iterator[SmscSink]:
    with SmscSink() as server:
        server.state.receipts = False
        yield server


def _send(settings: Settings, messages: list[SmsMessage]) -> tuple[list[SmsResult], float]:
    async def go() -> tuple[list[SmsResult], float]:
        gateway = SmppGateway(settings, DatabaseFeedback(engine_for(settings.database_url)))
        await gateway.start()
        started = time.monotonic()
        try:
            return await gateway.send_batch(messages), time.monotonic() - started
        finally:
            await gateway.close()

    return asyncio.run(go())


def _settings(settings: Settings, smsc: SmscSink, **values: object) -> Settings:
    smpp = {"port": smsc.port, "timeout_s": 3, **values}
    return settings.model_copy(update={"providers": {"smpp": smpp}, "sms_backoff_s": 0.05})


def _messages(n: int, number: str = HU) -> list[SmsMessage]:
    return [SmsMessage(5000 + i, number, "Acme", encode("Hello")) for i in range(n)]


def test_outstanding_submits_never_exceed_the_window(settings: Settings, smsc: SmscSink) -> None:
    smsc.state.delay_s = 0.05
    results, _ = _send(_settings(settings, smsc, window=4, rate_per_s=0), _messages(24))
    assert all(r.outcome is Outcome.SENT for r in results)
    assert smsc.state.max_in_flight == 4


def test_the_messages_per_second_limit_holds(settings: Settings, smsc: SmscSink) -> None:
    _, elapsed = _send(_settings(settings, smsc, rate_per_s=50), _messages(75))
    assert elapsed >= 0.45  # a burst of 50, then 25 more at 50/s
    assert len(smsc.state.submitted) == 75


def test_an_invalid_destination_fails_without_retry(settings: Settings, smsc: SmscSink) -> None:
    smsc.state.rejecting[HU.lstrip("+")] = SmppCommandStatus.ESME_RINVDSTADR
    (result,), _ = _send(_settings(settings, smsc), _messages(1))
    assert (result.outcome, result.error, result.code) == (
        Outcome.FAILED,
        SmsError.INVALID_NUMBER,
        "ESME_RINVDSTADR",
    )
    assert smsc.state.submitted == []


def test_a_full_queue_is_retried_and_a_refused_bind_is_retried(
    settings: Settings, smsc: SmscSink
) -> None:
    smsc.state.refuse_binds = 2
    smsc.state.throttle = 2
    results, _ = _send(_settings(settings, smsc), _messages(3))
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert smsc.state.throttled == 2 and len(smsc.state.submitted) == 3


def test_an_unreachable_smsc_defers_instead_of_failing(settings: Settings) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = settings.model_copy(
        update={"smpp_port": port, "smpp_timeout_s": 0.3, "sms_retries": 0}
    )
    (result,), _ = _send(closed, _messages(1))
    assert result.outcome is Outcome.DEFERRED and result.error is SmsError.TEMPORARY


def test_the_token_bucket_spaces_acquisitions() -> None:
    async def go() -> float:
        limiter = RateLimiter(rate=200, burst=1)
        started = time.monotonic()
        for _ in range(41):
            await limiter.acquire()
        return time.monotonic() - started

    assert asyncio.run(go()) >= 0.19
