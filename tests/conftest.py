"""Fixtures: a real database (SQLite or the PostgreSQL named by DATABASE_URL), a real
broker (in-process or the one named by BROKER_URL) and a real aiosmtpd server."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.sinks.smtp import SmtpSink
from postgate.store.db import migrate, normalise_url
from tests.dns_server import LocalDns
from tests.support import World, serve_api

# postgate has no default SECRET_KEY and the api and workers refuse to start without one:
# the suite makes its own, in the environment, so every Settings() it builds and every
# process it starts (they inherit os.environ) has it. CI sets none.
if len(os.environ.get("SECRET_KEY", "")) < 32:
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(48)
os.environ.pop("SECRET_KEY_FILE", None)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith("postgres"):
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        migrate(url)
        yield url
        return
    admin_url = make_url(normalise_url(configured))
    name = f"postgate_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    from postgate.store.db import engine_for

    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture(scope="session")
def suite_dns() -> Iterator[LocalDns]:
    """The DNS server every test's settings name (tests only talk to 127.0.0.1): empty
    unless a test publishes, e.g. the records of a tenant it provisions
    (``tests.support.publish_domain``)."""
    server = LocalDns()
    yield server
    server.close()


@pytest.fixture
def settings(database_url: str, sink: SmtpSink, suite_dns: LocalDns) -> Settings:
    return Settings(
        database_url=database_url,
        broker_url=os.environ.get("BROKER_URL", "memory://"),
        redis_url=os.environ.get("REDIS_URL", ""),
        queue_prefix=f"t{uuid.uuid4().hex[:12]}",
        providers={"smtp": {"port": sink.port, "connections": 4, "timeout_s": 5}},
        retry_base_s=0.2,
        retry_max_s=1,
        sweep_interval_s=0.1,
        poll_interval_s=0.01,
        batch_size=50,
        page_size=120,
        use_uvloop=False,
        # promotional SMS wait for 08:00-20:00 in the recipient's zone: the suite opens the
        # window all day so that it passes at any hour; tests/sms/test_send_window.py
        # sets the real one with a clock of its own
        sms_send_window="*=00:00-24:00",
        dns_resolver=suite_dns.address,
        dns_timeout_s=2,
    )


@pytest.fixture
def ctx(settings: Settings) -> Context:
    return Context.from_settings(settings)


@pytest.fixture
def world(ctx: Context, sink: SmtpSink) -> World:
    return World.create(ctx, sink)


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    """The real api served by uvicorn on 127.0.0.1; yields its base URL."""
    yield from serve_api(settings)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return Path(__file__).parent / "fixtures"


@pytest.fixture
def dns_server() -> Iterator[LocalDns]:
    """The tests' DNS server on 127.0.0.1 (TXT, MX, A records the test publishes)."""
    server = LocalDns()
    yield server
    server.close()


@pytest.fixture
def dns(dns_server: LocalDns) -> LocalDns:
    return dns_server
