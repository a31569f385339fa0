"""All configuration, read from the environment in one place.

The embedded defaults (SQLite, kombu's in-process ``memory://`` transport, in-process
pub/sub) run the whole pipeline on one machine with no services. Production swaps in
PostgreSQL, Redis or RabbitMQ by URL alone.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import AliasChoices, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from postgate.core.warmup import parse_schedule


class ProviderSettings(BaseSettings):
    """A provider's own settings: defined in the provider's module with its environment
    prefix (``SMSAPI_URL`` for ``SmsApiSettings.url``), read by ``Settings.provider``."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")
    name: ClassVar[str]


P = TypeVar("P", bound=ProviderSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = "sqlite:///postgate.db"
    broker_url: str = "memory://"
    redis_url: str = ""  # empty: in-process pub/sub (embedded mode)
    queue_prefix: str = "postgate"

    # the smarthost's SMTP_* and direct-to-MX's MX_* settings: providers/smtp.py, mx_dns.py
    email_provider: str = "smtp"  # "smtp" (the smarthost above) or "mx" (direct to MX)
    # direct-to-MX traffic shaping: provider groups, their limits and the rules acting on
    # replies (TOML; empty: postgate/providers/shaping.toml); shared through REDIS_URL
    shaping_file: str = ""

    # identity of this platform
    # SECRET_KEY signs unsubscribe links, VERP addresses, SMS callback URLs and operator
    # CSRF tokens. There is no default: the api and the workers refuse to start without
    # one of at least MIN_SECRET_CHARS characters (`postgate secret new` prints one).
    secret_key: str = ""
    # SECRET_KEY_FILE: a file holding the key (`postgate secret new --write PATH`); read
    # only when SECRET_KEY is empty.
    secret_key_file: str = ""
    # SECRET_KEYS_PREVIOUS (a JSON list): keys retired by a rotation that still verify
    # tokens signed before it, for as long as links made with them may come back.
    # New tokens are always signed with SECRET_KEY.
    secret_keys_previous: list[str] = Field(default_factory=list)
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
    # a sender renews its rows' lease every LEASE_S / 3 while it holds them, so a dead
    # sender's rows are retried about LEASE_S after it died, a live one's never
    lease_s: float = Field(default=30.0, gt=0)
    # a planner renews its campaign's planning lease as it goes; the sweeper re-plans a
    # campaign left in planning once its lease has run out (a planner died)
    plan_lease_s: float = Field(default=30.0, gt=0)
    # the sender writes outcomes as they come, in flushes of this many or after this long,
    # so a killed sender re-sends only what was in flight or not yet flushed
    outcome_flush_count: int = Field(default=32, ge=1)
    outcome_flush_s: float = Field(default=0.1, gt=0)
    # how long broker messages taken but never acked (the worker died) stay invisible
    # before they are handed out again (the Redis transport; AMQP does it on disconnect)
    broker_visibility_timeout_s: float = Field(default=60.0, gt=0)
    # feedback naming deliveries by the pre-MAC reference formats is accepted only for
    # campaigns created before that change and at most this many days old
    legacy_refs_days: float = Field(default=7.0, ge=0.0)
    requeue_queued_after_s: float = 900.0  # a queued row this old is republished anyway
    orphan_after_s: float = 15.0  # ... or this old when the send queue is empty
    sweep_interval_s: float = 1.0
    poll_interval_s: float = 0.05

    retention_interval_s: float = 6 * 3600.0
    # feedback listener, soft-bounce scoring and the tenant circuit breaker
    feedback_host: str = "127.0.0.1"
    feedback_port: int = 2525
    soft_bounce_score: int = 5  # soft bounces ...
    soft_bounce_days: int = 3  # ... on at least this many distinct days ...
    soft_bounce_window_days: int = 30  # ... within this window suppress the address
    breaker_complaint_rate: float = 0.001  # trips above 1 complaint per 1000 delivered
    breaker_hard_bounce_rate: float = 0.05  # trips above 5% hard bounces per sent
    breaker_policy_block_rate: float = 0.05  # trips above 5% refused as spam/by policy per sent
    breaker_auth_failure_rate: float = 0.02  # trips above 2% refused for SPF/DKIM/DMARC per sent
    breaker_min_volume: int = 1000  # no verdict on fewer sent emails in the window
    breaker_window_days: float = 7.0
    breaker_repeat_days: float = 30.0  # a second trip within this suspends
    sending_state_refresh_s: float = 5.0  # senders also re-read blocks this often
    canary_min_audience: int = 5000  # promotional campaigns this large go to a slice first
    canary_fraction: float = Field(default=0.02, gt=0, le=1)
    canary_wait_s: float = 3600.0  # after planning, before judging the slice
    webhook_secrets: dict[str, str] = Field(default_factory=dict)  # provider -> HMAC secret
    # the event stream back to the CRM (postgate/events): the outbox is relayed to the
    # "<QUEUE_PREFIX>.events" topic exchange and posted to the tenants' webhook endpoints
    events_exchange: bool = True
    events_poll_s: float = Field(default=0.2, gt=0)
    events_retention_days: float = Field(default=30.0, gt=0)  # published events kept this long
    # webhook endpoints may not resolve to loopback, private, link-local or reserved
    # addresses unless inside these networks (comma-separated CIDRs, e.g. "10.1.0.0/16"),
    # and plain http:// is accepted only for such an allowed, internal address
    webhook_allow_networks: str = ""
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_batch: int = Field(default=100, ge=1, le=1000)  # events per POST
    webhook_retry_for_s: float = Field(default=24 * 3600.0, gt=0)  # then dead-lettered
    webhook_backoff_s: float = Field(default=5.0, gt=0)  # first retry; doubles each time
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0)
    webhook_concurrency: int = Field(default=16, ge=1)  # endpoints posted to at once
    # Amazon SES notifications over SNS (POST /v1/webhooks/ses): the topics we subscribed;
    # empty turns the route off. Hosts we fetch SigningCertURL and SubscribeURL from:
    # {region} is an AWS region name; https only (http to a listed loopback host, tests)
    ses_sns_topics: list[str] = Field(default_factory=list)
    sns_hosts: list[str] = Field(
        default_factory=lambda: ["sns.{region}.amazonaws.com", "sns.{region}.amazonaws.com.cn"]
    )
    # SMS gateways (see postgate/sms and postgate/providers)
    sms_routes: str = "36=smpp,*=smsapi"  # calling code -> provider; tenants can override
    sms_default_sender: str = "postgate"
    sms_opt_out_text: str = "Leiratkozas: valasz STOP"  # appended to promotional SMS
    sms_retries: int = Field(default=3, ge=0)
    sms_backoff_s: float = 0.5
    sms_price_per_part: dict[str, float] = Field(default_factory=dict)  # provider -> price
    # promotional SMS go only inside this daily window in the recipient's local time (per
    # ISO region, "*" for the rest; a tenant's profile can set its own), else they wait as
    # deferred rows until it opens; a number that names no time zone is read in this zone
    sms_send_window: str = "*=08:00-20:00"
    sms_send_window_zone: str = "Europe/Budapest"
    # each provider's own settings (SMSAPI_*, SMPP_*) live in its module as a ProviderSettings
    # model read from the environment; these override them by provider name (tests, embedding)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # content policy and sending domains
    lexicon_dir: str = ""  # empty: the lexicons shipped in postgate/core/lexicons
    dns_resolver: str = ""  # "host:port" for TXT look-ups; empty: the system resolver
    dns_timeout_s: float = 5.0
    dkim_algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"
    dkim_dual: bool = False  # new domains get a second key of the other algorithm (RFC 8463)
    # signing off the sender's loop (workers/signing.py): processes, or threads; how many
    # per sender (0: one per core; DKIM_THREADS is the older name)
    dkim_pool: Literal["process", "thread"] = "process"
    dkim_workers: int = Field(
        default=0, ge=0, validation_alias=AliasChoices("dkim_workers", "dkim_threads")
    )
    # the authentication preflight (tenants/preflight.py): the platform's sending hosts a
    # tenant domain's SPF must authorise, comma-separated "include:DOMAIN" terms and IP
    # addresses or networks (empty: any valid v=spf1 record will do); bulk campaigns From
    # a domain whose latest preflight fails are refused (PREFLIGHT_ENFORCE); the sweeper
    # checks each domain again once its result is PREFLIGHT_INTERVAL_S old
    spf_include: str = ""
    preflight_enforce: bool = True
    preflight_interval_s: float = Field(default=24 * 3600.0, gt=0)
    # warm-up (core/warmup.py): a domain verified through the API sends at most this many
    # messages per provider group per UTC day, one stage further each clean day, then no cap
    warmup_enabled: bool = True
    warmup_schedule: str = "500,1000,2500,5000,10000,25000,50000,100000,250000"

    @field_validator("warmup_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        parse_schedule(value)
        return value

    use_uvloop: bool = True

    # signup forms and consent (postgate/consent)
    signup_token_ttl_s: float = 7 * 24 * 3600.0
    signup_rate_per_ip: int = Field(default=20, ge=1)  # form posts per IP per window
    signup_rate_per_form: int = Field(default=1000, ge=1)  # form posts per form per window
    signup_rate_window_s: float = 600.0
    signup_sms_per_day: int = Field(default=500, ge=0)  # confirmation SMS per tenant per 24 h
    signup_sms_regions: str = "HU"  # where forms may text a confirmation (ISO codes, or *)
    reminder_after_days: int = Field(default=90, ge=1)  # provenance footer after this silence
    metrics_port: int = 0  # workers serve /metrics here when set
    # the operator web page (postgate/operator_page)
    operator_session_ttl_s: float = Field(default=8 * 3600.0, gt=0)  # a login lasts this long
    operator_refresh_s: float = Field(default=3.0, gt=0)  # the page re-reads its panels
    # proxies whose X-Forwarded-For / X-Forwarded-Proto the api believes (uvicorn's
    # comma-separated IPs or networks, or "*"); empty: trust none, ignore those headers
    forwarded_allow_ips: str = ""

    _secret_problem: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _read_secret_file(self) -> Settings:
        if self.secret_key or not self.secret_key_file:
            return self
        try:
            self.secret_key = Path(self.secret_key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            self._secret_problem = (
                f"SECRET_KEY_FILE {self.secret_key_file!r} cannot be "
                f"read ({exc.__class__.__name__}: {exc})"
            )
        return self

    @property
    def keys(self) -> tuple[str, ...]:
        """SECRET_KEY first (it signs), then SECRET_KEYS_PREVIOUS (they still verify)."""
        return (
            self.secret_key,
            *(k for k in self.secret_keys_previous if k and k != self.secret_key),
        )

    def provider(self, model: type[P]) -> P:
        """The settings of one provider: its environment, overridden by ``providers``."""
        return model(**self.providers.get(model.name, {}))

    def with_provider(self, name: str, **values: Any) -> Settings:
        """A copy whose overrides of provider ``name`` also hold ``values``."""
        merged = {**self.providers, name: {**self.providers.get(name, {}), **values}}
        return self.model_copy(update={"providers": merged})

    def require_secret(self) -> str:
        """The secret key, or :class:`MissingSecret` when it is unset or too short to be
        one: the api and the workers call this before they start."""
        if self._secret_problem:
            raise MissingSecret(self._secret_problem)
        if len(self.secret_key) < MIN_SECRET_CHARS:
            where = (
                f" (nor in SECRET_KEY_FILE {self.secret_key_file!r})"
                if self.secret_key_file
                else ""
            )
            raise MissingSecret(
                f"SECRET_KEY is not set{where} (or shorter than {MIN_SECRET_CHARS} "
                "characters): generate one with 'postgate secret new' and put it in the "
                "environment"
            )
        return self.secret_key


MIN_SECRET_CHARS = 32


class MissingSecret(RuntimeError):
    """No usable SECRET_KEY: the message is one line naming the setting."""


def new_secret() -> str:
    return secrets.token_urlsafe(48)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
