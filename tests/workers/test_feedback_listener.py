"""The feedback listener over real SMTP: bounces, complaints and unsubscribes sent with
aiosmtplib to the running aiosmtpd listener change suppression and counters exactly once;
garbage is kept as unknown and the listener keeps serving."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import func, select

from postgate.feedback.apply import raw_bytes
from postgate.store import tables as t
from tests.support import World, unsubscribe_token_for, verp_for
from tests.workers.listening import deliver, listener, mail

__all__ = ["listener"]  # the fixture


def sent_campaign(world: World, n: int) -> list[tuple[int, int, str]]:
    for i in range(n):
        world.contact(f"fb{i:02d}")
    world.publish(world.message("fb"))
    world.run(world.finished("fb"))
    d = t.delivery.c
    with world.ctx.engine.connect() as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                select(d.id, d.campaign_id, d.address)
                .where(d.tenant_id == world.tenant_id)
                .order_by(d.id)
            )
        ]


def suppressed(world: World) -> dict[str, str]:
    s = t.suppression.c
    with world.ctx.engine.connect() as conn:
        return dict(
            conn.execute(select(s.address, s.reason).where(s.tenant_id == world.tenant_id)).all()
        )


def events(world: World) -> list[tuple[str, bool | None, int | None]]:
    e = t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                select(e.kind, e.hard, e.delivery_id)
                .where(e.tenant_id == world.tenant_id)
                .order_by(e.id)
            )
        ]


def test_bounces_complaints_and_unsubscribes_over_smtp(
    world: World, listener: int, fixtures_dir: Path
) -> None:
    rows = sent_campaign(world, 6)
    ctx = world.ctx
    verp = [verp_for(ctx, r[0]) for r in rows]
    hard = mail(fixtures_dir, "gmail_550_5.1.1.eml", ctx, rows[0][0], rows[0][1])
    assert deliver(listener, hard, verp[0])[0] == 250
    assert deliver(listener, hard, verp[0])[0] == 250  # the same bounce again: no change
    full = mail(fixtures_dir, "postfix_452_mailbox_full.eml", ctx, rows[1][0], rows[1][1])
    policy = mail(fixtures_dir, "exchange_550_5.7.1_policy.eml", ctx, rows[2][0], rows[2][1])
    arf = mail(fixtures_dir, "hotmail_fbl_arf.eml", ctx, rows[3][0], rows[3][1])
    ooo = mail(fixtures_dir, "out_of_office.eml", ctx, rows[4][0], rows[4][1])
    unsub = mail(fixtures_dir, "mailto_unsubscribe.eml", ctx, rows[5][0], rows[5][1])
    assert deliver(listener, full, verp[1])[0] == 250
    assert deliver(listener, policy, verp[2])[0] == 250
    assert deliver(listener, arf, f"fbl@{ctx.settings.bounce_domain}")[0] == 250
    assert deliver(listener, arf, f"fbl@{ctx.settings.bounce_domain}")[0] == 250
    assert deliver(listener, ooo, verp[4])[0] == 250
    unsub_rcpt = (
        f"unsubscribe+{unsubscribe_token_for(ctx, rows[5][0])}@{ctx.settings.bounce_domain}"
    )
    assert deliver(listener, unsub, unsub_rcpt)[0] == 250

    assert suppressed(world) == {
        rows[0][2]: "hard_bounce",
        rows[3][2]: "complaint",
        rows[5][2]: "unsubscribe",
    }
    assert events(world) == [
        ("bounce", True, rows[0][0]),
        ("bounce", False, rows[1][0]),
        ("bounce", False, rows[2][0]),
        ("complaint", None, rows[3][0]),
        ("auto_reply", None, rows[4][0]),
        ("unsubscribe", None, rows[5][0]),
    ]
    d = t.delivery.c
    with ctx.engine.connect() as conn:
        complained = conn.scalars(
            select(d.id).where(d.tenant_id == world.tenant_id, d.complained_at.is_not(None))
        ).all()
    assert complained == [rows[3][0]]


def test_garbage_is_kept_and_the_listener_keeps_serving(
    world: World, listener: int, fixtures_dir: Path
) -> None:
    rows = sent_campaign(world, 1)
    ctx = world.ctx
    garbage = (fixtures_dir / "feedback" / "garbage.eml").read_bytes()
    verp = verp_for(ctx, rows[0][0])
    assert deliver(listener, garbage, verp)[0] == 250
    assert (
        deliver(listener, b"\xff\xfe\x00 no headers at all", f"x@{ctx.settings.bounce_domain}")[0]
        == 250
    )
    e = t.feedback_event.c
    with ctx.engine.connect() as conn:
        unknown = conn.execute(
            select(e.kind, e.tenant_id, e.raw).where(e.kind == "unknown", e.tenant_id.is_(None))
        ).all()
        mine = conn.execute(select(e.kind).where(e.tenant_id == world.tenant_id)).scalars().all()
    # kept whole: not UTF-8 and with a NUL, so stored as base64 of every byte
    kept = [r for r in unknown if raw_bytes(r.raw) == b"\xff\xfe\x00 no headers at all\r\n"]
    assert len(kept) == 1 and kept[0].raw.startswith("base64:")
    assert mine == ["unknown"]  # the garbage that came to a VERP address is kept with its tenant
    assert suppressed(world) == {}
    code, _ = deliver(listener, b"Subject: relay\r\n\r\nhi\r\n", "someone@elsewhere.example")
    assert code == 550  # not our domain: refused, not relayed
    hard = mail(fixtures_dir, "ses_bounce_5.1.1.eml", ctx, rows[0][0], rows[0][1])
    assert deliver(listener, hard, verp)[0] == 250
    assert suppressed(world) == {rows[0][2]: "hard_bounce"}


def test_soft_bounces_suppress_only_after_several_days(
    world: World, listener: int, fixtures_dir: Path
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    rows = sent_campaign(world, 1)
    ctx = world.ctx
    verp = verp_for(ctx, rows[0][0])
    full = mail(fixtures_dir, "postfix_452_mailbox_full.eml", ctx, rows[0][0], rows[0][1])
    e = t.feedback_event.c
    # four earlier soft bounces of the same address (other campaigns) on three days
    with ctx.engine.begin() as conn:
        for i, days in enumerate((1, 1, 2, 3)):
            conn.execute(
                t.feedback_event.insert().values(
                    tenant_id=world.tenant_id,
                    delivery_id=None,
                    channel="email",
                    kind="bounce",
                    hard=False,
                    address=rows[0][2],
                    status="5.2.2",
                    source="dsn",
                    dedup_key=f"earlier-{world.tenant_id}-{i}",
                    raw="",
                )
            )
            conn.execute(
                update(t.feedback_event)
                .where(e.dedup_key == f"earlier-{world.tenant_id}-{i}")
                .values(
                    created_at=func.current_timestamp() - timedelta(days=days)
                    if ctx.engine.dialect.name == "postgresql"
                    else func.datetime("now", f"-{days} days")
                )
            )
    assert suppressed(world) == {}
    assert deliver(listener, full, verp)[0] == 250  # the fifth, on a third distinct day
    assert suppressed(world) == {rows[0][2]: "bounce_score"}
    with ctx.engine.connect() as conn:
        count = conn.scalar(select(func.count()).where(e.tenant_id == world.tenant_id))
    assert count == 5


def test_a_delay_warning_is_stored_but_neither_scores_nor_suppresses(
    world: World, listener: int, fixtures_dir: Path
) -> None:
    rows = sent_campaign(world, 1)
    ctx = world.ctx
    verp = verp_for(ctx, rows[0][0])
    delayed = (
        (fixtures_dir / "feedback" / "flufl" / "dsn_05.txt")
        .read_bytes()
        .replace(b"userx@example.cz", rows[0][2].encode())
    )  # a warning about the mail we really sent
    assert deliver(listener, delayed, verp)[0] == 250
    assert events(world) == [("delay", False, rows[0][0])]
    assert suppressed(world) == {}


def test_a_mailto_and_a_one_click_unsubscribe_of_one_delivery_are_one_event(
    world: World, listener: int, api: str, fixtures_dir: Path
) -> None:
    ((delivery_id, campaign_id, address),) = sent_campaign(world, 1)
    ctx = world.ctx
    token = unsubscribe_token_for(ctx, delivery_id)
    unsub = mail(fixtures_dir, "mailto_unsubscribe.eml", ctx, delivery_id, campaign_id)
    assert deliver(listener, unsub, f"unsubscribe+{token}@{ctx.settings.bounce_domain}")[0] == 250
    r = httpx.post(
        f"{api}/u/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert events(world) == [("unsubscribe", None, delivery_id)]
    assert suppressed(world) == {address: "unsubscribe"}


def test_each_bounce_is_stored_with_its_reason(
    world: World, listener: int, fixtures_dir: Path
) -> None:
    """Returned mail over SMTP and a refusal at send time keep why they bounced, so the
    operator and the tenant can tell a dead address from a full mailbox or a block."""
    rows = sent_campaign(world, 3)
    ctx = world.ctx
    for (delivery, campaign, _), name in zip(
        rows,
        ("gmail_550_5.1.1.eml", "postfix_452_mailbox_full.eml", "exchange_550_5.7.1_policy.eml"),
        strict=True,
    ):
        raw = mail(fixtures_dir, name, ctx, delivery, campaign)
        assert deliver(listener, raw, verp_for(ctx, delivery))[0] == 250
    e = t.feedback_event.c
    with ctx.engine.connect() as conn:
        stored = dict(
            conn.execute(
                select(e.delivery_id, e.reason).where(
                    e.tenant_id == world.tenant_id, e.kind == "bounce"
                )
            ).all()
        )
    assert stored == {
        rows[0][0]: "user_unknown",
        rows[1][0]: "mailbox_full",
        rows[2][0]: "policy_block",
    }


def test_a_refusal_at_send_time_is_stored_with_its_reason(world: World) -> None:
    world.contact("nobody")
    world.sink.handler.script(f"nobody@{world.tenant.domain}", "550 5.1.1 user unknown")
    world.publish(world.message("refused"))
    world.run(world.finished("refused"))
    e = t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        found = conn.execute(
            select(e.source, e.reason, e.hard).where(e.tenant_id == world.tenant_id)
        ).all()
    assert [tuple(r) for r in found] == [("smtp_reply", "user_unknown", True)]
