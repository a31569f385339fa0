"""The provenance reminder footer: pure rule at its boundary, then end to end."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta

from sqlalchemy import insert

from postgate.consent.reminder import needs_reminder, reminder_text
from postgate.core.clock import utcnow
from postgate.store import tables as t
from tests.support import World, ago


def test_needs_reminder_boundary() -> None:
    now = utcnow()
    assert needs_reminder(None, now - timedelta(days=90), now, 90)
    assert not needs_reminder(None, now - timedelta(days=89, hours=23), now, 90)
    assert not needs_reminder(now - timedelta(days=10), now - timedelta(days=400), now, 90)
    assert needs_reminder(now - timedelta(days=91), now - timedelta(days=10), now, 90)
    text = reminder_text("signup_form", "the footer form", now - timedelta(days=100), "Acme")
    assert text.startswith("You receive this because you signed up at the footer form on ")
    assert "(Acme)" in text
    assert "written consent" in reminder_text("written_consent", None, now, "Acme")


def _bodies(world: World, local: str) -> tuple[str, str]:
    (received,) = world.sink.handler.to(f"{local}@{world.tenant.domain}")
    mail = email.message_from_bytes(received.data, policy=email.policy.default)  # type: ignore[arg-type]
    text, html = mail.iter_parts()  # type: ignore[attr-defined]
    return text.get_content(), html.get_content()


def test_silent_recipients_get_the_footer(world: World) -> None:
    with world.ctx.engine.begin() as conn:
        form_id = conn.execute(insert(t.signup_form).values(
            tenant_id=world.tenant_id, public_id=f"pf-{world.tenant.slug}",
            name="Summer <b>shop</b> form", topic="news", list_id=world.mlist.id,
            channels=["email"], consent_text="x", consent_text_version="1",
            consent_text_hash="h", enabled=True, created_at=utcnow(),
        ).returning(t.signup_form.c.id)).scalar_one()
    world.contact("quiet", days_ago=120, form_id=form_id)  # signed up, never mailed
    world.contact("fresh", days_ago=20, form_id=form_id)
    world.contact("paper", source="written_consent", evidence_ref="box 1", days_ago=200)
    recent = world.contact("recent", source="written_consent", evidence_ref="box 2",
                           days_ago=200)
    with world.ctx.engine.begin() as conn:
        old = conn.execute(insert(t.campaign).values(
            tenant_id=world.tenant_id, external_id="older", channel="email", kind="promotional",
            topic="news", list_ids=[], state="finished", created_at=ago(12),
        ).returning(t.campaign.c.id)).scalar_one()
        conn.execute(insert(t.delivery).values(
            tenant_id=world.tenant_id, campaign_id=old, contact_id=recent.id,
            address=recent.email, state="sent", created_at=ago(12), updated_at=ago(12),
            sent_at=ago(12)))
    world.publish(world.message("remind"))
    world.run(world.finished("remind"))

    text, html = _bodies(world, "quiet")
    day = (utcnow() - timedelta(days=120)).date().isoformat()
    assert f"You receive this because you signed up at Summer <b>shop</b> form on {day}" in text
    assert "Summer &lt;b&gt;shop&lt;/b&gt; form" in html
    assert "gave written consent" in _bodies(world, "paper")[0]
    for local in ("fresh", "recent"):
        assert "You receive this because" not in _bodies(world, local)[0]
