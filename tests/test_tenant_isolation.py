"""Every tenant route tried with another tenant's key and ids: 404, never data; the same
answer as for an id that does not exist, so ids reveal nothing."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from postgate.core.clock import utcnow
from postgate.events import endpoints
from postgate.http.auth import create_key
from postgate.store import tables as t
from tests.support import World


def test_another_tenants_ids_answer_404(world: World, api: str) -> None:
    contact = world.contact("anna")
    world.publish(world.message("private"))
    world.run(world.finished("private"))
    with world.ctx.engine.connect() as conn:
        campaign_id = conn.scalar(
            select(t.campaign.c.id).where(t.campaign.c.tenant_id == world.tenant_id)
        )
    owner_key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    intruder = World.create(world.ctx, world.sink)
    intruder_key = create_key(world.ctx.engine, "tenant", "crm", intruder.tenant.slug)
    owner = {"Authorization": f"Bearer {owner_key}"}
    other = {"Authorization": f"Bearer {intruder_key}"}
    with httpx.Client(base_url=api) as http:
        form = http.post(
            "/v1/forms",
            headers=owner,
            json={
                "name": "f",
                "topic": "news",
                "list_id": world.mlist.id,
                "consent_text": "I agree",
                "consent_text_version": "1",
            },
        ).json()
        synced = http.post(
            "/v1/contacts:bulk",
            headers=owner,
            json={
                "version": "contacts.v1",
                "tenant": world.tenant.slug,
                "batch_id": "owner",
                "contacts": [{"external_id": "crm-1", "email": f"crm@{world.tenant.domain}"}],
            },
        ).json()
        spare = http.post("/v1/lists", headers=owner, json={"name": "spare"}).json()
        gone = http.delete(f"/v1/lists/{spare['id']}", headers=other)
        assert (
            gone.status_code == 404
            and gone.json() == http.delete("/v1/lists/987654321", headers=other).json()
        )
        assert spare["id"] in [x["id"] for x in http.get("/v1/lists", headers=owner).json()]
        http.post(
            "/v1/suppressions/imports",
            headers=owner,
            json=[{"address": f"secret@{world.tenant.domain}"}],
        )
        hook = endpoints.create(
            world.ctx.engine,
            world.tenant_id,
            "https://crm.example/hooks/postgate",
            [],
            "the owner's CRM",
            "test",
            utcnow(),
        )
        dropped = http.delete(f"/v1/event-endpoints/{hook['id']}", headers=other)
        assert dropped.status_code == 404
        assert dropped.json() == http.delete("/v1/event-endpoints/987654321", headers=other).json()
        probes = [  # (method, path on the owner's id, the same path on an id that is absent)
            ("GET", "/v1/campaigns/{}", campaign_id, 987654321, None),
            ("POST", "/v1/campaigns/{}/pause", campaign_id, 987654321, None),
            ("POST", "/v1/campaigns/{}/cancel", campaign_id, 987654321, None),
            ("POST", "/v1/campaigns/{}/resume", campaign_id, 987654321, None),
            ("GET", "/v1/contacts/{}/evidence", contact.id, 987654321, None),
            ("PATCH", "/v1/forms/{}", form["public_id"], "x" * 22, {"enabled": False}),
            ("GET", "/v1/campaigns/{}/results", campaign_id, 987654321, None),
            ("GET", "/v1/campaigns/by-ref/{}", "private", "absent", None),
            ("GET", "/v1/contacts/by-ref/{}", "crm-1", "absent", None),
            ("GET", "/v1/contacts/syncs/{}", synced["sync_id"], 987654321, None),
            ("PATCH", "/v1/lists/{}", spare["id"], 987654321, {"name": "mine now"}),
            ("GET", "/v1/event-endpoints/{}", hook["id"], 987654321, None),
            ("PATCH", "/v1/event-endpoints/{}", hook["id"], 987654321, {"description": "mine"}),
            ("POST", "/v1/event-endpoints/{}/resume", hook["id"], 987654321, None),
            ("GET", "/v1/event-endpoints/{}/dead-letters", hook["id"], 987654321, None),
        ]
        for method, path, real, absent, body in probes:
            mine = http.request(method, path.format(real), headers=owner, json=body)
            theirs = http.request(method, path.format(real), headers=other, json=body)
            missing = http.request(method, path.format(absent), headers=other, json=body)
            assert theirs.status_code == 404, (path, theirs.status_code, theirs.text)
            assert missing.status_code == 404 and theirs.json() == missing.json(), path
            assert mine.status_code != 404, (path, mine.text)
        imported = http.post(
            f"/v1/lists/{world.mlist.id}/imports",
            headers=other,
            params={
                "source": "written_consent",
                "topic": "news",
                "collected_at": "2026-11-01",
                "evidence": "x",
            },
            content=b"email\nx@y.example\n",
        )
        assert imported.status_code == 404, imported.text
        listed = http.get("/v1/campaigns", headers=other).json()
        assert listed == []
        assert http.get("/v1/event-endpoints", headers=other).json() == []
        assert [x["id"] for x in http.get("/v1/event-endpoints", headers=owner).json()] == [
            hook["id"]
        ]
        told = http.get("/v1/events", headers=owner, params={"after": 0}).json()["events"]
        assert {ev["recipient"] for ev in told} == {f"anna@{world.tenant.domain}"}
        for after in (0, told[0]["seq"] - 1):  # no cursor shows another tenant's events
            theirs = http.get("/v1/events", headers=other, params={"after": after}).json()
            assert theirs["events"] == [] and world.tenant.domain not in str(theirs)
        assert [x["name"] for x in http.get("/v1/lists", headers=other).json()] == ["main"]
        assert http.get("/v1/contacts/syncs", headers=other).json() == []
        assert (
            http.get("/v1/contacts/syncs", headers=other, params={"batch_id": "owner"}).json() == []
        )
        assert http.get("/v1/suppressions", headers=other).json() == {"suppressions": []}
        for fmt in ("json", "csv"):
            leaked = http.get("/v1/suppressions", headers=other, params={"format": fmt})
            assert world.tenant.domain not in leaked.text
        stats = http.get("/v1/stats", headers=other).json()
        assert (stats["campaigns"], stats["sent"]) == (0, 0)
        me = http.get("/v1/me", headers=other).json()
        assert me["tenant"] == intruder.tenant.slug and world.tenant.slug not in str(me)
        into = http.post(
            "/v1/contacts:bulk",
            headers=other,
            json={
                "version": "contacts.v1",
                "tenant": intruder.tenant.slug,
                "contacts": [
                    {
                        "external_id": "crm-1",
                        "email": f"x@{intruder.tenant.domain}",
                        "lists": [world.mlist.id],
                    }
                ],
            },
        ).json()
        assert into["dropped"] == 1 and "no such list" in into["report"][0]["reason"]
        foreign_sync = {
            "version": "contacts.v1",
            "tenant": world.tenant.slug,
            "contacts": [{"external_id": "crm-1", "name": "Hijacked"}],
        }
        assert http.post("/v1/contacts:bulk", headers=other, json=foreign_sync).status_code == 403
        for path in (
            "/v1/operator/tenants",
            f"/v1/operator/tenants/{world.tenant.slug}",
            f"/v1/operator/tenants/{world.tenant.slug}/lists",
            f"/v1/operator/tenants/{world.tenant.slug}/export.xml",
        ):
            assert http.get(path, headers=other).status_code == 403, path
        export = http.get("/v1/export.xml", headers=other)
        assert export.status_code == 200 and world.tenant.domain.encode() not in export.content
        foreign = world.message("sneaky") | {"tenant": world.tenant.slug}
        assert http.post("/v1/campaigns", headers=other, json=foreign).status_code == 403
    assert world.campaign_state("private") == "finished"
    with world.ctx.engine.connect() as conn:
        names = list(
            conn.scalars(
                select(t.contact.c.name).where(
                    t.contact.c.tenant_id == world.tenant_id, t.contact.c.email.like("crm@%")
                )
            )
        )
    assert names == [""]  # the other tenant's sync under the same CRM id touched nothing


def test_campaign_routes_submit_status_and_control(world: World, api: str) -> None:
    world.contact("anna")
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api) as http:
        bad = http.post("/v1/campaigns", headers=auth, content=b'{"version": "campaign.v1"}')
        assert bad.status_code == 422 and "Field required" in bad.json()["detail"][0]["msg"]
        ok = http.post("/v1/campaigns", headers=auth, json=world.message("via-http"))
        assert ok.status_code == 202
        world.run(world.finished("via-http"))
        (campaign,) = http.get("/v1/campaigns", headers=auth).json()
        status = http.get(f"/v1/campaigns/{campaign['id']}", headers=auth).json()
        assert status["state"] == "finished"
        assert status["deliveries"] == [{"state": "sent", "reason": None, "count": 1}]
        again = http.post(f"/v1/campaigns/{campaign['id']}/pause", headers=auth)
        assert again.status_code == 409
