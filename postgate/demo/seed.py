"""The demo's sample tenant: one contact for every way the gate can decide."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from postgate.consent import records
from postgate.core.clock import utcnow
from postgate.core.states import SuppressionReason
from postgate.store.models.campaigns import Campaign, Delivery
from postgate.store.models.consent import Contact

TOPIC = "newsletter"


def seed(engine: Engine) -> tuple[str, int]:
    """Create tenants ``acme`` and ``globex``; return acme's slug and its list id."""
    now = utcnow()
    with Session(engine) as s:
        acme = records.create_tenant(s, "acme", "Acme Kft.", "acme.example")
        globex = records.create_tenant(s, "globex", "Globex Zrt.", "globex.example")
        assert acme.id is not None and globex.id is not None
        acme_id = acme.id
        members = records.create_list(s, acme.id, "Newsletter subscribers")

        def contact(email: str, name: str) -> Contact:
            return records.add_contact(s, acme_id, email=email, name=name, lists=[members])

        def consent(c: Contact, source: str, status: str, days: int, **kw: object) -> None:
            when = now - timedelta(days=days)
            records.add_consent(s, c, "email", TOPIC, source, status, when, **kw)

        anna = contact("anna@example.com", "Anna Kovács")
        consent(anna, "signup_form", "pending", 60, form_id=1, signup_ip="198.51.100.7")
        consent(
            anna,
            "signup_form",
            "confirmed",
            60,
            form_id=1,
            confirmed_at=now - timedelta(days=60),
            confirm_ip="198.51.100.7",
        )
        bela = contact("bela@example.com", "Béla Nagy")
        consent(bela, "written_consent", "confirmed", 30, evidence_ref="paper form #1182")
        contact("info@partner.example", "Partner Bt.")  # a role address, no consent
        csaba = contact("csaba@example.com", "Csaba Tóth")
        consent(csaba, "signup_form", "confirmed", 90, confirmed_at=now - timedelta(days=90))
        records.suppress(s, acme.id, "email", "csaba@example.com", SuppressionReason.UNSUBSCRIBE)
        dora = contact("dora@example.com", "Dóra Szabó")
        consent(dora, "signup_form", "confirmed", 430, confirmed_at=now - timedelta(days=430))
        erno = contact("erno@example.com", "Ernő Varga")
        consent(erno, "signup_form", "confirmed", 460, confirmed_at=now - timedelta(days=460))
        fanni = contact("fanni@example.com", "Fanni Kiss")
        consent(fanni, "signup_form", "pending", 2)
        gabor = contact("gabor@example.com", "Gábor Horváth")
        consent(gabor, "purchase", "confirmed", 20, marketing_checkbox=False)
        henrik = contact("henrik@example.com", "Henrik Balogh")
        other = records.add_contact(s, globex.id, email="henrik@example.com", name="Henrik")
        records.add_consent(
            s,
            other,
            "email",
            TOPIC,
            "signup_form",
            "confirmed",
            now - timedelta(days=10),
            confirmed_at=now - timedelta(days=10),
        )
        nobody = contact("nobody@example.com", "Nobody")
        consent(nobody, "written_consent", "confirmed", 5, evidence_ref="trade fair card #77")
        del henrik

        # Ernő got a newsletter three months after signing up and did not complain, so his
        # 15-month-old consent still holds.
        past = Campaign(
            tenant_id=acme.id,
            external_id="autumn-2025",
            channel="email",
            kind="promotional",
            topic=TOPIC,
            list_ids=[],
            subject="Autumn",
            text="…",
            state="finished",
            created_at=now - timedelta(days=370),
        )
        s.add(past)
        s.flush()
        assert past.id is not None and erno.id is not None and members.id is not None
        s.add(
            Delivery(
                tenant_id=acme.id,
                campaign_id=past.id,
                contact_id=erno.id,
                address="erno@example.com",
                state="sent",
                sent_at=now - timedelta(days=370),
            )
        )
        s.commit()
        assert members.id is not None
        return acme.slug, members.id
