"""MX and address look-ups against the local DNS server: the TTL floor and ceiling, one
query for many concurrent askers, and temporary failures that are not cached."""

from __future__ import annotations

import asyncio
import socket

from postgate.core.outcome import Outcome
from postgate.providers.mx_dns import DnsFailure, MxRoutes
from postgate.providers.mx_policy import MxHost
from postgate.settings import Settings
from tests.dns_server import LocalDns
from tests.providers.mx_servers import mx_settings, publish


def test_answers_are_kept_for_their_ttl_within_the_floor_and_ceiling(dns: LocalDns) -> None:
    publish(dns, "ttl.example", (10, "mx.ttl.example"))
    dns.ttl = 0  # a zero TTL would mean one query per message
    routes = MxRoutes(mx_settings(dns, {}, dns_ttl_min_s=0.3, dns_ttl_max_s=0.3))

    async def ask() -> list[list[MxHost]]:
        answers = [await routes.mx("ttl.example"), await routes.mx("ttl.example")]
        await asyncio.sleep(0.4)
        return [*answers, await routes.mx("ttl.example")]

    answers = asyncio.run(ask())

    assert answers == [[MxHost(10, "mx.ttl.example")]] * 3
    assert dns.typed_queries.count(("ttl.example", "MX")) == 2


def test_concurrent_look_ups_of_one_name_share_a_query(dns: LocalDns) -> None:
    publish(dns, "many.example", (10, "mx1.many.example"), (20, "mx2.many.example"))
    dns.publish_a("mx1.many.example", "192.0.2.1")
    routes = MxRoutes(mx_settings(dns, {}))

    async def ask() -> tuple[list[list[MxHost]], list[list[str]]]:
        hosts = await asyncio.gather(*(routes.mx("many.example") for _ in range(10)))
        addresses = await asyncio.gather(*(routes.addresses("mx1.many.example") for _ in range(10)))
        return list(hosts), list(addresses)

    hosts, addresses = asyncio.run(ask())

    expected = [MxHost(10, "mx1.many.example"), MxHost(20, "mx2.many.example")]
    assert [sorted(h, key=lambda m: m.preference) for h in hosts] == [expected] * 10
    assert [sorted(a) for a in addresses] == [["127.0.0.1", "192.0.2.1"]] * 10
    assert routes.queries == 2
    assert dns.typed_queries.count(("many.example", "MX")) == 1


def test_an_unanswered_look_up_is_temporary_and_asked_again() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # never answers
        silent.bind(("127.0.0.1", 0))
        routes = MxRoutes(
            Settings(dns_resolver=f"127.0.0.1:{silent.getsockname()[1]}", dns_timeout_s=0.3)
        )

        async def ask() -> list[DnsFailure]:
            failures = []
            for _ in range(2):
                try:
                    await routes.mx("slow.example")
                except DnsFailure as failure:
                    failures.append(failure)
            return failures

        failures = asyncio.run(ask())

    assert [f.result.outcome for f in failures] == [Outcome.DEFERRED] * 2
    assert "MX look-up of slow.example failed" in failures[0].result.detail
    assert routes.queries == 2  # not cached


def test_answers_note_whether_they_were_dnssec_secure(dns: LocalDns) -> None:
    publish(dns, "signed.example", (10, "mx.signed.example"))
    dns.publish_a("bare.example", "192.0.2.7")  # no MX: its own mail host
    dns.mark_secure("signed.example", "bare.example")
    routes = MxRoutes(mx_settings(dns, {}))

    async def ask() -> list[tuple[object, bool]]:
        return [
            tuple(await routes.mx_found("signed.example")),
            tuple(await routes.addresses_found("mx.signed.example")),  # not marked
            tuple(await routes.mx_found("bare.example")),  # a secure "no MX"
            tuple(await routes.addresses_found("bare.example")),
        ]

    assert asyncio.run(ask()) == [
        ([MxHost(10, "mx.signed.example")], True),
        (["127.0.0.1"], False),
        ([MxHost(0, "bare.example")], True),
        (["192.0.2.7"], True),
    ]
