"""DANE in direct-to-MX delivery over real sockets: the local DNS server publishes MX, A
and TLSA records and, for the names a test marks secure, sets the AD bit as a validating
resolver would; aiosmtpd servers with STARTTLS (a self-signed certificate, or one issued
by the test's own CA with its chain) and one without stand in for the MX hosts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from postgate.core.outcome import Outcome, SendResult
from postgate.providers.mx import MxProvider
from tests.dns_server import LocalDns
from tests.providers.dane_certs import Issued, issue, tlsa_data
from tests.providers.mx_servers import FROM, MESSAGE, MxServer, mx_settings, publish


class World:
    def __init__(self, dns: LocalDns, tmp: Path) -> None:
        self.dns = dns
        self.cert = issue("mx.self.example")  # self-signed: DANE-EE
        self.ca = issue("postgate test CA", ca=True)
        self.issued = issue("mx.ta.example", "named.example", issuer=self.ca)
        self.tls = MxServer(tls_context=self.cert.context(tmp))
        self.ta = MxServer(tls_context=self.issued.context(tmp))
        self.plain = MxServer()  # offers no STARTTLS
        self.ports: dict[str, int] = {}

    def route(
        self,
        domain: str,
        *hosts: tuple[int, str, MxServer],
        secure: bool = True,
        secure_hosts: bool = True,
    ) -> None:
        """MX and A records for ``domain``, the hosts reaching ``server``; the MX and the
        hosts' addresses answered as secure or not."""
        publish(self.dns, domain, *((p, h) for p, h, _ in hosts))
        for _, host, server in hosts:
            self.ports[host] = server.port
            if secure_hosts:
                self.dns.mark_secure(host)
        if secure:
            self.dns.mark_secure(domain)

    def tlsa(self, host: str, *records: tuple[int, int, int, bytes], secure: bool = True) -> str:
        name = f"_{self.ports[host]}._tcp.{host}"
        for record in records:
            self.dns.publish_tlsa(name, *record)
        if secure:
            self.dns.mark_secure(name)
        return name

    def settings(self, **mx: Any) -> Any:
        return mx_settings(self.dns, self.ports, **mx)

    def stop(self) -> None:
        for server in (self.tls, self.ta, self.plain):
            server.stop()


@pytest.fixture
def world(dns: LocalDns, tmp_path: Path) -> Iterator[World]:
    made = World(dns, tmp_path)
    try:
        yield made
    finally:
        made.stop()


def ee(cert: Issued, selector: int = 1, mtype: int = 1) -> tuple[int, int, int, bytes]:
    return (3, selector, mtype, tlsa_data(cert, selector, mtype))


WRONG = (3, 1, 1, bytes(32))


def dane_count(event: str) -> float:
    return REGISTRY.get_sample_value("postgate_dane_total", {"event": event}) or 0.0


def deliver(settings: Any, *recipients: str, between: Any = None) -> list[SendResult]:
    provider = MxProvider(settings)

    async def go() -> list[SendResult]:
        await provider.start()
        results = []
        try:
            for recipient in recipients:
                results.append(await provider.send(FROM, recipient, MESSAGE))
                if between is not None:
                    between(provider)
            return results
        finally:
            await provider.close()

    return asyncio.run(go())


def test_matching_dane_ee_records_send_over_tls(world: World) -> None:
    domains = {"spki.example": (1, 1), "cert.example": (0, 1), "sha512.example": (1, 2)}
    for domain, (selector, mtype) in domains.items():
        world.route(domain, (10, f"mx.{domain}", world.tls))
        world.tlsa(f"mx.{domain}", WRONG, ee(world.cert, selector, mtype))
    before = dane_count("authenticated")

    results = deliver(world.settings(), *(f"a@{d}" for d in domains), "b@spki.example")

    assert [r.outcome for r in results] == [Outcome.SENT] * 4
    assert world.tls.handler.recipients() == [*(f"a@{d}" for d in domains), "b@spki.example"]
    assert world.tls.handler.tls == [True] * 4
    # three sessions: the second message to spki.example reused its authenticated one
    assert world.tls.handler.ehlos == 6
    assert dane_count("authenticated") == before + 3


def test_a_mismatch_defers_and_the_next_host_is_tried(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.route("bad.example", (10, "mx.bad.example", world.tls))
    world.tlsa("mx.bad.example", WRONG)
    world.route(
        "two.example", (10, "mx1.two.example", world.tls), (20, "mx2.two.example", world.tls)
    )
    world.tlsa("mx1.two.example", WRONG)
    world.tlsa("mx2.two.example", ee(world.cert))
    before = dane_count("mismatch")

    bad, two = deliver(world.settings(), "a@bad.example", "b@two.example")

    assert bad.outcome is Outcome.DEFERRED and bad.code is None
    assert "DANE" in bad.detail and "not sending in clear" in bad.detail
    assert two.outcome is Outcome.SENT
    assert world.tls.handler.recipients() == ["b@two.example"]  # nothing for bad.example
    assert world.tls.handler.tls == [True]
    assert dane_count("mismatch") == before + 2
    assert "DANE: MX mx.bad.example of bad.example" in caplog.text


def test_no_starttls_under_dane_defers(world: World) -> None:
    world.route("plain.example", (10, "mx.plain.example", world.plain))
    world.tlsa("mx.plain.example", ee(world.cert))
    before = dane_count("no_starttls")

    (result,) = deliver(world.settings(), "a@plain.example")

    assert result.outcome is Outcome.DEFERRED and "no STARTTLS offered" in result.detail
    assert world.plain.handler.recipients() == []
    assert dane_count("no_starttls") == before + 1


def test_records_in_answers_that_are_not_secure_mean_opportunistic_tls(world: World) -> None:
    world.route("open.example", (10, "mx.open.example", world.tls), secure=False)
    world.tlsa("mx.open.example", WRONG)
    world.route("clear.example", (10, "mx.clear.example", world.plain))
    world.tlsa("mx.clear.example", ee(world.cert), secure=False)

    results = deliver(world.settings(), "a@open.example", "b@clear.example")

    assert [r.outcome for r in results] == [Outcome.SENT] * 2
    assert world.tls.handler.tls == [True] and world.plain.handler.tls == [False]


def test_an_insecure_host_address_means_no_tlsa_look_up(world: World) -> None:
    world.route("half.example", (10, "mx.half.example", world.tls), secure_hosts=False)
    name = world.tlsa("mx.half.example", WRONG)

    (result,) = deliver(world.settings(), "a@half.example")

    assert result.outcome is Outcome.SENT and world.tls.handler.tls == [True]
    assert (name, "TLSA") not in world.dns.typed_queries


def test_a_failed_tlsa_look_up_on_a_secure_host_skips_that_host(world: World) -> None:
    world.route(
        "flaky.example",
        (10, "mx1.flaky.example", world.plain),
        (20, "mx2.flaky.example", world.tls),
    )
    world.dns.servfail.add(world.tlsa("mx1.flaky.example", ee(world.cert)))
    before = dane_count("tlsa_failed")

    (result,) = deliver(world.settings(), "a@flaky.example")

    assert result.outcome is Outcome.SENT
    assert world.plain.handler.recipients() == []
    assert world.tls.handler.recipients() == ["a@flaky.example"]  # mx2: no TLSA, as before
    assert dane_count("tlsa_failed") == before + 1


def test_dane_ta_checks_the_chain_and_the_name(world: World) -> None:
    anchor = (2, 0, 1, tlsa_data(world.ca, 0, 1))
    world.route("ta.example", (10, "mx.ta.example", world.ta))
    world.tlsa("mx.ta.example", anchor)
    world.route("named.example", (10, "mx.hidden.example", world.ta))  # the domain's name
    world.tlsa("mx.hidden.example", anchor)
    world.route("other.example", (10, "mx.other.example", world.ta))  # in no name
    world.tlsa("mx.other.example", anchor)

    ta, named, other = deliver(
        world.settings(), "a@ta.example", "b@named.example", "c@other.example"
    )

    assert ta.outcome is named.outcome is Outcome.SENT
    assert other.outcome is Outcome.DEFERRED and "not valid for mx.other.example" in other.detail
    assert world.ta.handler.recipients() == ["a@ta.example", "b@named.example"]
    assert world.ta.handler.tls == [True, True]


def test_only_unusable_records_still_require_tls(world: World) -> None:
    pkix = (1, 1, 1, bytes(32))  # PKIX-EE: unusable for SMTP
    world.route("pkix.example", (10, "mx.pkix.example", world.tls))
    world.tlsa("mx.pkix.example", pkix)
    world.route("pkixplain.example", (10, "mx.pkixplain.example", world.plain))
    world.tlsa("mx.pkixplain.example", pkix)
    before = dane_count("unusable")

    tls, plain = deliver(world.settings(), "a@pkix.example", "b@pkixplain.example")

    assert tls.outcome is Outcome.SENT and world.tls.handler.tls == [True]
    assert plain.outcome is Outcome.DEFERRED and "no STARTTLS" in plain.detail
    assert world.plain.handler.recipients() == []
    assert dane_count("unusable") == before + 2


def test_an_idle_opportunistic_connection_is_not_reused_under_dane(world: World) -> None:
    world.route("later.example", (10, "mx.later.example", world.tls))
    name = world.tlsa("mx.later.example", WRONG, secure=False)

    def dnssec_arrives(provider: MxProvider) -> None:
        world.dns.mark_secure(name)
        provider.routes.cache.clear()

    first, second = deliver(
        world.settings(), "a@later.example", "b@later.example", between=dnssec_arrives
    )

    assert first.outcome is Outcome.SENT  # opportunistic: the connection stays idle
    assert second.outcome is Outcome.DEFERRED and "DANE" in second.detail
    assert world.tls.handler.recipients() == ["a@later.example"]


def test_dane_can_be_switched_off(world: World) -> None:
    world.route("off.example", (10, "mx.off.example", world.plain))
    name = world.tlsa("mx.off.example", WRONG)

    (result,) = deliver(world.settings().with_provider("dane", enabled=False), "a@off.example")

    assert result.outcome is Outcome.SENT and world.plain.handler.tls == [False]
    assert (name, "TLSA") not in world.dns.typed_queries


def test_a_dane_host_that_the_mta_sts_policy_does_not_name_is_still_used(
    world: World, tmp_path: Path
) -> None:
    """RFC 8461 section 2: DANE comes first. An MX authenticated by DANE is tried although
    the domain's enforced MTA-STS policy does not name it; an MX without DANE that the
    policy does not name stays skipped."""
    from tests.providers.test_mta_sts import Ca, PolicyServer, policy

    ca = Ca(tmp_path)
    policies = PolicyServer(ca.server_context("mta-sts.both.example", "mta-sts.sts.example"))
    try:
        for domain in ("both.example", "sts.example"):
            world.dns.publish(f"_mta-sts.{domain}", "v=STSv1; id=1")
            policies.policies[domain] = policy("enforce", "mx.named.example")
        world.route("both.example", (10, "mx.both.example", world.tls))
        world.tlsa("mx.both.example", ee(world.cert))
        world.route("sts.example", (10, "mx.sts.example", world.tls), secure=False)
        settings = world.settings().with_provider(
            "mta_sts", ca_file=str(ca.file), policy_address=f"127.0.0.1:{policies.port}"
        )

        dane_first, sts_only = deliver(settings, "a@both.example", "b@sts.example")
        (without_dane,) = deliver(settings.with_provider("dane", enabled=False), "c@both.example")
    finally:
        policies.close()

    assert dane_first.outcome is Outcome.SENT
    assert world.tls.handler.recipients() == ["a@both.example"]
    assert world.tls.handler.tls == [True]
    assert sts_only.outcome is Outcome.DEFERRED and "in its policy" in sts_only.detail
    assert without_dane.outcome is Outcome.DEFERRED and "in its policy" in without_dane.detail


def test_tlsa_records_are_asked_at_the_cname_expanded_name_first(world: World) -> None:
    """RFC 7672 section 2.2.2: an MX host that is a secure CNAME alias has its TLSA records
    looked up at the expanded name first (that name is the SNI and a reference identifier
    for DANE-TA), and at the MX name itself when the expanded name has none."""
    anchor = (2, 0, 1, tlsa_data(world.ca, 0, 1))
    for domain, alias, target, server in (
        ("alias.example", "mx.alias.example", "mx.ta.example", world.ta),
        ("fallback.example", "mx.fallback.example", "mx.elsewhere.example", world.tls),
    ):
        world.dns.publish_mx(domain, 10, alias)
        world.dns.publish_cname(alias, target)
        world.dns.publish_a(target)
        world.dns.mark_secure(domain, alias, target)
        world.ports[alias] = server.port
    expanded = world.tlsa("mx.alias.example", anchor).replace("mx.alias", "mx.ta")
    world.dns.publish_tlsa(expanded, *anchor)
    world.dns.mark_secure(expanded)
    world.tlsa("mx.alias.example", WRONG)  # at the alias: would not match, never used
    world.tlsa("mx.fallback.example", ee(world.cert))  # only at the MX name
    before = dane_count("authenticated")

    aliased, fallback = deliver(world.settings(), "a@alias.example", "b@fallback.example")

    assert aliased.outcome is Outcome.SENT, aliased.detail
    assert fallback.outcome is Outcome.SENT, fallback.detail
    assert world.ta.handler.recipients() == ["a@alias.example"]
    assert world.tls.handler.recipients() == ["b@fallback.example"]
    assert world.ta.handler.tls == world.tls.handler.tls == [True]
    assert dane_count("authenticated") == before + 2
    tlsa_asked = [n for n, kind in world.dns.typed_queries if kind == "TLSA"]
    port = world.tls.port
    assert tlsa_asked.index(f"_{port}._tcp.mx.elsewhere.example") < tlsa_asked.index(
        f"_{port}._tcp.mx.fallback.example"
    )
    assert f"_{world.ta.port}._tcp.mx.alias.example" not in tlsa_asked
