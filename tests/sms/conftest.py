"""SMS fixtures: a local SMSC (real SMPP over TCP) and a local SMSAPI stand-in (HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postgate.settings import Settings
from postgate.sinks.smsapi import SmsApiSink
from postgate.sinks.smsc import SmscSink


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
    settings.smpp_port = smsc.port
    settings.smpp_system_id = "postgate"
    settings.smpp_password = "secret"
    settings.smpp_timeout_s = 3
    settings.smpp_rate_per_s = 0
    settings.smsapi_url = smsapi.url
    settings.smsapi_token = smsapi.state.token
    settings.smsapi_timeout_s = 3
    settings.sms_backoff_s = 0.05
    return settings
