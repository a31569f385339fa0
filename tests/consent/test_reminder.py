"""The provenance reminder footer: pure rule at its boundary, then end to end."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta

from sqlalchemy import insert

from postgate.consent.reminder import needs_reminder, reminder_text
from postgate.core.clock import utcnow
from postgate.core.i18n import date_text
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
    hu = reminder_text("signup_form", "a hírlevél űrlap", now, "Acme Kft.", "hu", "UTC")
    assert hu == (
        "Azért kapja ezt az üzenetet, mert feliratkozott itt: a hírlevél űrlap "
        f"(dátum: {date_text(now, 'hu', 'UTC')}, Acme Kft.)."
    )


def _bodies(world: World, local: str) -> tuple[str, str]:
    (received,) = world.sink.handler.to(f"{local}@{world.tenant.domain}")
    mail = email.message_from_bytes(received.data, policy=email.policy.default)  # type: ignore[arg-type]
    text, html = mail.iter_parts()  # type: ignore[attr-defined]
    return text.get_content(), html.get_content()


def test_silent_recipients_get_the_footer(world: World) -> None:
    with world.ctx.engine.begin() as conn:
        form_id = conn.execute(
            insert(t.signup_form)
            .values(
                tenant_id=world.tenant_id,
                public_id=f"pf-{world.tenant.slug}",
                name="Summer <b>shop</b> form",
                topic="news",
                list_id=world.mlist.id,
                channels=["email"],
                consent_text="x",
                consent_text_version="1",
                consent_text_hash="h",
                enabled=True,
                created_at=utcnow(),
            )
            .returning(t.signup_form.c.id)
        ).scalar_one()
    world.contact("quiet", days_ago=120, form_id=form_id)  # signed up, never mailed
    world.contact("fresh", days_ago=20, form_id=form_id)
    world.contact("paper", source="written_consent", evidence_ref="box 1", days_ago=200)
    recent = world.contact("recent", source="written_consent", evidence_ref="box 2", days_ago=200)
    with world.ctx.engine.begin() as conn:
        old = conn.execute(
            insert(t.campaign)
            .values(
                tenant_id=world.tenant_id,
                external_id="older",
                channel="email",
                kind="promotional",
                topic="news",
                list_ids=[],
                state="finished",
                created_at=ago(12),
            )
            .returning(t.campaign.c.id)
        ).scalar_one()
        conn.execute(
            insert(t.delivery).values(
                tenant_id=world.tenant_id,
                campaign_id=old,
                contact_id=recent.id,
                address=recent.email,
                state="sent",
                created_at=ago(12),
                updated_at=ago(12),
                sent_at=ago(12),
            )
        )
    world.publish(world.message("remind"))
    world.run(world.finished("remind"))

    text, html = _bodies(world, "quiet")
    day = date_text(utcnow() - timedelta(days=120), "en", "Europe/Budapest")
    assert f"You receive this because you signed up at Summer <b>shop</b> form on {day}" in text
    assert "Summer &lt;b&gt;shop&lt;/b&gt; form" in html
    assert "gave written consent" in _bodies(world, "paper")[0]
    for local in ("fresh", "recent"):
        assert "You receive this because" not in _bodies(world, local)[0]


def test_the_footer_is_in_the_tenants_language_and_names_its_brand(world: World) -> None:
    with world.ctx.engine.begin() as conn:
        conn.execute(
            insert(t.metadata.tables["tenant_brand"]).values(
                tenant_id=world.tenant_id,
                display_name="Acme Kft.",
                logo_url="",
                accent_color="",
                website_url="",
                privacy_url="",
                locale="hu",
                time_zone="Europe/Budapest",
                allow_resubscribe=True,
                updated_at=utcnow(),
            )
        )
    world.contact("csend", source="written_consent", evidence_ref="box 3", days_ago=150)
    world.publish(world.message("emlekezteto"))
    world.run(world.finished("emlekezteto"))
    text, html = _bodies(world, "csend")
    day = date_text(utcnow() - timedelta(days=150), "hu", "Europe/Budapest")
    assert (
        f"Azért kapja ezt az üzenetet, mert írásban hozzájárult (dátum: {day}, Acme Kft.)."
    ) in text
    assert text.count("Leiratkozás vagy a témák módosítása: http") == 1
    assert "Unsubscribe" not in text and "Leiratkozás vagy a témák módosítása</a>" in html
