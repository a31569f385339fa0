"""Fixtures of the event stream's tests: a CRM webhook receiver, the api allowing it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postgate.settings import Settings
from tests.events.receiver import Receiver, serve
from tests.support import serve_api
from tests.workers.listening import listener

__all__ = ["listener"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with webhooks to 127.0.0.1 allowed (the operator's choice;
    nothing else internal is) and short retries."""
    settings.webhook_allow_networks = "127.0.0.1/32"
    settings.webhook_backoff_s = 0.05
    settings.webhook_backoff_max_s = 0.2
    settings.events_poll_s = 0.05
    return settings


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    yield from serve_api(settings)
