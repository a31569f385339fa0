"""A tenant's ``max_contacts`` holds on every path that brings contacts in: the CRM's
sync, a CSV import and a signup form. Contacts it already has are never refused."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from postgate.http.auth import create_key
from postgate.store import tables as t
from tests.consent.test_imports import declaration, iso
from tests.consent.test_signup_forms import count, make_form
from tests.support import World

LIMIT = "the tenant's limit of 3 contacts is reached"


def test_max_contacts_holds_for_sync_imports_and_forms(world: World, api: str) -> None:
    ops = {"Authorization": f"Bearer {create_key(world.ctx.engine, 'operator', 'alice')}"}
    limited = httpx.patch(
        f"{api}/v1/operator/tenants/{world.tenant.slug}",
        json={"limits": {"max_contacts": 3}},
        headers=ops,
    )
    assert limited.status_code == 200, limited.text
    d = world.tenant.domain
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    crm = {"Authorization": f"Bearer {key}"}
    world.contact("old")  # one of the three is taken

    csv_text = (
        "email,name,consented_at\n"
        f"ann@{d},Ann,{iso(20)}\n"  # line 2
        f"old@{d},Old,{iso(20)}\n"  # 3: already a contact, takes no room
        f"bob@{d},Bob,{iso(20)}\n"  # 4
        f"cid@{d},Cid,{iso(20)}\n"  # 5: over the limit
    )
    imported = httpx.post(
        f"{api}/v1/lists/{world.mlist.id}/imports",
        params=declaration(),
        content=csv_text.encode(),
        headers=crm,
    ).json()
    assert (imported["rows_imported"], imported["rows_dropped"]) == (3, 1), imported
    assert imported["report"] == [{"line": 5, "reason": LIMIT}]
    assert count(world, t.contact, t.contact.c.tenant_id == world.tenant_id) == 3

    synced = httpx.post(
        f"{api}/v1/contacts:bulk",
        json={
            "version": "contacts.v1",
            "tenant": world.tenant.slug,
            "contacts": [
                {"external_id": "crm-ann", "email": f"ann@{d}", "name": "Ann B."},
                {"external_id": "crm-dan", "email": f"dan@{d}"},
            ],
        },
        headers=crm,
    ).json()
    assert synced["dropped"] == 1 and synced["report"][0]["reason"] == LIMIT, synced

    _, form = make_form(world, api)
    before = REGISTRY.get_sample_value(
        "postgate_consent_events_total", {"tenant": world.tenant.slug, "event": "contact_limit"}
    )
    with httpx.Client(base_url=api) as http:
        new = http.post(f"/f/{form['public_id']}", json={"email": f"eve@{d}"})
        known = http.post(f"/f/{form['public_id']}", json={"email": f"bob@{d}"})
    assert new.status_code == known.status_code == 202  # the visitor is told nothing more
    pending = t.pending_signup.c
    assert count(world, t.pending_signup, pending.address == f"eve@{d}") == 0
    assert count(world, t.pending_signup, pending.address == f"bob@{d}") == 1
    after = REGISTRY.get_sample_value(
        "postgate_consent_events_total", {"tenant": world.tenant.slug, "event": "contact_limit"}
    )
    assert (after or 0) - (before or 0) == 1
    assert count(world, t.contact, t.contact.c.tenant_id == world.tenant_id) == 3

    erased = httpx.post(f"{api}/v1/erasures", json={"address": f"ann@{d}"}, headers=crm)
    assert erased.status_code == 200, erased.text  # an erased person frees the room
    with httpx.Client(base_url=api) as http:
        assert http.post(f"/f/{form['public_id']}", json={"email": f"eve@{d}"}).status_code == 202
    assert count(world, t.pending_signup, pending.address == f"eve@{d}") == 1
