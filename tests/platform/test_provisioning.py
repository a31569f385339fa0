"""A tenant provisioned from nothing over the api (operator key), its contacts synced by
the client, a campaign sent and its results read; suspended (the campaign says why it is
held), reinstated, and closed (export first, keys revoked); every step audited."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from email import message_from_bytes

import dkim
import httpx
import pytest

from postgate.client import ApiError, Client
from postgate.core.clock import utcnow
from postgate.http.auth import create_key
from postgate.runtime.context import Context
from postgate.sinks.smtp import SmtpSink
from tests.dns_server import LocalDns
from tests.support import publish_domain, run_until


def contact(external_id: str, email: str, lists: list[int], days: int = 20) -> dict[str, object]:
    return {
        "external_id": external_id,
        "email": email,
        "name": external_id.title(),
        "lists": lists,
        "consents": [
            {
                "channel": "email",
                "topic": "news",
                "source": "written_consent",
                "consented_at": (utcnow() - timedelta(days=days)).isoformat(),
                "evidence": "paper form, box 7",
            }
        ],
    }


def campaign(slug: str, campaign_id: str, list_id: int) -> dict[str, object]:
    return {
        "version": "campaign.v1",
        "tenant": slug,
        "campaign_id": campaign_id,
        "channel": "email",
        "kind": "promotional",
        "topic": "news",
        "audience": [list_id],
        "from": {"email": f"news@{slug}.example", "name": "News"},
        "content": {"subject": "Hello {{ name }}", "text": "Hi {{ name }}!"},
    }


def state(crm: Client, campaign_id: str, key: str = "state") -> object:
    try:
        results = crm.campaign_results(campaign_id)
    except ApiError:  # not planned yet
        return None
    return results[key] if key != "held" else results["held"]["total"]


def run(ctx: Context, until: object, timeout: float = 30) -> None:
    asyncio.run(run_until(ctx, ["planner", "sender", "sweeper"], until, timeout))  # type: ignore[arg-type]


def test_a_tenant_from_nothing_to_results_and_closure(
    ctx: Context, api: str, sink: SmtpSink, suite_dns: LocalDns
) -> None:
    slug = f"acme-{uuid.uuid4().hex[:6]}"
    ops = {"Authorization": f"Bearer {create_key(ctx.engine, 'operator', 'alice')}"}
    with httpx.Client(base_url=api, headers=ops) as op:
        created = op.post(
            "/v1/operator/tenants",
            json={
                "slug": slug,
                "legal_name": "Acme Kft.",
                "domain": f"{slug}.example",
                "locale": "hu-HU",
                "default_from": {"email": f"news@{slug}.example", "name": "Acme"},
                "limits": {"max_lists": 2},
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "active" and created.json()["locale"] == "hu-HU"
        primary = created.json()["sender_domain"]
        assert primary["domain"] == f"{slug}.example" and primary["verified"] is True
        dkim_record = primary["dns"][1]
        assert dkim_record["name"].endswith(f"._domainkey.{slug}.example")
        publish_domain(suite_dns, created.json())  # the tenant publishes what it was told
        assert (
            op.post(
                "/v1/operator/tenants",
                json={"slug": slug, "legal_name": "x", "domain": "x.example"},
            ).status_code
            == 409
        )
        main = op.post(f"/v1/operator/tenants/{slug}/lists", json={"name": "main"}).json()
        spare = op.post(f"/v1/operator/tenants/{slug}/lists", json={"name": "spare"}).json()
        third = op.post(f"/v1/operator/tenants/{slug}/lists", json={"name": "third"})
        assert third.status_code == 409 and "limit of 2 lists" in third.text
        renamed = op.patch(f"/v1/operator/tenants/{slug}/lists/{spare['id']}", json={"name": "vip"})
        assert renamed.json()["name"] == "vip"
        assert op.delete(f"/v1/operator/tenants/{slug}/lists/{spare['id']}").status_code == 200
        changed = op.patch(
            f"/v1/operator/tenants/{slug}",
            json={"legal_name": "Acme Zrt.", "limits": {"max_lists": 5}},
        )
        assert changed.json()["legal_name"] == "Acme Zrt."
        assert changed.json()["limits"] == {"max_lists": 5, "max_contacts": None}
        outside = op.patch(
            f"/v1/operator/tenants/{slug}", json={"default_from": {"email": "ceo@bank.example"}}
        )
        assert outside.status_code == 422 and "not in the tenant's domain" in outside.text

    key = create_key(ctx.engine, "tenant", "crm", slug)
    with Client(api, key) as crm:
        report = crm.upsert_contacts(
            slug,
            [
                contact("crm-1", f"anna@{slug}.example", [main["id"]]),
                contact("crm-2", f"bela@{slug}.example", [main["id"]]),
            ],
            batch_id="first",
        )
        assert (report["created"], report["dropped"]) == (2, 0), report
        assert crm.me()["profile"]["locale"] == "hu-HU"
        spring = campaign(slug, "spring", main["id"])
        del spring["from"]  # sent from the tenant's default From
        crm.publish_campaign(spring)
        run(ctx, lambda: state(crm, "spring") == "finished")
        results = crm.campaign_results("spring")
        assert (results["sent"], results["failed"], results["held"]["total"]) == (2, 0, 0)
        assert results["blocked"] == {"total": 0, "by_reason": {}}
        assert len(sink.handler.received) == 2
        assert {message_from_bytes(r.data)["From"] for r in sink.handler.received} == {
            f"Acme <news@{slug}.example>"
        }
        assert all(  # signed with the primary domain's key, which DNS now publishes
            dkim.verify(r.data, dnsfunc=suite_dns.dkim_dnsfunc) for r in sink.handler.received
        )
        assert crm.stats()["sent"] == 2 and crm.stats()["campaigns"] == 1

        with httpx.Client(base_url=api, headers=ops) as op:
            suspended = op.post(
                f"/v1/operator/tenants/{slug}/suspend", json={"reason": "unpaid invoice 2026/11"}
            )
            assert suspended.json()["status"] == "suspended"
        me = crm.me()["sending"]
        assert me["status"] == "suspended" and not me["may_send"]["promotional_email"]
        assert me["may_send"]["transactional_email"]
        assert {b["reason"] for b in me["blocks"]} == {"unpaid invoice 2026/11"}
        crm.publish_campaign(campaign(slug, "summer", main["id"]))
        run(ctx, lambda: state(crm, "summer", "held") == 2)
        held = crm.campaign_results("summer")
        assert held["held"]["by_reason"] == {"tenant_disabled": 2} and held["state"] == "sending"
        assert {w["reason"] for w in held["held"]["why"]} == {"unpaid invoice 2026/11"}
        assert len(sink.handler.received) == 2

        with httpx.Client(base_url=api, headers=ops) as op:
            back = op.post(f"/v1/operator/tenants/{slug}/reinstate", json={"reason": "paid"}).json()
            assert back["status"] == "active" and back["resumed"] == 2
        run(ctx, lambda: state(crm, "summer") == "finished")
        assert crm.campaign_results("summer")["sent"] == 2 and len(sink.handler.received) == 4

        with httpx.Client(base_url=api, headers=ops) as op:
            export = op.get(f"/v1/operator/tenants/{slug}/export.xml")
            assert export.status_code == 200 and f"anna@{slug}.example".encode() in export.content
            closed = op.post(
                f"/v1/operator/tenants/{slug}/close", json={"reason": "contract ended"}
            ).json()
            assert closed["status"] == "killed" and closed["purge_after"]
            again = op.post(f"/v1/operator/tenants/{slug}/close", json={"reason": "again"})
            assert again.status_code == 409
            assert op.get(f"/v1/operator/tenants/{slug}/export.xml").status_code == 200
            audit = [a["action"] for a in op.get(f"/v1/operator/tenants/{slug}/audit").json()]
        with pytest.raises(ApiError) as revoked:
            crm.me()
        assert revoked.value.status == 401
    assert {
        "tenant.create",
        "tenant.update",
        "list.create",
        "list.rename",
        "list.delete",
        "tenant.suspend",
        "tenant.reinstate",
        "tenant.close",
    } <= set(audit), audit


def test_tenant_keys_cannot_provision_and_bad_specs_say_why(ctx: Context, api: str) -> None:
    ops = {"Authorization": f"Bearer {create_key(ctx.engine, 'operator', 'alice')}"}
    slug = f"beta-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=api, headers=ops) as op:
        bad = op.post(
            "/v1/operator/tenants",
            json={"slug": "Not A Slug", "legal_name": "x", "domain": "x.example"},
        )
        assert bad.status_code == 422 and "slug" in bad.text
        bad = op.post(
            "/v1/operator/tenants", json={"slug": slug, "legal_name": "x", "domain": "127.0.0.1"}
        )
        assert bad.status_code == 422
        assert (
            op.post(
                "/v1/operator/tenants",
                json={"slug": slug, "legal_name": "Beta", "domain": f"{slug}.example"},
            ).status_code
            == 201
        )
        assert op.get("/v1/operator/tenants/nobody-here").status_code == 404
        assert slug in [row["slug"] for row in op.get("/v1/operator/tenants").json()]
    tenant = {"Authorization": f"Bearer {create_key(ctx.engine, 'tenant', 'crm', slug)}"}
    with httpx.Client(base_url=api, headers=tenant) as http:
        assert (
            http.post(
                "/v1/operator/tenants", json={"slug": "x", "legal_name": "x", "domain": "x.example"}
            ).status_code
            == 403
        )
        assert (
            http.post(f"/v1/operator/tenants/{slug}/close", json={"reason": "mine"}).status_code
            == 403
        )
        mine = http.post("/v1/lists", json={"name": "own"})
        assert mine.status_code == 201
        form = http.post(
            "/v1/forms",
            json={
                "name": "f",
                "topic": "news",
                "list_id": mine.json()["id"],
                "consent_text": "I agree",
                "consent_text_version": "1",
            },
        )
        assert form.status_code == 201
        kept = http.delete(f"/v1/lists/{mine.json()['id']}")
        assert kept.status_code == 409 and "signup forms" in kept.text
        assert [x["name"] for x in http.get("/v1/lists").json()] == ["own"]
