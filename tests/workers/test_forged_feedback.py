"""Forged feedback changes nothing; genuine feedback still does.

An attacker who can mail the bounce domain knows our id scheme and can guess ids, and
may hold a genuine return path of their own. Each forgery below goes over real SMTP to
the running listener and must be kept as ``unverified`` feedback (no tenant, no
suppression, no breaker count); the genuine reports are built from the bytes the sender
really sent to the SMTP sink."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select, update

from postgate.core import tokens
from postgate.core.clock import utcnow
from postgate.operator_page import overview
from postgate.store import tables as t
from postgate.tenants import reputation
from tests.dns_server import LocalDns
from tests.support import World, ref_for, signing_domain, verp_for
from tests.workers.listening import deliver, listener
from tests.workers.test_feedback_listener import sent_campaign, suppressed

__all__ = ["listener"]  # the fixture


def arf(original: bytes, bounce_domain: str, part: str = "message/rfc822") -> bytes:
    b = "arf-boundary"
    head = (
        f"From: staff@fbl.example\r\nTo: fbl@{bounce_domain}\r\nSubject: complaint\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: multipart/report; "
        f'report-type=feedback-report; boundary="{b}"\r\n\r\n'
        f"--{b}\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        f"--{b}\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: fbl/1.0\r\nVersion: 1\r\n\r\n"
        f"--{b}\r\nContent-Type: {part}\r\n\r\n"
    )
    return head.encode() + original + f"\r\n--{b}--\r\n".encode()


def dsn(final_recipient: str, message_id: str, bounce_domain: str, status: str = "5.1.1") -> bytes:
    b = "dsn-boundary"
    return (
        f"From: MAILER-DAEMON@mx.example\r\nTo: postmaster@{bounce_domain}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"'
        f"\r\n\r\n--{b}\r\nContent-Type: text/plain\r\n\r\nThe mail could not be "
        f"delivered.\r\n--{b}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; {final_recipient}"
        f"\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; 550 {status} "
        f"user unknown\r\n\r\n--{b}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nTo: {final_recipient}\r\nSubject: Hello\r\n\r\n"
        f"--{b}--\r\n"
    ).encode()


def events(world: World) -> list[Any]:
    e = t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    e.kind, e.tenant_id, e.delivery_id, e.verification, e.dkim, e.address
                ).order_by(e.id)
            ).all()
        )


def mine(world: World, since: int) -> list[Any]:
    return [ev for ev in events(world)[since:]]


def unverified_count(source: str, kind: str, reason: str = "") -> float:
    """The unverified-feedback counter for ``reason``, or summed over every reason."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "postgate_feedback_unverified"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels["source"] == source
        and sample.labels["kind"] == kind
        and sample.labels["reason"] == (reason or sample.labels["reason"])
    )


def sent_mail(world: World, address: str) -> bytes:
    return bytes(world.sink.handler.to(address)[-1].data)


def test_guessed_message_ids_change_nothing(world: World, listener: int) -> None:
    rows = sent_campaign(world, 3)
    bounce = world.ctx.settings.bounce_domain
    before = len(events(world))
    forged_before = unverified_count("arf", "complaint")
    for delivery_id, campaign_id, address in rows[:2]:  # the id scheme guessed right
        headers = (
            f"Message-ID: <{delivery_id}.{campaign_id}@{world.tenant.domain}>\r\n"
            f"To: {address}\r\nSubject: Hello\r\n"
        ).encode()
        assert (
            deliver(listener, arf(headers, bounce, "text/rfc822-headers"), f"fbl@{bounce}")[0]
            == 250
        )
    delivery_id, campaign_id, address = rows[2]
    forged_dsn = dsn("someone-else@example.org", f"<{delivery_id}.{campaign_id}@x>", bounce)
    assert deliver(listener, forged_dsn, f"postmaster@{bounce}")[0] == 250

    kept = mine(world, before)
    assert [(ev.kind, ev.tenant_id, ev.delivery_id, ev.verification) for ev in kept] == [
        ("complaint", None, None, "unverified")
    ] * 2 + [("bounce", None, None, "unverified")]
    assert suppressed(world) == {}
    d = t.delivery.c
    with world.ctx.engine.connect() as conn:
        assert (
            conn.scalar(
                select(d.id).where(d.tenant_id == world.tenant_id, d.complained_at.is_not(None))
            )
            is None
        )
    assert unverified_count("arf", "complaint") == forged_before + 2
    shown = {
        (r["source"], r["kind"]): r["count"]
        for r in overview.read(world.ctx.engine, world.ctx.settings, [], utcnow()).unverified
    }
    assert shown[("arf", "complaint")] >= 2 and shown[("dsn", "bounce")] >= 1  # the operator's


def test_forged_complaints_never_reach_the_breaker(world: World, listener: int) -> None:
    world.ctx.settings.breaker_min_volume = 5
    rows = sent_campaign(world, 10)
    bounce = world.ctx.settings.bounce_domain
    for delivery_id, campaign_id, address in rows:
        forged_ref = tokens.Ref(delivery_id, campaign_id, world.tenant_id)
        guessed = tokens.message_id("not-our-key-" + "x" * 32, forged_ref, world.tenant.domain)
        headers = f"Message-ID: {guessed}\r\nTo: {address}\r\n".encode()
        assert (
            deliver(listener, arf(headers, bounce, "text/rfc822-headers"), f"fbl@{bounce}")[0]
            == 250
        )
    with world.ctx.engine.connect() as conn:
        window = reputation.measure(conn, world.tenant_id, utcnow() - timedelta(days=1), utcnow())
    assert (window.complaints, window.delivered) == (0, 10)
    assert reputation.check(world.ctx.engine, world.ctx.settings, world.tenant_id, utcnow()) is None
    sb = t.sending_block.c
    with world.ctx.engine.connect() as conn:
        assert conn.scalar(select(sb.id).where(sb.tenant_id == world.tenant_id)) is None
    assert suppressed(world) == {}


def test_recycled_and_altered_return_paths_change_nothing(world: World, listener: int) -> None:
    rows = sent_campaign(world, 2)
    (a_id, a_campaign, a_address), (b_id, _, b_address) = rows
    bounce = world.ctx.settings.bounce_domain
    genuine_a = verp_for(world.ctx, a_id)
    # A's genuine return path, but the bounce names B: it acts on A's recipient only
    about_b = dsn(b_address, "<nothing@x>", bounce)
    assert deliver(listener, about_b, genuine_a)[0] == 250
    # A's return path with the tenant (or the delivery) changed: the MAC no longer holds
    other_tenant = genuine_a.replace(f".{world.tenant_id}-", f".{world.tenant_id + 1}-")
    other_delivery = genuine_a.replace(f"b+{a_id}.", f"b+{b_id}.")
    for forged in (other_tenant, other_delivery):
        assert deliver(listener, dsn(b_address, "<nothing@x>", bounce), forged)[0] == 250
    # a mailto unsubscribe with a made-up MAC
    fake = f"unsubscribe+{b_id}.{a_campaign}.{world.tenant_id}.{'a' * 26}@{bounce}"
    mail = f"From: {b_address}\r\nTo: {fake}\r\nSubject: unsubscribe\r\n\r\n".encode()
    assert deliver(listener, mail, fake)[0] == 250
    assert suppressed(world) == {}
    kept = [ev for ev in events(world) if ev.address in (a_address, b_address)]
    assert kept and all(ev.tenant_id is None and ev.verification == "unverified" for ev in kept)
    assert unverified_count("dsn", "bounce", "recipient_mismatch") >= 1

    # the same return path with a bounce about its own recipient is genuine
    assert deliver(listener, dsn(a_address, "<nothing@x>", bounce), genuine_a)[0] == 250
    assert suppressed(world) == {a_address: "hard_bounce"}


def test_genuine_reports_built_from_the_sent_mail_apply_and_dkim_is_checked(
    world: World, listener: int, suite_dns: LocalDns
) -> None:
    engine = world.ctx.engine
    signing_domain(world, suite_dns, "ed25519-sha256")
    rows = sent_campaign(world, 3)
    bounce = world.ctx.settings.bounce_domain
    (a_id, _, a), (b_id, _, b), (_, _, c) = rows
    original = sent_mail(world, a)
    assert original.startswith(b"DKIM-Signature:")
    assert deliver(listener, arf(original, bounce), f"fbl@{bounce}")[0] == 250
    tampered = sent_mail(world, b).replace(b"Hi ", b"Hy ")  # the receiver rewrote the body
    assert deliver(listener, arf(tampered, bounce), f"fbl@{bounce}")[0] == 250
    # a DSN quoting only the headers: our Message-ID is enough
    message_id = next(
        line.split(b":", 1)[1].strip()
        for line in sent_mail(world, c).split(b"\r\n")
        if line.lower().startswith(b"message-id:")
    )
    assert deliver(listener, dsn(c, message_id.decode(), bounce), f"postmaster@{bounce}")[0] == 250

    e = t.feedback_event.c
    with engine.connect() as conn:
        got = {
            r.address: (r.kind, r.delivery_id is not None, r.verification, r.dkim)
            for r in conn.execute(
                select(e.address, e.kind, e.delivery_id, e.verification, e.dkim).where(
                    e.tenant_id == world.tenant_id
                )
            )
        }
    assert got == {
        a: ("complaint", True, "signed", "pass"),
        b: ("complaint", True, "signed", "fail"),
        c: ("bounce", True, "signed", ""),
    }
    assert suppressed(world) == {a: "complaint", b: "complaint", c: "hard_bounce"}
    assert ref_for(engine, a_id).tenant_id == world.tenant_id and b_id != a_id


def test_legacy_references_resolve_only_inside_their_window(
    world: World, listener: int, fixtures_dir: Path
) -> None:
    """Mail sent before references were MAC'd (campaign.ref_format 1) still resolves
    by its old Message-ID, for LEGACY_REFS_DAYS after the campaign was created."""
    rows = sent_campaign(world, 2)
    (a_id, campaign_id, a), (b_id, _, b) = rows
    bounce = world.ctx.settings.bounce_domain
    c = t.campaign.c
    with world.ctx.engine.begin() as conn:
        conn.execute(update(t.campaign).where(c.id == campaign_id).values(ref_format=1))
    legacy_a = f"Message-ID: <{a_id}.{campaign_id}@x>\r\nTo: {a}\r\n".encode()
    assert (
        deliver(listener, arf(legacy_a, bounce, "text/rfc822-headers"), f"fbl@{bounce}")[0] == 250
    )
    assert suppressed(world) == {a: "complaint"}
    days = world.ctx.settings.legacy_refs_days
    with world.ctx.engine.begin() as conn:
        conn.execute(
            update(t.campaign)
            .where(c.id == campaign_id)
            .values(created_at=utcnow() - timedelta(days=days + 1))
        )
    legacy_b = f"Message-ID: <{b_id}.{campaign_id}@x>\r\nTo: {b}\r\n".encode()
    assert (
        deliver(listener, arf(legacy_b, bounce, "text/rfc822-headers"), f"fbl@{bounce}")[0] == 250
    )
    assert suppressed(world) == {a: "complaint"}
    e = t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        verdicts = dict(
            conn.execute(select(e.address, e.verification).where(e.address.in_((a, b)))).all()
        )
    assert verdicts == {a: "legacy", b: "unverified"}


def test_an_old_format_mailto_unsubscribe_is_honoured_for_good(world: World, listener: int) -> None:
    """Unsubscribing must work however old the mail: a legacy mailto token (always MAC'd)
    of a pre-change campaign suppresses even past LEGACY_REFS_DAYS."""
    import hashlib
    import hmac

    ((delivery_id, campaign_id, address),) = sent_campaign(world, 1)
    c = t.campaign.c
    with world.ctx.engine.begin() as conn:
        conn.execute(
            update(t.campaign)
            .where(c.id == campaign_id)
            .values(ref_format=1, created_at=utcnow() - timedelta(days=400))
        )
    mac = hmac.new(
        world.ctx.settings.secret_key.encode(), f"unsub:{delivery_id}".encode(), hashlib.sha256
    ).hexdigest()[:32]
    rcpt = f"unsubscribe+{delivery_id}.{mac}@{world.ctx.settings.bounce_domain}"
    mail = f"From: {address}\r\nTo: {rcpt}\r\nSubject: unsubscribe\r\n\r\n".encode()
    assert deliver(listener, mail, rcpt)[0] == 250
    assert suppressed(world) == {address: "unsubscribe"}
