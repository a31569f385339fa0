"""A branded tenant for the visitor-page tests, set up through the tenant api."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from postgate.http.auth import create_key
from tests.support import World

CONSENT_HU = (
    "Hozzájárulok, hogy az Acme Kft. hírlevelet küldjön nekem az akcióiról. "
    "Bármikor leiratkozhatok."
)
TOPICS = {
    "news": {
        "hu": {"name": "Heti akciók", "description": "Minden kedden a heti ajánlatok."},
        "en": {"name": "Weekly deals", "description": "The week's offers, every Tuesday."},
    },
    "events": {
        "hu": {"name": "Rendezvények", "description": "Meghívók a boltjaink eseményeire."},
        "en": {"name": "Events", "description": "Invitations to events in our shops."},
    },
}


@dataclass
class Site:
    world: World
    api: str
    key: str
    form: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def new_form(self, **overrides: Any) -> dict[str, Any]:
        spec = {
            "name": "Hírlevél a láblécben",
            "topic": "news",
            "list_id": self.world.mlist.id,
            "consent_text": CONSENT_HU,
            "consent_text_version": "2026-12",
            "confirmed_message": "Köszönjük, hogy feliratkozott!",
        }
        spec.update(overrides)
        r = httpx.post(f"{self.api}/v1/forms", json=spec, headers=self.auth)
        assert r.status_code == 201, r.text
        return dict(r.json())


def branded(world: World, api: str, locale: str = "", **form: Any) -> Site:
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    auth = {"Authorization": f"Bearer {key}"}
    r = httpx.put(
        f"{api}/v1/brand",
        headers=auth,
        json={
            "display_name": "Acme Kft.",
            "logo_url": "",
            "accent_color": "#0b6e4f",
            "website_url": "https://acme.example/",
            "privacy_url": "https://acme.example/adatvedelem",
            "locale": locale,
            "time_zone": "Europe/Budapest",
        },
    )
    assert r.status_code == 200, r.text
    for topic, labels in TOPICS.items():
        r = httpx.put(f"{api}/v1/topics/{topic}", headers=auth, json={"labels": labels})
        assert r.status_code == 200, r.text
    site = Site(world, api, key, {})
    site.form = site.new_form(**form)
    return site
