"""The event stream's gauges, read from the database at scrape time (with the
pipeline's): how far behind each webhook endpoint and the event exchange are, and which
endpoints are paused."""

from __future__ import annotations

from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Connection, func, select

from postgate.core.clock import aware
from postgate.store import tables as t


def read(conn: Connection, now: datetime) -> list[Metric]:
    w, o, tn = t.webhook_endpoint.c, t.event_outbox.c, t.tenant.c
    oldest = GaugeMetricFamily(
        "postgate_events_oldest_undelivered_seconds",
        "Age of the oldest event not yet taken, per webhook endpoint "
        '(endpoint="exchange": not yet published to the event exchange).',
        labels=["tenant", "endpoint"],
    )
    paused = GaugeMetricFamily(
        "postgate_webhook_endpoint_paused",
        "1 when a webhook endpoint is paused after failing for the whole retry window.",
        labels=["tenant", "endpoint"],
    )
    head = (
        select(func.min(o.created_at))
        .where(o.tenant_id == w.tenant_id, o.seq > w.cursor)
        .scalar_subquery()
    )
    for endpoint_id, slug, state, first in conn.execute(
        select(w.id, tn.slug, w.state, head).join(t.tenant, tn.id == w.tenant_id)
    ):
        age = max(0.0, (now - aware(first)).total_seconds()) if first else 0.0
        oldest.add_metric([slug, str(endpoint_id)], age)
        paused.add_metric([slug, str(endpoint_id)], 1.0 if state == "paused" else 0.0)
    for slug, first in conn.execute(
        select(tn.slug, func.min(o.created_at))
        .join(t.tenant, tn.id == o.tenant_id)
        .where(o.published_at.is_(None))
        .group_by(tn.slug)
    ):
        oldest.add_metric([slug, "exchange"], max(0.0, (now - aware(first)).total_seconds()))
    return [oldest, paused]
