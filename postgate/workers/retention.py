"""Data retention: the platform's terms §10–11 as a scheduled job.

A closed tenant's data is purged 90 days after closure; audit records (kept, without
the tenant link, after a purge) and dead letters are purged after 365 days. Every run
reports what it deleted and leaves an audit record of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from postgate.core.clock import utcnow
from postgate.events import stream
from postgate.runtime.context import Context
from postgate.store import tables as t
from postgate.store.schema import metadata
from postgate.tenants.erasure import CLOSED_TENANT_DAYS

log = logging.getLogger("postgate.retention")
AUDIT_DAYS = 365


def purge(
    engine: Engine,
    now: datetime,
    closed_days: int = CLOSED_TENANT_DAYS,
    audit_days: int = AUDIT_DAYS,
    events_days: float = 30.0,
) -> dict[str, int]:
    report: dict[str, int] = {"tenants": 0}
    tn = t.tenant.c
    with engine.connect() as conn:
        due = list(
            conn.execute(
                select(tn.id, tn.slug).where(
                    tn.closed_at.is_not(None), tn.closed_at < now - timedelta(days=closed_days)
                )
            )
        )
    owned = [
        tbl
        for tbl in reversed(metadata.sorted_tables)
        if "tenant_id" in tbl.c and tbl.name not in ("tenant", "audit_log")
    ]
    for tenant_id, slug in due:
        with engine.begin() as conn:
            for table in owned:
                deleted = conn.execute(delete(table).where(table.c.tenant_id == tenant_id))
                report[table.name] = report.get(table.name, 0) + deleted.rowcount
            conn.execute(
                update(t.audit_log)
                .where(t.audit_log.c.tenant_id == tenant_id)
                .values(tenant_id=None)
            )
            conn.execute(delete(t.tenant).where(tn.id == tenant_id))
            conn.execute(
                insert(t.audit_log).values(
                    tenant_id=None,
                    actor="retention",
                    action="tenant_purged",
                    created_at=now,
                    detail={"tenant": slug, "tenant_id": tenant_id},
                )
            )
        report["tenants"] += 1
        log.info("purged closed tenant %s (%s)", slug, tenant_id)
    cutoff = now - timedelta(days=audit_days)
    with engine.begin() as conn:
        report["audit_log"] = conn.execute(
            delete(t.audit_log).where(t.audit_log.c.created_at < cutoff)
        ).rowcount
        report["event_outbox"] = stream.purge(conn, now - timedelta(days=events_days))
        report["dead_letter"] = conn.execute(
            delete(t.dead_letter).where(t.dead_letter.c.created_at < cutoff)
        ).rowcount
        conn.execute(
            insert(t.audit_log).values(
                tenant_id=None,
                actor="retention",
                action="retention_run",
                created_at=now,
                detail=report,
            )
        )
    return report


class Retention:
    """Runs :func:`purge` every ``retention_interval_s``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await asyncio.to_thread(
                    purge,
                    self.ctx.engine,
                    utcnow(),
                    events_days=self.ctx.settings.events_retention_days,
                )
                log.info("retention run: %s", report)
            except Exception:
                log.exception("retention run failed; trying again next time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ctx.settings.retention_interval_s)
