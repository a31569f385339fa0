"""Posting a tenant's events to one webhook endpoint, in order, at least once.

An endpoint is leased by one worker at a time. The events after its cursor (those of
its types; others are stepped over) go out as one signed POST of up to
``WEBHOOK_BATCH``: ``{"events": [event.v1, ...]}`` with ``X-Postgate-Timestamp`` and
``X-Postgate-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` — the same
scheme as the webhooks postgate receives. A 2xx moves the cursor past them. Anything
else (a timeout, a 500, a redirect: redirects are never followed) is tried again with
exponential backoff, the same batch, until ``WEBHOOK_RETRY_FOR_S`` after the first
failure; then the batch is dead-lettered, the cursor moves on and the endpoint is
paused until the tenant resumes it. Sending never waits for any of this.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import Engine, and_, func, insert, or_, select, update

from postgate.core.clock import aware
from postgate.events import guard
from postgate.events.stream import page
from postgate.feedback.webhook import signature
from postgate.settings import Settings
from postgate.store import tables as t

log = logging.getLogger("postgate.events")
w, o = t.webhook_endpoint.c, t.event_outbox.c
LEASE_EXTRA_S = 5.0  # an endpoint lease: the post timeout and this much (a dead worker's ends)


@dataclass(frozen=True, slots=True)
class Lease:
    id: int
    tenant_id: int
    url: str
    types: tuple[str, ...]
    secret: str
    cursor: int
    attempts: int
    failing_since: datetime | None


@dataclass(frozen=True, slots=True)
class Result:
    """What one post did: events delivered, or the failure and whether it paused."""

    endpoint: int
    tenant_id: int
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    paused: bool = False
    error: str = ""


def due(engine: Engine, now: datetime, limit: int, lease_s: float) -> list[Lease]:
    """Lease the active endpoints that have events after their cursor and are due."""
    head = (
        select(func.max(o.seq))
        .where(o.tenant_id == w.tenant_id, o.seq.is_not(None))
        .scalar_subquery()
    )
    with engine.begin() as conn:
        ids = list(
            conn.scalars(
                select(w.id)
                .where(
                    w.state == "active",
                    or_(w.next_attempt_at.is_(None), w.next_attempt_at <= now),
                    or_(w.lease_until.is_(None), w.lease_until < now),
                    head > w.cursor,
                )
                .order_by(w.next_attempt_at.is_not(None), w.id)
                .limit(limit)
            )
        )
        leased = []
        for endpoint_id in ids:
            row = conn.execute(
                update(t.webhook_endpoint)
                .where(
                    w.id == endpoint_id,
                    w.state == "active",
                    or_(w.lease_until.is_(None), w.lease_until < now),
                )
                .values(lease_until=now + timedelta(seconds=lease_s))
                .returning(
                    w.id,
                    w.tenant_id,
                    w.url,
                    w.types,
                    w.secret,
                    w.cursor,
                    w.attempts,
                    w.failing_since,
                )
            ).first()
            if row is not None:
                leased.append(Lease(row[0], row[1], row[2], tuple(row[3] or ()), *row[4:]))
        return leased


def batch(engine: Engine, lease: Lease, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The endpoint's next events and the seq to move the cursor to once they are taken."""
    with engine.connect() as conn:
        events = page(conn, lease.tenant_id, lease.cursor, limit)
    if not events:
        return [], lease.cursor
    wanted = [ev for ev in events if not lease.types or ev["type"] in lease.types]
    return wanted, int(events[-1]["seq"])


def release(engine: Engine, endpoint_id: int) -> None:
    """Give a lease back early (the post could not be made or recorded)."""
    with engine.begin() as conn:
        conn.execute(update(t.webhook_endpoint).where(w.id == endpoint_id).values(lease_until=None))


def backoff(attempts: int, settings: Settings) -> float:
    base = settings.webhook_backoff_s * 2 ** min(attempts - 1, 20)
    return float(min(settings.webhook_backoff_max_s, base) * random.uniform(0.8, 1.2))


async def post(
    session: aiohttp.ClientSession,
    lease: Lease,
    events: list[dict[str, Any]],
    allow: tuple[guard.Network, ...],
    timeout_s: float,
) -> tuple[int | None, str]:
    """One signed POST; (status, error): error is empty when the endpoint took it."""
    body = json.dumps({"events": events}, separators=(",", ":"), default=str).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "postgate-events/1",
        "X-Postgate-Timestamp": stamp,
        "X-Postgate-Signature": signature(lease.secret, stamp, body),
        "X-Postgate-Endpoint": str(lease.id),
    }
    try:
        await guard.check_url(lease.url, allow)
        async with session.post(
            lease.url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            await response.read()
            if 200 <= response.status < 300:
                return response.status, ""
            if 300 <= response.status < 400:
                where = response.headers.get("Location", "")[:200]
                return (
                    response.status,
                    f"HTTP {response.status}: redirects are not followed ({where})",
                )
            return response.status, f"HTTP {response.status}"
    except guard.Refused as exc:
        return None, f"refused: {exc}"
    except TimeoutError:
        return None, f"no answer within {timeout_s:g} s"
    except (aiohttp.ClientError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]


def settle(
    engine: Engine,
    settings: Settings,
    lease: Lease,
    events: list[dict[str, Any]],
    upto: int,
    status: int | None,
    error: str,
    now: datetime,
) -> Result:
    """Write what the post did to the endpoint row (guarded by the cursor it read)."""
    mine = and_(w.id == lease.id, w.cursor == lease.cursor)
    with engine.begin() as conn:
        if not error:
            conn.execute(
                update(t.webhook_endpoint)
                .where(mine)
                .values(
                    cursor=upto,
                    attempts=0,
                    failing_since=None,
                    next_attempt_at=None,
                    lease_until=None,
                    last_status=status,
                    last_error="",
                    delivered=w.delivered + len(events),
                    updated_at=now,
                )
            )
            return Result(lease.id, lease.tenant_id, delivered=len(events))
        since = aware(lease.failing_since) if lease.failing_since else now
        attempts = lease.attempts + 1
        if (now - since).total_seconds() < settings.webhook_retry_for_s:
            conn.execute(
                update(t.webhook_endpoint)
                .where(mine)
                .values(
                    attempts=attempts,
                    failing_since=since,
                    next_attempt_at=now + timedelta(seconds=backoff(attempts, settings)),
                    lease_until=None,
                    last_status=status,
                    last_error=error[:500],
                    updated_at=now,
                )
            )
            return Result(lease.id, lease.tenant_id, failed=len(events), error=error)
        if events:
            conn.execute(
                insert(t.webhook_dead_letter),
                [
                    {
                        "tenant_id": lease.tenant_id,
                        "endpoint_id": lease.id,
                        "event_id": ev["id"],
                        "seq": ev["seq"],
                        "attempts": attempts,
                        "error": error[:500],
                        "created_at": now,
                    }
                    for ev in events
                ],
            )
        reason = (
            f"failing since {since.isoformat(timespec='seconds')}: {error}; "
            f"{len(events)} events dead-lettered"
        )[:500]
        conn.execute(
            update(t.webhook_endpoint)
            .where(mine)
            .values(
                cursor=upto,
                state="paused",
                paused_reason=reason,
                attempts=0,
                failing_since=None,
                next_attempt_at=None,
                lease_until=None,
                last_status=status,
                last_error=error[:500],
                updated_at=now,
            )
        )
        conn.execute(
            insert(t.audit_log).values(
                tenant_id=lease.tenant_id,
                actor="postgate",
                action="webhook_endpoint_paused",
                detail={"endpoint": lease.id, "reason": reason, "dead_lettered": len(events)},
                created_at=now,
            )
        )
    log.warning("webhook endpoint %s of tenant %s paused: %s", lease.id, lease.tenant_id, reason)
    return Result(
        lease.id, lease.tenant_id, failed=len(events), dead=len(events), paused=True, error=error
    )


async def deliver(
    engine: Engine,
    settings: Settings,
    session: aiohttp.ClientSession,
    lease: Lease,
    allow: tuple[guard.Network, ...],
    now: Any,
) -> Result:
    """Post the endpoint's next batch and record the result."""
    events, upto = await asyncio.to_thread(batch, engine, lease, settings.webhook_batch)
    if not events:  # only events of other types: step over them
        return await asyncio.to_thread(settle, engine, settings, lease, [], upto, None, "", now())
    status, error = await post(session, lease, events, allow, settings.webhook_timeout_s)
    return await asyncio.to_thread(
        settle, engine, settings, lease, events, upto, status, error, now()
    )
