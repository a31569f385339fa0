"""The authentication preflight end to end: a tenant verifies a domain over the api with
records in a real DNS server on 127.0.0.1; while SPF/DMARC are missing or the From is not
aligned its bulk campaigns are refused at acceptance (transactional mail goes out), once
fixed they are accepted and sent. The CLI shows the same, and the sweeper re-checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dkim
import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from postgate.consent import records
from postgate.core.clock import utcnow
from postgate.http.auth import create_key
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.store.models.tenants import Tenant
from postgate.tenants import preflight
from tests.dns_server import LocalDns
from tests.support import World, serve_api
from tests.workers.test_dead_letter import dead_letters

PLATFORM = "_spf.postgate.example"


@pytest.fixture
def dns_server() -> Iterator[LocalDns]:
    server = LocalDns()
    server.publish(PLATFORM, "v=spf1 ip4:203.0.113.0/24 -all")
    yield server
    server.close()


@pytest.fixture
def env(world: World, settings: Settings, dns_server: LocalDns) -> Iterator[dict[str, Any]]:
    settings = settings.model_copy(
        update={
            "dns_resolver": dns_server.address,
            "dns_timeout_s": 3,
            "dkim_algorithm": "ed25519-sha256",
            "spf_include": f"include:{PLATFORM}",
        }
    )
    world.ctx = Context.from_settings(settings)
    world.contact("anna")
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    api = serve_api(settings)
    base = next(api)
    http = httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=10)
    brand = f"{world.tenant.slug}-brand.example"
    claimed = http.post("/v1/domains", json={"domain": brand}).json()
    for record in claimed["dns"]:
        dns_server.publish(record["name"], record["value"])
    try:
        yield {"http": http, "brand": brand, "settings": settings, "dkim": claimed["dns"][1]}
    finally:
        http.close()
        next(api, None)


def send(world: World, campaign_id: str, from_email: str, kind: str = "promotional") -> None:
    world.publish(world.message(campaign_id, kind=kind, **{"from": {"email": from_email}}))


def sent_to(world: World, campaign_id: str) -> list[str]:
    return [r.state for r in world.deliveries(campaign_id)]


def refusals(world: World) -> dict[str, str]:
    return {json.loads(body)["campaign_id"]: error for error, body in dead_letters(world)}


def test_bulk_mail_waits_for_spf_dmarc_and_alignment(
    world: World, dns_server: LocalDns, env: dict[str, Any]
) -> None:
    http, brand = env["http"], env["brand"]
    verified = http.post(f"/v1/domains/{brand}/verify").json()
    assert verified["verified"] is True
    first = verified["preflight"]
    assert first["passed"] is False
    assert first["checks"]["spf"] == {
        "passed": False,
        "reason": f"no v=spf1 TXT record at {brand}",
        "found": [],
    }
    assert first["checks"]["dmarc"]["passed"] is False
    assert first["checks"]["dkim"]["passed"] is True
    assert first["checks"]["mta_sts"]["passed"] is False  # reported, not required
    to_publish = {(r["name"], r["value"]) for r in first["records"] if not r["published"]}
    assert (brand, f"v=spf1 include:{PLATFORM} -all") in to_publish
    assert (f"_dmarc.{brand}", "v=DMARC1; p=none; adkim=r; aspf=r") in to_publish
    assert http.get(f"/v1/domains/{brand}/preflight").json() == first

    # missing records: the bulk campaign is refused, a receipt From the same domain goes
    send(world, "bulk-missing", f"news@{brand}")
    send(world, "receipt", f"orders@{brand}", kind="transactional")
    world.run(lambda: world.campaign_state("receipt") == "finished" and bool(refusals(world)))
    assert sent_to(world, "receipt") == ["sent"]
    assert world.campaign_state("bulk-missing") is None
    reason = refusals(world)["bulk-missing"]
    assert "bulk campaign refused" in reason and "fails the authentication preflight" in reason
    assert "spf: no v=spf1 TXT record" in reason and "dmarc: no v=DMARC1" in reason

    # an SPF record that does not include the platform still fails, with the reason
    dns_server.txt[brand] = ["v=spf1 mx -all"]
    dns_server.publish(f"_dmarc.{brand}", "v=DMARC1; p=quarantine; adkim=s")
    partial = http.post(f"/v1/domains/{brand}/preflight").json()
    assert partial["passed"] is False and partial["checks"]["dmarc"]["passed"] is True
    assert partial["checks"]["spf"]["reason"].startswith(f"include:{PLATFORM} is not authorised")
    spf_record = next(r for r in partial["records"] if r["name"] == brand)
    assert spf_record["value"] == f"v=spf1 mx include:{PLATFORM} -all"

    # fixed: accepted from the domain itself; a subdomain is not aligned under adkim=s
    dns_server.txt[brand] = [spf_record["value"]]
    fixed = http.post(f"/v1/domains/{brand}/preflight").json()
    assert fixed["passed"] is True, fixed["checks"]
    assert all(r["published"] for r in fixed["records"] if r["required"])
    send(world, "bulk-fixed", f"news@{brand}")
    send(world, "bulk-subdomain", f"news@mail.{brand}")
    world.run(lambda: world.campaign_state("bulk-fixed") == "finished")
    assert sent_to(world, "bulk-fixed") == ["sent"]
    assert "not aligned with the DKIM signing domain" in refusals(world)["bulk-subdomain"]
    assert world.campaign_state("bulk-subdomain") is None

    # relaxed alignment lets the subdomain send
    dns_server.txt[f"_dmarc.{brand}"] = ["v=DMARC1; p=quarantine; adkim=r"]
    assert http.post(f"/v1/domains/{brand}/preflight").json()["passed"] is True
    send(world, "bulk-relaxed", f"news@mail.{brand}")
    world.run(lambda: world.campaign_state("bulk-relaxed") == "finished")
    assert sent_to(world, "bulk-relaxed") == ["sent"]
    assert http.get("/v1/domains/other.example/preflight").status_code == 404
    assert http.post("/v1/domains/other.example/preflight").status_code == 404


def test_the_sweeper_rechecks_a_day_old_result(
    world: World, dns_server: LocalDns, env: dict[str, Any]
) -> None:
    http, brand, settings = env["http"], env["brand"], env["settings"]
    dns_server.publish(brand, f"v=spf1 include:{PLATFORM} -all")
    dns_server.publish(f"_dmarc.{brand}", "v=DMARC1; p=reject")
    assert http.post(f"/v1/domains/{brand}/verify").json()["preflight"]["passed"] is True
    pf = t.domain_preflight.c
    engine = world.ctx.engine
    now = utcnow()
    assert preflight.recheck_due(engine, settings, now) == 0  # fresh: nothing is due

    del dns_server.txt[env["dkim"]["name"]]  # the tenant removed its DKIM key
    with engine.begin() as conn:
        conn.execute(
            update(t.domain_preflight)
            .where(pf.tenant_id == world.tenant_id)
            .values(checked_at=now - timedelta(days=1, minutes=1))
        )
    world.run(
        lambda: http.get(f"/v1/domains/{brand}/preflight").json()["passed"] is False,
        workers=("sweeper",),
    )
    result = http.get(f"/v1/domains/{brand}/preflight").json()
    assert "not published" in result["checks"]["dkim"]["reason"]
    with engine.connect() as conn:
        checked = conn.scalar(select(pf.checked_at).where(pf.tenant_id == world.tenant_id))
    assert checked is not None and now - timedelta(minutes=1) < checked.replace(tzinfo=now.tzinfo)


def test_the_cli_runs_the_preflight_and_names_the_records_to_publish(
    world: World,
    dns_server: LocalDns,
    env: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from postgate.cli import main as cli

    brand = env["brand"]
    monkeypatch.setenv("DATABASE_URL", env["settings"].database_url)
    monkeypatch.setenv("DNS_RESOLVER", dns_server.address)
    monkeypatch.setenv("SPF_INCLUDE", f"include:{PLATFORM}")
    cli.get_settings.cache_clear()
    try:
        slug = world.tenant.slug
        assert cli.main(["domains", "verify", brand, "--tenant", slug]) == 0
        out = capsys.readouterr()
        assert json.loads(out.out)["preflight"]["passed"] is False
        assert f'publish: {brand} TXT "v=spf1 include:{PLATFORM} -all"' in out.err
        dns_server.publish(brand, f"v=spf1 include:{PLATFORM} -all")
        dns_server.publish(f"_dmarc.{brand}", "v=DMARC1; p=none")
        assert cli.main(["domains", "preflight", brand, "--tenant", slug]) == 0
        out = capsys.readouterr()
        assert json.loads(out.out)["passed"] is True and "publish:" not in out.err
        assert "optional: _mta-sts." in out.err
        assert cli.main(["domains", "preflight", "nope.example", "--tenant", slug]) == 1
        assert "not claimed" in capsys.readouterr().err
    finally:
        cli.get_settings.cache_clear()


def test_a_subdomain_finds_its_dmarc_at_the_parent_and_spf_through_includes(
    world: World, dns_server: LocalDns, env: dict[str, Any]
) -> None:
    from postgate.tenants import domains as domain_store

    settings, brand = env["settings"], env["brand"]
    sub = f"mail.{brand}"
    row = domain_store.add(world.ctx.engine, world.tenant_id, sub, "ed25519-sha256", utcnow())
    for record in domain_store.describe(row)["dns"][1:]:
        dns_server.publish(record["name"], record["value"])
    dns_server.publish(sub, f"v=spf1 redirect=_spf.{brand}")
    dns_server.publish(f"_spf.{brand}", f"v=spf1 ip4:192.0.2.0/24 include:{PLATFORM} ~all")
    dns_server.publish(f"_dmarc.{brand}", "v=DMARC1; p=reject; adkim=r")

    result = preflight.run(world.ctx.engine, settings, world.tenant_id, sub, utcnow())

    assert result["passed"] is True, result["checks"]
    assert result["checks"]["dmarc"]["reason"].startswith(f"_dmarc.{brand}: p=reject")
    assert "2 DNS look-ups" in result["checks"]["spf"]["reason"]  # redirect, include
    dmarc = next(r for r in result["records"] if r["purpose"] == "DMARC policy")
    assert dmarc["name"] == f"_dmarc.{brand}" and dmarc["published"] is True


def test_a_domain_verified_but_never_checked_is_judged_and_fails_closed(
    world: World, dns_server: LocalDns, env: dict[str, Any]
) -> None:
    """A domain verified without a preflight (before the preflight existed): acceptance
    checks it first and refuses its bulk while DNS does not answer or the records are
    missing; the sweeper's scan checks the never-checked too."""
    brand, settings, engine = env["brand"], env["settings"], world.ctx.engine
    sdc, pf = t.sender_domain.c, t.domain_preflight.c
    with engine.begin() as conn:  # as a verification from before migration 0017 left it
        conn.execute(
            update(t.sender_domain)
            .where(sdc.tenant_id == world.tenant_id, sdc.domain == brand)
            .values(verified_at=utcnow())
        )
    dns_server.servfail.update({brand, f"_dmarc.{brand}"})  # DNS does not answer
    send(world, "bulk-unanswered", f"news@{brand}")
    send(world, "receipt", f"orders@{brand}", kind="transactional")
    world.run(lambda: world.campaign_state("receipt") == "finished" and bool(refusals(world)))
    reason = refusals(world)["bulk-unanswered"]
    assert f"domain {brand!r} has no authentication preflight result yet" in reason
    assert world.campaign_state("bulk-unanswered") is None
    assert sent_to(world, "receipt") == ["sent"]

    dns_server.servfail.clear()  # DNS answers: the sweeper checks it (records missing)
    assert preflight.recheck_due(engine, settings, utcnow()) >= 1
    with engine.connect() as conn:
        stored = conn.scalar(select(pf.passed).where(pf.tenant_id == world.tenant_id))
    assert stored is False
    send(world, "bulk-missing", f"news@{brand}")
    world.run(lambda: "bulk-missing" in refusals(world))
    assert "fails the authentication preflight" in refusals(world)["bulk-missing"]


def test_a_provisioned_primary_domain_sends_bulk_only_once_authenticated(
    world: World, dns_server: LocalDns, env: dict[str, Any]
) -> None:
    """A tenant created over the operator api: its primary domain is vouched for and gets
    a DKIM key; its first bulk campaign is judged at acceptance (records missing: refused),
    and once the tenant publishes what it was told, accepted and sent signed."""
    from postgate.platform import provisioning as prov
    from tests.support import publish_domain

    settings, engine = env["settings"], world.ctx.engine
    slug = f"prov-{world.tenant.slug}"
    spec = prov.TenantSpec.model_validate(
        {"slug": slug, "legal_name": "Prov Kft.", "domain": f"{slug}.example"}
    )
    created = prov.create_tenant(engine, spec, "test", utcnow(), settings)
    assert created["sender_domain"]["verified"] is True
    tenant_id = created["id"]
    with Session(engine, expire_on_commit=False) as s:
        tenant = s.get(Tenant, tenant_id)
        assert tenant is not None
        moved = World(world.ctx, world.sink, tenant, records.create_list(s, tenant_id, "main"))
        s.commit()
    moved.contact("zsofi")
    send(moved, "first-bulk", f"news@{spec.domain}")
    moved.run(lambda: "first-bulk" in refusals(moved))
    reason = refusals(moved)["first-bulk"]
    assert "fails the authentication preflight" in reason and "dkim: the active DKIM key" in reason

    publish_domain(dns_server, created | {"domain": spec.domain})
    assert preflight.run(engine, settings, tenant_id, spec.domain, utcnow())["passed"] is False
    dns_server.txt[spec.domain] = [f"v=spf1 include:{PLATFORM} -all"]  # SPF_INCLUDE is set
    assert preflight.run(engine, settings, tenant_id, spec.domain, utcnow())["passed"] is True
    send(moved, "second-bulk", f"news@{spec.domain}")
    moved.run(lambda: moved.campaign_state("second-bulk") == "finished")
    assert sent_to(moved, "second-bulk") == ["sent"]
    (mail,) = world.sink.handler.to(f"zsofi@{spec.domain}")
    assert dkim.verify(mail.data, dnsfunc=dns_server.dkim_dnsfunc)


def test_bulk_from_a_primary_domain_that_is_no_sender_domain_is_counted(world: World) -> None:
    """A tenant seeded straight into the database has no sender-domain row for its primary
    domain: its bulk goes out unsigned, and the operator sees it counted and logged."""
    from prometheus_client import REGISTRY

    def counted() -> float:
        sample = REGISTRY.get_sample_value(
            "postgate_unsigned_bulk_campaigns_total", {"tenant": world.tenant.slug}
        )
        return sample or 0.0

    world.contact("ilona")
    send(world, "plain-bulk", f"news@{world.tenant.domain}")
    send(world, "plain-receipt", f"orders@{world.tenant.domain}", kind="transactional")
    world.run(lambda: world.finished("plain-bulk")() and world.finished("plain-receipt")())
    assert sent_to(world, "plain-bulk") == ["sent"]
    mails = world.sink.handler.to(f"ilona@{world.tenant.domain}")
    assert len(mails) == 2 and not any(b"DKIM-Signature:" in m.data for m in mails)
    assert counted() == 1  # the bulk campaign only
