"""What every worker shares: settings and the database engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from postgate.runtime.broker import Broker
from postgate.settings import Settings
from postgate.store.db import engine_for


@dataclass
class Context:
    settings: Settings
    engine: Engine

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        return cls(settings=settings, engine=engine_for(settings.database_url))

    def broker(self) -> Broker:
        return Broker(
            self.settings.broker_url,
            self.settings.queue_prefix,
            self.settings.broker_visibility_timeout_s,
        )
