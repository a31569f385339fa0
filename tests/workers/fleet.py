"""Real worker processes for fault tests: spawn them with a settings object's URLs, keep
their stderr in files (a worker that dies leaves its traceback), and stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from postgate.providers.smtp import SmtpSettings
from postgate.settings import Settings

BATCH, PREFETCH = 50, 2


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": settings.broker_url,
        "REDIS_URL": settings.redis_url,
        "QUEUE_PREFIX": settings.queue_prefix,
        "SMTP_PORT": str(settings.provider(SmtpSettings).port),
        "SMTP_CONNECTIONS": "4",
        "SMTP_TIMEOUT_S": str(settings.provider(SmtpSettings).timeout_s),
        "BATCH_SIZE": str(BATCH),
        "SENDER_PREFETCH": str(PREFETCH),
        "LEASE_S": "3",
        "ORPHAN_AFTER_S": "2",
        "SWEEP_INTERVAL_S": "0.2",
        "POLL_INTERVAL_S": "0.02",
        "RETRY_BASE_S": "0.2",
        "RETRY_MAX_S": "1",
        "CANARY_MIN_AUDIENCE": "0",
        "SECRET_KEY": settings.secret_key,
        "DNS_RESOLVER": settings.dns_resolver,
        "DNS_TIMEOUT_S": str(settings.dns_timeout_s),
        **extra,
    }


def wait_until(until: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    """Poll ``until()`` (the workers run in other processes) until it holds or time is up."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


@dataclass
class Fleet:
    settings: Settings
    logs: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def spawn(self, *names: str, **extra: str) -> subprocess.Popen[bytes]:
        label = "+".join(names) + f"-{len(self.procs)}"
        log = (self.logs / f"{label}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "postgate", "worker", *names],
            env=worker_env(self.settings, **extra),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        self.procs.append((label, proc))
        return proc

    def dead(self) -> dict[str, str]:
        """Workers that exited on their own: exit code and the tail of what they wrote."""
        return {
            label: f"exit {p.returncode}: {self.tail(label)}"
            for label, p in self.procs
            if p.poll() is not None
        }

    def tail(self, label: str, chars: int = 3000) -> str:
        return (self.logs / f"{label}.log").read_text(errors="replace")[-chars:]

    def stop(self) -> dict[str, int]:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for label, proc in self.procs:
            try:
                codes[label] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[label] = proc.wait()
        return codes
