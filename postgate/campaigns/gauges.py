"""Gauges an operator needs that are facts in the database, read at scrape time.

A counter per process cannot say "how many rows wait" or "which tenants are stopped";
the database can, in a few indexed queries. The api registers this collector; results
are cached for ``ttl_s`` so a busy scraper does not load the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from postgate.core.clock import aware, utcnow
from postgate.core.states import DeliveryState, TenantStatus
from postgate.events import gauges as event_gauges
from postgate.store import tables as t

log = logging.getLogger("postgate.gauges")
OPEN = (DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.DEFERRED, DeliveryState.HELD)


class PipelineGauges(Collector):
    def __init__(
        self, engine: Engine, depth: Callable[[], dict[str, int]] | None = None, ttl_s: float = 5.0
    ) -> None:
        self.engine = engine
        self.depth = depth  # broker queue depths, when there is a broker to ask
        self.ttl_s = ttl_s
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        if self._cached is None or time.monotonic() - self._cached[0] > self.ttl_s:
            try:
                self._cached = (time.monotonic(), self._read(utcnow()))
            except Exception:
                log.exception("reading pipeline gauges failed")
                return
        yield from self._cached[1]

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def _read(self, now: datetime) -> list[Metric]:
        tn, b, d = t.tenant.c, t.sending_block.c, t.delivery.c
        state = GaugeMetricFamily(
            "postgate_tenant_state",
            "1 for the tenant's current sending state.",
            labels=["tenant", "state"],
        )
        blocks = GaugeMetricFamily(
            "postgate_sending_blocks_active",
            "Active sending blocks (kill switch, breaker) by scope.",
            labels=["tenant", "scope", "source"],
        )
        open_rows = GaugeMetricFamily(
            "postgate_deliveries_open", "Deliveries not yet finished, by state.", labels=["state"]
        )
        lag = GaugeMetricFamily(
            "postgate_queue_lag_seconds", "Age of the oldest delivery waiting in state queued."
        )
        with self.engine.connect() as conn:
            for slug, status in conn.execute(select(tn.slug, tn.status)):
                for tenant_state in TenantStatus:
                    state.add_metric(
                        [slug, tenant_state.value], 1.0 if status == tenant_state else 0.0
                    )
            for slug, scope, source, count in conn.execute(
                select(tn.slug, b.scope, b.source, func.count())
                .join(t.tenant, tn.id == b.tenant_id)
                .where(b.cleared_at.is_(None))
                .group_by(tn.slug, b.scope, b.source)
            ):
                blocks.add_metric([slug, scope, source], count)
            counts: dict[str, int] = {
                state: n
                for state, n in conn.execute(
                    select(d.state, func.count()).where(d.state.in_(OPEN)).group_by(d.state)
                )
            }
            oldest = conn.scalar(
                select(func.min(d.updated_at)).where(d.state == DeliveryState.QUEUED)
            )
            stream = event_gauges.read(conn, now)
        for value in OPEN:
            open_rows.add_metric([value.value], counts.get(value.value, 0))
        lag.add_metric([], max(0.0, (now - aware(oldest)).total_seconds()) if oldest else 0.0)
        metrics: list[Metric] = [state, blocks, open_rows, lag, *stream]
        if self.depth is not None:
            broker = GaugeMetricFamily(
                "postgate_broker_messages",
                "Messages waiting in each broker queue.",
                labels=["queue"],
            )
            try:
                for queue, count in self.depth().items():
                    broker.add_metric([queue], count)
                metrics.append(broker)
            except Exception:
                log.warning("broker queue depth unavailable", exc_info=True)
        return metrics
