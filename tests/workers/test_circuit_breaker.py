"""The circuit breaker end to end: ARF complaints delivered over SMTP to the listener trip
the tenant exactly when the rate crosses the threshold, with the numbers audited; its
promotional mail is then held while transactional mail and other tenants keep sending;
an operator re-enables it, and a second trip within 30 days suspends it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select

from postgate.core.clock import utcnow
from postgate.http.kill_switch import resume_held
from postgate.store import tables as t
from postgate.tenants import sending as sending_blocks
from tests.support import World, verp_for
from tests.workers.listening import deliver, listener, mail

__all__ = ["listener"]  # the fixture
N = 100  # delivered per campaign; 2 complaints = 2%, not above; the 3rd trips


def configure(world: World) -> None:
    s = world.ctx.settings
    s.breaker_min_volume, s.breaker_complaint_rate = N, 0.02


def blocks(world: World) -> list[Any]:
    b = t.sending_block.c
    with world.ctx.engine.connect() as conn:
        return list(
            conn.execute(
                select(b.scope, b.source, b.detail, b.cleared_at)
                .where(b.tenant_id == world.tenant_id)
                .order_by(b.id)
            ).all()
        )


def ids(world: World, external_id: str) -> list[tuple[int, int]]:
    d, c = t.delivery.c, t.campaign.c
    with world.ctx.engine.connect() as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                select(d.id, d.campaign_id)
                .join(t.campaign, c.id == d.campaign_id)
                .where(
                    c.tenant_id == world.tenant_id, c.external_id == external_id, d.state == "sent"
                )
                .order_by(d.id)
            )
        ]


def complain(world: World, port: int, fixtures_dir: Path, delivery: tuple[int, int]) -> None:
    raw = mail(fixtures_dir, "yahoo_arf.eml", world.ctx, *delivery)
    assert deliver(port, raw, f"fbl@{world.ctx.settings.bounce_domain}")[0] == 250


def test_breaker_trips_at_the_threshold_and_escalates(
    world: World, listener: int, fixtures_dir: Path
) -> None:
    configure(world)
    for i in range(N):
        world.contact(f"r{i:03d}")
    world.publish(world.message("first"))
    world.run(world.finished("first"))
    first = ids(world, "first")
    complain(world, listener, fixtures_dir, first[0])
    complain(world, listener, fixtures_dir, first[1])
    complain(world, listener, fixtures_dir, first[1])  # a duplicate report counts once
    assert blocks(world) == []
    complain(world, listener, fixtures_dir, first[2])
    [(scope, source, detail, cleared)] = blocks(world)
    assert (scope, source, cleared) == ("bulk_email", "breaker", None)
    assert detail["complaints"] == 3 and detail["delivered"] == N and detail["sent"] == N
    assert detail["reason"] == "complaint_rate" and detail["complaint_rate"] == 0.03
    a = t.audit_log.c
    with world.ctx.engine.connect() as conn:
        audit = conn.execute(
            select(a.actor, a.action, a.detail).where(a.tenant_id == world.tenant_id)
        ).all()
        status = conn.scalar(select(t.tenant.c.status).where(t.tenant.c.id == world.tenant_id))
    assert [(r.actor, r.action) for r in audit] == [("breaker", "sending_block.breaker")]
    assert audit[0].detail["window_start"] and audit[0].detail["complaints"] == 3
    assert status == "bulk_disabled"

    # promotional mail is held, transactional mail and another tenant keep going
    other = World.create(world.ctx, world.sink)
    for i in range(5):
        other.contact(f"o{i}")
    world.publish(world.message("second"))
    world.publish(world.message("receipt", kind="transactional"))
    other.publish(other.message("theirs"))
    complained = {"blocked": 3}  # the three complainers are suppressed from now on
    world.run(
        lambda: (
            other.campaign_state("theirs") == "finished"
            and world.campaign_state("receipt") == "finished"
            and Counter(r.state for r in world.deliveries("second"))
            == {"held": N - 3, **complained}
        )
    )
    assert Counter(r.state for r in world.deliveries("receipt")) == {"sent": N - 3, **complained}
    assert Counter(r.state for r in other.deliveries("theirs")) == {"sent": 5}

    # only an operator re-enables; held mail resumes and is sent once
    cleared = sending_blocks.clear_blocks(
        world.ctx.engine, world.tenant_id, "bulk_email", "ops", "tenant cleaned its list", utcnow()
    )
    assert len(cleared) == 1
    assert resume_held(world.ctx.engine, world.ctx.settings, world.tenant_id) == N - 3
    world.run(world.finished("second"))
    assert Counter(r.state for r in world.deliveries("second")) == {"sent": N - 3, **complained}
    second = [
        r
        for r in world.sink.handler.received
        if any(a.endswith(world.tenant.domain) for a in r.recipients)
    ]
    assert len(second) == 3 * (N - 3) + 3  # first (N), receipt (N-3), second (N-3)

    # the old complaints do not count again; new ones on top of N new sends do
    world.publish(world.message("third"))
    world.run(world.finished("third"))
    assert [b.cleared_at is None for b in blocks(world)] == [False]
    delivered = 2 * (N - 3)  # "second" and "third", both sent after the re-enable
    needed = int(delivered * 0.02) + 1  # the first count strictly above 2%
    for delivery in ids(world, "third")[:needed]:
        assert [b for b in blocks(world) if b.cleared_at is None] == []
        complain(world, listener, fixtures_dir, delivery)
    active = [(b.scope, b.detail["escalated"]) for b in blocks(world) if b.cleared_at is None]
    assert active == [("bulk_email", True), ("bulk_sms", True)]
    with world.ctx.engine.connect() as conn:
        status = conn.scalar(select(t.tenant.c.status).where(t.tenant.c.id == world.tenant_id))
    assert status == "suspended"


def test_hard_bounces_at_send_time_trip_through_the_sweeper(world: World) -> None:
    configure(world)
    world.ctx.settings.breaker_hard_bounce_rate = 0.05
    for i in range(N):
        contact = world.contact(f"h{i:03d}")
        if i < 6:  # 6% of the campaign is dead addresses
            world.sink.handler.script(contact.email or "", "550 5.1.1 user unknown")
    world.publish(world.message("bouncy"))
    world.run(lambda: world.campaign_state("bouncy") == "finished" and bool(blocks(world)))
    [(scope, source, detail, _)] = blocks(world)
    assert (scope, source, detail["reason"]) == ("bulk_email", "breaker", "hard_bounce_rate")
    assert (detail["hard_bounces"], detail["sent"]) == (6, N)


def suppressions(world: World) -> list[str]:
    s = t.suppression.c
    with world.ctx.engine.connect() as conn:
        return list(conn.scalars(select(s.address).where(s.tenant_id == world.tenant_id)))


def feedback_count(world: World, reason: str) -> float:
    sample = REGISTRY.get_sample_value(
        "postgate_feedback_total",
        {"tenant": world.tenant.slug, "channel": "email", "kind": "bounce_soft", "reason": reason},
    )
    return sample or 0.0


def test_policy_blocks_trip_on_their_own_and_suppress_no_one(
    world: World, listener: int, fixtures_dir: Path
) -> None:
    """5 of 100 refused as spam at send time is 5 %, not above; one more policy bounce
    coming back as a DSN makes 6 % and trips the breaker from the listener, with its
    own reason — and none of the six addresses is suppressed."""
    configure(world)
    world.ctx.settings.breaker_complaint_rate = 0.5  # only the policy rate is in play
    spam = "550 5.7.1 Service unavailable; client host blocked using Spamhaus"
    refused = []
    for i in range(N):
        contact = world.contact(f"p{i:03d}")
        if i < 5:
            world.sink.handler.script(contact.email or "", spam)
            refused.append(contact.email)
    world.publish(world.message("spammy"))
    world.run(world.finished("spammy"))
    assert blocks(world) == []
    assert feedback_count(world, "policy_block") >= 5  # the metric has the reason
    delivered = ids(world, "spammy")
    assert len(delivered) == N - 5
    dsn = mail(fixtures_dir, "exchange_550_5.7.1_policy.eml", world.ctx, *delivered[0])
    assert deliver(listener, dsn, verp_for(world.ctx, delivered[0][0]))[0] == 250
    [(scope, source, detail, cleared)] = blocks(world)
    assert (scope, source, cleared, detail["reason"]) == (
        "bulk_email",
        "breaker",
        None,
        "policy_block_rate",
    )
    assert (detail["policy_blocks"], detail["sent"], detail["hard_bounces"]) == (6, N, 0)
    assert detail["auth_failures"] == 0 and detail["policy_block_rate"] == 0.06
    with world.ctx.engine.connect() as conn:
        why = conn.scalar(select(t.tenant.c.status_reason).where(t.tenant.c.id == world.tenant_id))
    assert why.startswith("circuit breaker: policy_block_rate (receivers refuse its mail")
    assert "6/100 policy blocks" in why
    assert suppressions(world) == []  # a policy block is not a dead address
    # the next campaign is held, saying why; every recipient is still a recipient
    world.publish(world.message("after"))
    world.run(lambda: Counter(r.state for r in world.deliveries("after")) == {"held": N})
    assert {r.reason for r in world.deliveries("after")} == {"policy_blocked"}
    # a transactional mail is not stopped by a bulk block
    world.publish(world.message("receipt", kind="transactional"))
    world.run(world.finished("receipt"))
    # re-enabled by an operator, the held rows go out
    sending_blocks.clear_blocks(
        world.ctx.engine, world.tenant_id, "bulk_email", "ops", "delisted from Spamhaus", utcnow()
    )
    assert resume_held(world.ctx.engine, world.ctx.settings, world.tenant_id) == N
    world.run(world.finished("after"))
    # (each scripted refusal is answered once)
    assert Counter(r.state for r in world.deliveries("after")) == {"sent": N}


def test_authentication_failures_trip_above_two_percent(world: World) -> None:
    configure(world)
    world.ctx.settings.breaker_complaint_rate = 0.5
    dmarc = (
        "550 5.7.26 Unauthenticated email from acme.example is not accepted due to "
        "domain's DMARC policy"
    )
    for i in range(N):
        contact = world.contact(f"a{i:03d}")
        if i < 3:  # 3 %
            world.sink.handler.script(contact.email or "", dmarc)
    before = feedback_count(world, "auth_failure")
    world.publish(world.message("unsigned"))
    world.run(lambda: world.campaign_state("unsigned") == "finished" and bool(blocks(world)))
    [(scope, source, detail, _)] = blocks(world)
    assert (scope, source, detail["reason"]) == ("bulk_email", "breaker", "auth_failure_rate")
    assert (detail["auth_failures"], detail["policy_blocks"], detail["sent"]) == (3, 0, N)
    assert detail["hard_bounces"] == 0 and detail["auth_failure_threshold"] == 0.02
    assert feedback_count(world, "auth_failure") == before + 3
    assert suppressions(world) == []
    e = t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        stored = conn.execute(
            select(e.reason, e.hard, e.status).where(e.tenant_id == world.tenant_id)
        ).all()
    assert sorted(stored) == [("auth_failure", False, "5.7.26")] * 3
    world.publish(world.message("held"))
    world.run(lambda: Counter(r.state for r in world.deliveries("held")) == {"held": N})
    assert {r.reason for r in world.deliveries("held")} == {"auth_failing"}
