"""Sender authentication end to end: a tenant claims a domain over the api, publishes the
TXT token and DKIM key in DNS (a real DNS server on 127.0.0.1), verifies it, and its mail
arrives at the SMTP sink with a DKIM signature that verifies against that DNS."""

from __future__ import annotations

import email
import email.policy

import dkim
import httpx
import pytest

from postgate.http.auth import create_key
from postgate.runtime.context import Context
from postgate.settings import Settings
from tests.dns_server import LocalDns
from tests.support import World, serve_api
from tests.workers.test_dead_letter import dead_letters


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_claim_verify_and_send_dkim_signed_mail(
    world: World, settings: Settings, dns_server: LocalDns, algorithm: str
) -> None:
    settings = settings.model_copy(
        update={"dns_resolver": dns_server.address, "dns_timeout_s": 3, "dkim_algorithm": algorithm}
    )
    world.ctx = Context.from_settings(settings)
    brand = f"{world.tenant.slug}-brand.example"
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    world.contact("anna")
    api = serve_api(settings)
    base = next(api)
    try:
        with httpx.Client(
            base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=10
        ) as http:
            claimed = http.post("/v1/domains", json={"domain": brand.upper()})
            assert claimed.status_code == 201, claimed.text
            body = claimed.json()
            assert body["domain"] == brand and body["verified"] is False
            assert body["dkim"]["algorithm"] == algorithm
            token_record, dkim_record = body["dns"]
            assert token_record["name"] == f"_postgate.{brand}"
            assert http.post("/v1/domains", json={"domain": brand}).json() == body  # same claim

            # not yet in DNS: not verified, and mail From it is refused
            early = http.post(f"/v1/domains/{brand}/verify").json()
            assert early["verified"] is False and "no TXT record" in early["last_error"]
            world.publish(world.message("early", **{"from": {"email": f"news@{brand}"}}))
            world.publish(world.message("marker"))
            world.run(world.finished("marker"))
            assert "not the tenant's verified domain" in dead_letters(world)[0][0]

            dns_server.publish(token_record["name"], "v=spf1 -all")
            dns_server.publish(token_record["name"], token_record["value"])
            dns_server.publish(dkim_record["name"], dkim_record["value"])
            dns_server.publish(brand, "v=spf1 -all")  # bulk mail needs SPF and DMARC too
            dns_server.publish(f"_dmarc.{brand}", "v=DMARC1; p=none")
            done = http.post(f"/v1/domains/{brand}/verify").json()
            assert done["verified"] is True and done["dkim_published"] is True
            assert done["preflight"]["passed"] is True
            assert done["last_error"] == ""
            assert [d["domain"] for d in http.get("/v1/domains").json()] == [brand]
            assert http.post("/v1/domains", json={"domain": "not a domain"}).status_code == 422
            assert http.post("/v1/domains/other.example/verify").status_code == 404
    finally:
        next(api, None)

    world.publish(
        world.message("signed", **{"from": {"email": f"news@mail.{brand}", "name": "Brand"}})
    )
    world.run(world.finished("signed"))
    (received,) = [
        r for r in world.sink.handler.received if f"news@mail.{brand}".encode() in r.data
    ]
    assert received.data.startswith(b"DKIM-Signature:")
    assert dkim.verify(received.data, dnsfunc=dns_server.dkim_dnsfunc)
    assert dkim_record["name"] in dns_server.queries
    parsed = email.message_from_bytes(received.data, policy=email.policy.default)
    assert f"d={brand};" in parsed["DKIM-Signature"].replace(" ", "").replace("\n", "")
    forged = received.data.replace(b"Subject: Hello Anna", b"Subject: Hello Eve!")
    assert forged != received.data and not dkim.verify(forged, dnsfunc=dns_server.dkim_dnsfunc)

    # the tenant's primary domain has no key here: its mail goes out unsigned, as before
    marker = [
        r for r in world.sink.handler.received if f"news@{world.tenant.domain}".encode() in r.data
    ]
    assert marker and not marker[0].data.startswith(b"DKIM-Signature:")


def test_verification_reports_a_dns_outage_without_recording_it(
    world: World, settings: Settings
) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # answers nothing
        silent.bind(("127.0.0.1", 0))
        settings = settings.model_copy(
            update={"dns_resolver": f"127.0.0.1:{silent.getsockname()[1]}", "dns_timeout_s": 0.5}
        )
        key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
        api = serve_api(settings)
        base = next(api)
        try:
            with httpx.Client(
                base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=10
            ) as http:
                http.post("/v1/domains", json={"domain": f"{world.tenant.slug}.example.net"})
                reply = http.post(f"/v1/domains/{world.tenant.slug}.example.net/verify")
                assert reply.status_code == 503 and "failed" in reply.json()["detail"]
                (listed,) = http.get("/v1/domains").json()
                assert listed["verified"] is False and listed["last_error"] == ""
        finally:
            next(api, None)


def test_cli_claims_lists_and_verifies(
    world: World,
    settings: Settings,
    dns_server: LocalDns,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from postgate.cli import main as cli

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DNS_RESOLVER", dns_server.address)
    monkeypatch.setenv("DKIM_ALGORITHM", "ed25519-sha256")
    cli.get_settings.cache_clear()
    try:
        domain = f"{world.tenant.slug}.example.org"
        assert cli.main(["domains", "add", domain, "--tenant", world.tenant.slug]) == 0
        claimed = json.loads(capsys.readouterr().out)
        assert cli.main(["domains", "verify", domain, "--tenant", world.tenant.slug]) == 2
        capsys.readouterr()
        for record in claimed["dns"]:
            dns_server.publish(record["name"], record["value"])
        assert cli.main(["domains", "verify", domain, "--tenant", world.tenant.slug]) == 0
        assert json.loads(capsys.readouterr().out)["verified"] is True
        assert cli.main(["domains", "list", "--tenant", world.tenant.slug]) == 0
        assert json.loads(capsys.readouterr().out)["domain"] == domain
        assert cli.main(["domains", "add", "bad domain", "--tenant", world.tenant.slug]) == 1
        assert "not a valid domain" in capsys.readouterr().err
    finally:
        cli.get_settings.cache_clear()
