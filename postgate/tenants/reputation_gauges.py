"""The breaker's own window counts as gauges, read from the database at scrape time.

``postgate_breaker_window{tenant,count}``: per tenant with anything in the breaker's
rolling window (the last ``BREAKER_WINDOW_DAYS``, as the operator page shows it),
``sent``, ``delivered``, ``complaints``, ``hard_bounces``, ``policy_blocks`` and
``auth_failures`` — the numbers ``reputation.measure`` gives the breaker — and
``postgate_breaker_rate{tenant,rate}`` with the four rates it judges. Cached for
``ttl_s`` so a busy scraper does not load the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, select

from postgate.core.clock import utcnow
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.tenants import reputation

log = logging.getLogger("postgate.gauges")
COUNTS = ("sent", "delivered", "complaints", "hard_bounces", "policy_blocks", "auth_failures")


class BreakerGauges(Collector):
    def __init__(self, engine: Engine, settings: Settings, ttl_s: float = 5.0) -> None:
        self.engine, self.settings, self.ttl_s = engine, settings, ttl_s
        self._cached: tuple[float, list[Metric]] | None = None

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        if self._cached is None or time.monotonic() - self._cached[0] > self.ttl_s:
            try:
                self._cached = (time.monotonic(), self._read())
            except Exception:
                log.exception("reading breaker gauges failed")
                return
        yield from self._cached[1]

    def _read(self) -> list[Metric]:
        now = utcnow()
        counts = GaugeMetricFamily(
            "postgate_breaker_window",
            "The circuit breaker's counts in its rolling window, per tenant.",
            labels=["tenant", "count"],
        )
        rates = GaugeMetricFamily(
            "postgate_breaker_rate",
            "The rates the circuit breaker judges (complaint per delivered; hard_bounce, "
            "policy_block, auth_failure per sent), per tenant.",
            labels=["tenant", "rate"],
        )
        with self.engine.connect() as conn:
            start = now - reputation.thresholds(self.settings).window
            windows = reputation.measure_all(conn, start, now)
            slugs = {
                int(r[0]): str(r[1]) for r in conn.execute(select(t.tenant.c.id, t.tenant.c.slug))
            }
        for tenant_id, window in windows.items():
            slug = slugs.get(tenant_id, str(tenant_id))
            for name in COUNTS:
                counts.add_metric([slug, name], getattr(window, name))
            rates.add_metric([slug, "complaint"], window.complaint_rate())
            rates.add_metric([slug, "hard_bounce"], window.hard_bounce_rate())
            rates.add_metric([slug, "policy_block"], window.policy_block_rate())
            rates.add_metric([slug, "auth_failure"], window.auth_failure_rate())
        return [counts, rates]
