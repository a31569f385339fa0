"""End to end over real sockets: queue message -> planner -> sender -> aiosmtpd."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlmodel import Session

from postgate.consent import records
from postgate.core import tokens
from postgate.core.clock import utcnow
from postgate.core.states import BlockSource, Scope
from postgate.store import tables as t
from postgate.tenants import sending
from tests.support import World, unsubscribe_token_for


def sent_to(world: World, local: str) -> list[email.message.EmailMessage]:
    address = f"{local}@{world.tenant.domain}"
    return [
        email.message_from_bytes(r.data, policy=email.policy.default)  # type: ignore[misc]
        for r in world.sink.handler.to(address)
    ]


def test_consented_recipients_get_correct_mail_and_the_rest_are_blocked(world: World) -> None:
    world.contact("anna")
    world.contact("bela", source="written_consent", evidence_ref="form #12")
    world.contact("nocon", consent=None)
    world.contact("supp")
    world.contact("stale", days_ago=400)
    world.contact("pending", consent="pending")
    world.contact("info", consent=None)  # role address: no exemption
    with Session(world.ctx.engine) as s:
        records.suppress(s, world.tenant_id, "email", f"supp@{world.tenant.domain}", "unsubscribe")
        s.commit()
    msg = world.message("welcome")
    world.publish(msg)
    world.run(world.finished("welcome"))

    rows = {r.address.split("@")[0]: r for r in world.deliveries("welcome")}
    assert {k: (r.state, r.reason) for k, r in rows.items()} == {
        "anna": ("sent", None),
        "bela": ("sent", None),
        "nocon": ("blocked", "no_consent"),
        "supp": ("blocked", "suppressed"),
        "stale": ("blocked", "consent_stale"),
        "pending": ("blocked", "consent_unconfirmed"),
        "info": ("blocked", "no_consent"),
    }
    assert len(world.sink.handler.received) == 2
    (anna,) = sent_to(world, "anna")
    assert anna["Subject"] == "Hello Anna"
    assert anna["To"] == f"Anna <anna@{world.tenant.domain}>"
    assert anna["From"] == f"News Desk <news@{world.tenant.domain}>"
    campaign_id = _campaign_id(world, "welcome")
    ref = tokens.Ref(rows["anna"].id, campaign_id, world.tenant_id)
    assert anna["Message-ID"] == tokens.message_id(
        world.ctx.settings.secret_key, ref, world.tenant.domain
    )
    assert anna["Date"] is not None and anna["MIME-Version"] == "1.0"
    assert anna.get_content_type() == "multipart/alternative"
    text, html = anna.iter_parts()  # type: ignore[misc]
    assert text.get_content().startswith("Hi Anna!")
    assert "<p>Hi Anna!</p>" in html.get_content()
    assert anna["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsub = anna["List-Unsubscribe"]
    token = unsubscribe_token_for(world.ctx, rows["anna"].id)
    assert f"/u/{token}>" in unsub and "<mailto:unsubscribe+" in unsub
    envelope = world.sink.handler.to(f"anna@{world.tenant.domain}")[0].envelope_from
    assert tokens.verp_decode(world.ctx.settings.secret_key, envelope) == ref

    sample = REGISTRY.get_sample_value(
        "postgate_messages_total",
        {"tenant": world.tenant.slug, "channel": "email", "provider": "smtp", "outcome": "sent"},
    )
    assert sample == 2
    assert (
        REGISTRY.get_sample_value(
            "postgate_blocked_total",
            {"tenant": world.tenant.slug, "channel": "email", "reason": "no_consent"},
        )
        == 2
    )


def test_the_same_campaign_id_twice_makes_one_campaign(world: World) -> None:
    world.contact("anna")
    msg = world.message("twice")
    world.publish(msg)
    world.publish(json.dumps(msg))
    world.run(world.finished("twice"))
    world.publish(msg)  # a late duplicate after completion
    world.run(lambda: world.campaign_count() == 1, timeout=5)
    assert world.campaign_count() == 1
    assert len(world.sink.handler.received) == 1


def test_4xx_then_success_is_delivered_once(world: World) -> None:
    world.contact("busy")
    world.sink.handler.script(f"busy@{world.tenant.domain}", "451 4.7.1 greylisted, try later")
    world.publish(world.message("grey"))
    world.run(world.finished("grey"))
    (row,) = world.deliveries("grey")
    assert (row.state, row.attempts) == ("sent", 2)
    assert len(sent_to(world, "busy")) == 1


def test_5xx_fails_and_a_dead_address_is_suppressed(world: World) -> None:
    world.contact("gone")
    world.contact("policy")
    world.sink.handler.script(f"gone@{world.tenant.domain}", "550 5.1.1 user unknown")
    world.sink.handler.script(f"policy@{world.tenant.domain}", "550 5.7.1 message rejected as spam")
    world.publish(world.message("hard"))
    world.run(world.finished("hard"))
    rows = {r.address.split("@")[0]: r for r in world.deliveries("hard")}
    assert (rows["gone"].state, rows["gone"].smtp_code) == ("failed", 550)
    assert rows["policy"].state == "failed"
    s = t.suppression.c
    with world.ctx.engine.connect() as conn:
        suppressed = conn.execute(
            select(s.address, s.reason).where(s.tenant_id == world.tenant_id)
        ).all()
        events = conn.execute(
            select(t.feedback_event.c.address, t.feedback_event.c.hard).where(
                t.feedback_event.c.tenant_id == world.tenant_id
            )
        ).all()
    assert suppressed == [(f"gone@{world.tenant.domain}", "hard_bounce")]
    assert sorted(events) == [
        (f"gone@{world.tenant.domain}", True),
        (f"policy@{world.tenant.domain}", False),
    ]
    assert world.sink.handler.received == []


def test_connection_dropped_after_data_is_retried_not_lost(world: World) -> None:
    world.contact("flaky")
    world.contact("steady")
    world.sink.handler.drop(f"flaky@{world.tenant.domain}")
    world.publish(world.message("drop"))
    world.run(world.finished("drop"))
    rows = {r.address.split("@")[0]: r for r in world.deliveries("drop")}
    assert rows["flaky"].state == "sent" and rows["flaky"].attempts == 2
    assert len(sent_to(world, "flaky")) == 1 and len(sent_to(world, "steady")) == 1


def test_a_redelivered_batch_never_resends_a_sent_row(world: World) -> None:
    for i in range(5):
        world.contact(f"r{i}")
    world.publish(world.message("redeliver"))
    world.run(world.finished("redeliver"))
    rows = world.deliveries("redeliver")
    campaign_id = _campaign_id(world, "redeliver")
    broker = world.ctx.broker()
    broker.publish("send", {"campaign_id": campaign_id, "ids": [r.id for r in rows]})
    world.run(lambda: broker.depth("send") == 0, workers=("sender",), timeout=10)
    broker.close()
    assert len(world.sink.handler.received) == 5


def test_an_expired_lease_is_recovered_by_the_sweeper(world: World) -> None:
    world.contact("crash")
    world.publish(world.message("lease"))
    world.run(lambda: world.campaign_state("lease") == "sending", workers=("planner",))
    # a sender took the row and died: it stays 'sending' with a lease in the past
    d = t.delivery.c
    with world.ctx.engine.begin() as conn:
        conn.execute(
            update(t.delivery)
            .where(d.tenant_id == world.tenant_id)
            .values(state="sending", lease_until=utcnow() - timedelta(seconds=1))
        )
    world.ctx.broker().get("send")  # the batch message was lost with the worker
    world.run(world.finished("lease"), workers=("sender", "sweeper"))
    assert len(sent_to(world, "crash")) == 1


def test_a_scheduled_campaign_waits_for_its_time(world: World) -> None:
    world.contact("later")
    when = (utcnow() + timedelta(seconds=1.5)).isoformat()
    world.publish(world.message("scheduled", schedule_at=when))
    world.run(lambda: world.campaign_state("scheduled") == "scheduled", workers=("planner",))
    assert world.sink.handler.received == []
    world.run(world.finished("scheduled"))
    assert len(sent_to(world, "later")) == 1


def test_a_killed_tenant_sends_nothing_and_its_rows_are_held(world: World) -> None:
    world.contact("held")
    with world.ctx.engine.begin() as conn:  # the kill switch: a block on everything
        sending.add_block(
            conn, world.tenant_id, Scope.ALL, BlockSource.OPERATOR, "test", "test", {}, utcnow()
        )
    world.publish(world.message("killed"))
    world.run(lambda: [r.state for r in world.deliveries("killed")] == ["held"])
    assert world.sink.handler.received == []
    assert world.campaign_state("killed") == "sending"  # not finished while rows are held


def _campaign_id(world: World, external_id: str) -> int:
    c = t.campaign.c
    with world.ctx.engine.connect() as conn:
        return int(
            conn.scalar(
                select(c.id).where(c.tenant_id == world.tenant_id, c.external_id == external_id)
            )
        )


def test_two_unknown_outcomes_stop_retrying_with_the_same_message_id(world: World) -> None:
    world.contact("lossy")
    world.sink.handler.drop(f"lossy@{world.tenant.domain}", times=5)
    world.publish(world.message("unknown"))
    world.run(world.finished("unknown"))
    (row,) = world.deliveries("unknown")
    assert (row.state, row.reason, row.attempts) == ("failed", "outcome_unknown", 2)
    assert world.sink.handler.transactions == 2
    ids = {email.message_from_bytes(r.data)["Message-ID"] for r in world.sink.handler.dropped}
    assert len(world.sink.handler.dropped) == 2 and len(ids) == 1
