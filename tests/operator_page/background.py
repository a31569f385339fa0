"""Scenery for operator page tests: real workers running in a thread while a browser or a
subprocess watches, and a tenant's sending history seeded in bulk."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import insert, select
from sqlmodel import Session

from postgate.core.clock import utcnow
from postgate.store import tables as t
from postgate.store.models.campaigns import Campaign
from tests.support import World
from tests.workers.switching import bulk_audience


@contextmanager
def workers_running(world: World, timeout: float = 180) -> Iterator[None]:
    """Planner, sender and sweeper on their own event loop in a thread until the block ends."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            world.run(done.is_set, timeout=timeout)
        except BaseException as exc:  # reported by the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="workers", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "workers did not drain"
    if failure:
        raise failure[0]


def seed_history(world: World, delivered: int, complaints: int, hard_bounces: int) -> None:
    """A finished campaign a day ago: ``delivered`` rows sent, then complaints about some
    and hard bounces reported for others (feedback events, as the listener records them)."""
    bulk_audience(world, delivered)
    now, tid = utcnow(), world.tenant_id
    day_ago = now - timedelta(days=1)
    with Session(world.ctx.engine) as s:
        campaign = Campaign(
            tenant_id=tid,
            external_id="history",
            channel="email",
            kind="promotional",
            topic="news",
            state="finished",
            created_at=day_ago,
            finished_at=day_ago,
        )
        s.add(campaign)
        s.commit()
        campaign_id = campaign.id
    c = t.contact.c
    with world.ctx.engine.begin() as conn:
        contacts = conn.execute(select(c.id, c.email).where(c.tenant_id == tid)).all()
        conn.execute(
            insert(t.delivery),
            [
                {
                    "tenant_id": tid,
                    "campaign_id": campaign_id,
                    "contact_id": i,
                    "address": email,
                    "state": "sent",
                    "attempts": 1,
                    "created_at": day_ago,
                    "updated_at": day_ago,
                    "sent_at": day_ago,
                }
                for i, email in contacts
            ],
        )
        ids = list(
            conn.scalars(
                select(t.delivery.c.id)
                .where(t.delivery.c.campaign_id == campaign_id)
                .order_by(t.delivery.c.id)
            )
        )
        kinds = ["complaint"] * complaints + ["bounce"] * hard_bounces
        if not kinds:
            return
        conn.execute(
            insert(t.feedback_event),
            [
                {
                    "tenant_id": tid,
                    "delivery_id": delivery_id,
                    "channel": "email",
                    "kind": kind,
                    "hard": kind == "bounce",
                    "status": "5.1.1" if kind == "bounce" else "",
                    "source": "arf" if kind == "complaint" else "dsn",
                    "address": "",
                    "dedup_key": f"seed-{uuid.uuid4().hex}",
                    "raw": "",
                    "created_at": now,
                }
                for delivery_id, kind in zip(ids, kinds, strict=False)
            ],
        )
