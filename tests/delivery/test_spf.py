"""The SPF evaluator and the DMARC/MTA-STS/TLS-RPT judgements, against the tests' DNS
server on 127.0.0.1 (dnspython over UDP, through the preflight's own look-up class)."""

from __future__ import annotations

import ipaddress

import pytest

from postgate.core import mail_auth, spf
from postgate.providers.dns_txt import DnsLookup
from postgate.settings import Settings
from tests.dns_server import LocalDns

PLATFORM = spf.IncludeTarget("_spf.postgate.example")
IP = ipaddress.ip_address("203.0.113.7")


@pytest.fixture
def lookup(dns: LocalDns) -> DnsLookup:
    return DnsLookup(Settings(dns_resolver=dns.address, dns_timeout_s=2))


def test_an_include_of_the_platform_is_found_directly_and_through_other_includes(
    dns: LocalDns, lookup: DnsLookup
) -> None:
    dns.publish("direct.example", "v=spf1 mx include:_spf.postgate.example -all")
    dns.publish("nested.example", "v=spf1 include:_spf.esp.example ~all")
    dns.publish("_spf.esp.example", "v=spf1 ip4:198.51.100.0/24 include:_spf.postgate.example -all")
    dns.publish("_spf.postgate.example", "v=spf1 ip4:203.0.113.0/24 -all")
    dns.publish("other.example", "v=spf1 include:_spf.esp2.example -all")
    dns.publish("_spf.esp2.example", "v=spf1 ip4:198.51.100.0/24 -all")
    dns.publish_mx("direct.example", 10, "mx.direct.example")
    dns.publish_a("mx.direct.example", "192.0.2.1")

    direct = spf.check_host(lookup, "direct.example", PLATFORM)
    assert (direct.result, direct.lookups) == ("pass", 2)  # mx, then the include
    nested = spf.check_host(lookup, "nested.example", PLATFORM)
    assert nested.result == "pass" and nested.lookups == 2
    other = spf.check_host(lookup, "other.example", PLATFORM)
    assert other.result == "fail" and "-all" in other.reason
    # the same records judged for an address, as a receiver would
    assert spf.check_host(lookup, "nested.example", IP).result == "pass"
    assert spf.check_host(lookup, "direct.example", ipaddress.ip_address("192.0.2.1")).result == (
        "pass"
    )
    assert spf.check_host(lookup, "other.example", IP).result == "fail"


def test_ip_a_and_redirect_terms(dns: LocalDns, lookup: DnsLookup) -> None:
    dns.publish("ips.example", "v=spf1 ip4:203.0.113.0/28 ip6:2001:db8::/32 -all")
    dns.publish("a.example", "v=spf1 a:out.a.example/24 ?all")
    dns.publish_a("out.a.example", "203.0.113.200")
    dns.publish("redirected.example", "v=spf1 redirect=ips.example")
    assert spf.check_host(lookup, "ips.example", IP).result == "pass"
    assert spf.check_host(lookup, "ips.example", ipaddress.ip_address("2001:db8::5")).result == (
        "pass"
    )
    assert spf.check_host(lookup, "ips.example", ipaddress.ip_address("203.0.113.99")).result == (
        "fail"
    )
    assert spf.check_host(lookup, "a.example", IP).result == "pass"  # within the /24
    assert spf.check_host(lookup, "a.example", ipaddress.ip_address("192.0.2.9")).result == (
        "neutral"
    )
    redirected = spf.check_host(lookup, "redirected.example", IP)
    assert (redirected.result, redirected.lookups) == ("pass", 1)
    assert spf.check_host(lookup, "nothing.example", IP).result == "none"


def test_more_than_ten_lookups_is_a_permerror(dns: LocalDns, lookup: DnsLookup) -> None:
    for i in range(12):
        dns.publish(f"l{i}.chain.example", f"v=spf1 include:l{i + 1}.chain.example -all")
    dns.publish("l12.chain.example", "v=spf1 include:_spf.postgate.example -all")
    result = spf.check_host(lookup, "l0.chain.example", PLATFORM)
    assert result.result == "permerror" and "10 DNS look-ups" in result.reason
    # ten look-ups exactly are allowed
    dns.publish("ten.example", "v=spf1 include:l4.chain.example -all")
    ten = spf.check_host(lookup, "ten.example", PLATFORM)
    assert (ten.result, ten.lookups) == ("pass", 10)


def test_broken_records_are_permerrors(dns: LocalDns, lookup: DnsLookup) -> None:
    dns.publish("two.example", "v=spf1 -all")
    dns.publish("two.example", "v=spf1 +all")
    dns.publish("dangling.example", "v=spf1 include:missing.example -all")
    dns.publish("bad.example", "v=spf1 ip4:999.1.1.1 -all")
    for domain in ("two.example", "dangling.example", "bad.example"):
        assert spf.check_host(lookup, domain, IP).result == "permerror", domain
    dns.publish("voids.example", "v=spf1 a:v1.example a:v2.example a:v3.example -all")
    assert "void" in spf.check_host(lookup, "voids.example", IP).reason


def test_hosts_parse_and_the_suggested_record_keeps_the_existing_terms() -> None:
    assert spf.parse_host(" include:_SPF.postgate.example. ") == PLATFORM
    assert spf.parse_host("203.0.113.0/24") == ipaddress.ip_address("203.0.113.0")
    assert spf.parse_host("ip6:2001:db8::1") == ipaddress.ip_address("2001:db8::1")
    with pytest.raises(ValueError, match="neither"):
        spf.parse_host("mail.example")
    assert spf.suggested_record(None, [PLATFORM, IP]) == (
        "v=spf1 include:_spf.postgate.example ip4:203.0.113.7 -all"
    )
    assert spf.suggested_record("v=spf1 mx ~all", [PLATFORM]) == (
        "v=spf1 mx include:_spf.postgate.example ~all"
    )
    kept = "v=spf1 include:_spf.postgate.example -all"
    assert spf.suggested_record(kept, [PLATFORM]) == kept


def test_dmarc_tree_walk_alignment_and_reported_records() -> None:
    assert mail_auth.dmarc_candidates("news.brand.example") == [
        "_dmarc.news.brand.example",
        "_dmarc.brand.example",
    ]
    good = mail_auth.check_dmarc("_dmarc.brand.example", "v=DMARC1; p=reject; adkim=s", "brand")
    assert good.passed and "adkim=s" in good.reason
    assert mail_auth.dmarc_adkim(good.as_json()) == "s"
    assert not mail_auth.check_dmarc("_dmarc.x", "v=DMARC1; p=maybe", "x").passed
    assert not mail_auth.check_dmarc(None, None, "x").passed
    assert mail_auth.aligned("news.brand.example", "brand.example", "r")
    assert not mail_auth.aligned("news.brand.example", "brand.example", "s")
    assert mail_auth.aligned("brand.example", "brand.example", "s")
    assert mail_auth.check_mta_sts(["v=STSv1; id=20261201"], "b").passed
    assert not mail_auth.check_mta_sts(["v=STSv1;"], "b").passed
    assert mail_auth.check_tls_rpt(["v=TLSRPTv1; rua=mailto:t@b.example"], "b").passed
    assert not mail_auth.check_tls_rpt(["v=spf1 -all"], "b").passed
