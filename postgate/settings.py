"""All configuration, read from the environment in one place.

The embedded defaults (SQLite, kombu's in-process ``memory://`` transport, in-process
pub/sub) run the whole pipeline on one machine with no services. Production swaps in
PostgreSQL, Redis or RabbitMQ by URL alone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = "sqlite:///postgate.db"
    broker_url: str = "memory://"
    redis_url: str = ""  # empty: in-process pub/sub (embedded mode)
    queue_prefix: str = "postgate"

    # SMTP smarthost
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_connections: int = Field(default=16, ge=1, le=512)
    smtp_timeout_s: float = 30.0
    smtp_validate_certs: bool = True

    # identity of this platform
    secret_key: str = "change-me-in-production"
    public_url: str = "http://127.0.0.1:8000"
    bounce_domain: str = "bounces.postgate.invalid"
    helo_name: str = "postgate.invalid"

    # pipeline shape
    page_size: int = Field(default=2000, ge=1)
    batch_size: int = Field(default=500, ge=1)
    sender_prefetch: int = Field(default=4, ge=1)
    max_message_bytes: int = 1_000_000

    # retries and leases
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0
    retry_deadline_s: float = 3 * 24 * 3600.0
    lease_s: float = 300.0
    requeue_queued_after_s: float = 900.0
    sweep_interval_s: float = 1.0
    poll_interval_s: float = 0.05

    # content policy and sending domains
    lexicon_dir: str = ""  # empty: the lexicons shipped in postgate/delivery/lexicons
    dns_resolver: str = ""  # "host:port" for TXT look-ups; empty: the system resolver
    dns_timeout_s: float = 5.0
    dkim_algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"

    use_uvloop: bool = True
    metrics_port: int = 0  # workers serve /metrics here when set


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
