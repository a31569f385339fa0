"""`postgate api` believes X-Forwarded-For only from proxies named in FORWARDED_ALLOW_IPS:
by default a client that writes a fresh address into it on every attempt is still one
client to the operator-login limiter (20 per 10 minutes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from postgate.operator_page.routes import LOGIN_LIMIT
from postgate.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_process(settings: Settings, logs: Path, **extra: str) -> Iterator[str]:
    """`postgate api` itself (uvicorn.run as the CLI calls it) on a free port."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k != "FORWARDED_ALLOW_IPS"}
    env = inherited | {
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": settings.broker_url,
        "REDIS_URL": settings.redis_url,
        "QUEUE_PREFIX": settings.queue_prefix,
        **extra,
    }
    log = logs / f"api-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "postgate", "api", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "api did not start"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def attempt(http: httpx.Client, forwarded_for: str) -> int:
    return http.post(
        "/operator/login",
        data={"key": "pg_not-a-key"},
        headers={"Origin": str(http.base_url).rstrip("/"), "X-Forwarded-For": forwarded_for},
    ).status_code


def test_by_default_a_fresh_forwarded_address_per_attempt_is_still_limited(
    settings: Settings, tmp_path: Path
) -> None:
    with api_process(settings, tmp_path) as base, httpx.Client(base_url=base, timeout=10) as http:
        codes = [attempt(http, f"198.51.100.{i}") for i in range(1, LOGIN_LIMIT + 3)]
    assert codes[:LOGIN_LIMIT] == [401] * LOGIN_LIMIT
    assert codes[LOGIN_LIMIT:] == [429, 429]


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_limited(
    settings: Settings, tmp_path: Path
) -> None:
    with (
        api_process(settings, tmp_path, FORWARDED_ALLOW_IPS="127.0.0.1") as base,
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        spread = [attempt(http, f"198.51.100.{i}") for i in range(1, LOGIN_LIMIT + 3)]
        assert spread == [401] * (LOGIN_LIMIT + 2)  # different clients behind the proxy
        one = [attempt(http, "203.0.113.7") for _ in range(LOGIN_LIMIT + 1)]
        assert one == [401] * LOGIN_LIMIT + [429]
        assert attempt(http, "203.0.113.8") == 401  # another client is not locked out
