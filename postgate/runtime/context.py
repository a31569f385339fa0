"""What every worker shares: settings and the database engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from postgate.core.clock import utcnow
from postgate.runtime.broker import Broker
from postgate.settings import Settings
from postgate.store.db import engine_for


@dataclass
class Context:
    settings: Settings
    engine: Engine
    # what the time is: the sweeper and the SMS send window read it (tests set a clock)
    clock: Callable[[], datetime] = field(default=utcnow)

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        return cls(settings=settings, engine=engine_for(settings.database_url))

    def broker(self) -> Broker:
        return Broker(
            self.settings.broker_url,
            self.settings.queue_prefix,
            self.settings.broker_visibility_timeout_s,
        )
