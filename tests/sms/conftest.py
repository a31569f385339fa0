"""SMS fixtures: a local SMSC (real SMPP over TCP) and a local SMSAPI stand-in (HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postgate.settings import Settings
from postgate.sinks.smsapi import SmsApiSink
from postgate.sinks.smsc import SmscSink
from tests.support import World, serve_api


@pytest.fixture
def smsc() -> Iterator[SmscSink]:
    with SmscSink() as server:
        yield server


@pytest.fixture
def smsapi() -> Iterator[SmsApiSink]:
    with SmsApiSink() as server:
        yield server


@pytest.fixture
def settings(settings: Settings, smsc: SmscSink, smsapi: SmsApiSink) -> Settings:
    settings.providers["smpp"] = {
        "port": smsc.port,
        "system_id": "postgate",
        "password": "secret",
        "timeout_s": 3,
        "rate_per_s": 0,
    }
    settings.providers["smsapi"] = {"url": smsapi.url, "token": smsapi.state.token, "timeout_s": 3}
    settings.sms_backoff_s = 0.05
    return settings


@pytest.fixture
def api_url(world: World) -> Iterator[str]:
    """The api on a real port, and the public URL the SMS callbacks name."""
    served = serve_api(world.ctx.settings)
    url = next(served)
    world.ctx.settings.public_url = url
    yield url
    next(served, None)
