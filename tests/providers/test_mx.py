"""The direct-to-MX provider over real sockets: the local DNS server answers MX and A
queries, aiosmtpd servers on 127.0.0.1 stand in for the destination hosts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import REGISTRY

from postgate.core.bounce import classify_reply
from postgate.core.outcome import Outcome, SendResult
from postgate.providers.mx import MxProvider
from postgate.sinks.smtp import _free_port
from tests.dns_server import LocalDns
from tests.providers.mx_servers import FROM, MESSAGE, MxServer, mx_settings, publish
from tests.providers.test_smtp_tls import tls_context

T = TypeVar("T")


@pytest.fixture
def servers() -> Iterator[Callable[..., MxServer]]:
    started: list[MxServer] = []

    def start(**kwargs: Any) -> MxServer:
        started.append(MxServer(**kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def errors(kind: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "postgate_provider_errors_total", {"channel": "email", "provider": "mx", "kind": kind}
        )
        or 0.0
    )


async def run_async(provider: MxProvider, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    await provider.start()
    try:
        return await work()
    finally:
        await provider.close()


def run(provider: MxProvider, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(run_async(provider, work))


Sends = Callable[[], Coroutine[Any, Any, list[SendResult]]]


def send(provider: MxProvider, *recipients: str) -> Sends:
    async def one_by_one() -> list[SendResult]:
        return [await provider.send(FROM, r, MESSAGE) for r in recipients]

    return one_by_one


def test_each_domain_goes_to_its_own_mx_and_a_refused_host_falls_to_the_next(
    dns: LocalDns, servers: Callable[..., MxServer]
) -> None:
    a_backup, b_main = servers(), servers()
    publish(dns, "a.example", (10, "mx1.a.example"), (20, "mx2.a.example"))
    publish(dns, "b.example", (5, "mx.b.example"))
    ports = {
        "mx1.a.example": _free_port(),  # nothing listens: connection refused
        "mx2.a.example": a_backup.port,
        "mx.b.example": b_main.port,
    }
    provider = MxProvider(mx_settings(dns, ports))
    refused = errors("connect")

    results = run(
        provider, send(provider, "ann@a.example", "bob@b.example", "cy@A.example", "dee@b.example")
    )

    assert [r.outcome for r in results] == [Outcome.SENT] * 4
    assert a_backup.handler.recipients() == ["ann@a.example", "cy@A.example"]
    assert b_main.handler.recipients() == ["bob@b.example", "dee@b.example"]
    assert (a_backup.handler.ehlos, b_main.handler.ehlos) == (1, 1)  # connections reused
    assert errors("connect") - refused == 1  # the refusing host was then skipped
    assert dns.typed_queries.count(("a.example", "MX")) == 1  # answers cached
    assert dns.typed_queries.count(("mx2.a.example", "A")) == 1


def test_when_no_mx_host_answers_the_send_is_deferred(
    dns: LocalDns, servers: Callable[..., MxServer]
) -> None:
    publish(dns, "dark.example", (10, "mx1.dark.example"), (10, "mx2.dark.example"))
    ports = {"mx1.dark.example": _free_port(), "mx2.dark.example": _free_port()}
    provider = MxProvider(mx_settings(dns, ports))
    refused = errors("connect")

    first, second = run(provider, send(provider, "x@dark.example", "y@dark.example"))

    assert first.outcome is Outcome.DEFERRED and first.code is None
    assert "no MX host of dark.example took it" in first.detail
    assert second.outcome is Outcome.DEFERRED and "is down" in second.detail
    assert errors("connect") - refused == 2  # each host tried once, then left alone


@pytest.mark.parametrize(
    "reply",
    ["421 4.7.0 Too many connections, slow down", "451 4.7.1 Rate limited, please retry later"],
)
def test_a_domain_that_says_slow_down_is_held_back_until_a_later_success(
    dns: LocalDns, servers: Callable[..., MxServer], reply: str
) -> None:
    slow, other = servers(), servers()
    publish(dns, "slow.example", (10, "mx.slow.example"))
    publish(dns, "other.example", (10, "mx.other.example"))
    slow.handler.script("x1@slow.example", reply)
    provider = MxProvider(
        mx_settings(
            dns,
            {"mx.slow.example": slow.port, "mx.other.example": other.port},
            backoff_base_s=1.5,
        )
    )
    backoffs = errors("backoff")

    async def work() -> tuple[list[SendResult], int, list[SendResult]]:
        during = await send(
            provider, "x1@slow.example", "x2@slow.example", "x3@slow.example", "y@other.example"
        )()
        sessions = slow.handler.ehlos
        await asyncio.sleep(1.6)
        return during, sessions, await send(provider, "x4@slow.example", "x5@slow.example")()

    during, sessions, after = run(provider, work)

    first, *held, elsewhere = during
    assert first.outcome is Outcome.DEFERRED and str(first.code) == reply[:3]
    assert [r.outcome for r in held] == [Outcome.DEFERRED] * 2
    assert all(r.code is None and "asked us to slow down" in r.detail for r in held)
    assert sessions == 1  # the held sends never connected
    assert errors("backoff") - backoffs == 2
    assert elsewhere.outcome is Outcome.SENT  # other domains are not slowed
    assert [r.outcome for r in after] == [Outcome.SENT] * 2  # the window ended; success reset
    assert "default/slow.example" not in provider.backoff  # keyed by shaping key
    assert slow.handler.recipients() == ["x4@slow.example", "x5@slow.example"]


def test_missing_domains_and_null_mx_fail_hard_and_a_domain_without_mx_uses_its_address(
    dns: LocalDns, servers: Callable[..., MxServer]
) -> None:
    bare = servers()
    dns.publish_mx("nomail.example", 0, ".")
    dns.publish_a("bare.example")  # no MX record: the domain is its own mail host
    provider = MxProvider(mx_settings(dns, {"bare.example": bare.port}))

    gone, gone_again, null, implicit = run(
        provider,
        send(
            provider, "u@nowhere.example", "v@nowhere.example", "w@nomail.example", "z@bare.example"
        ),
    )

    assert (gone.outcome, gone.code) == (Outcome.FAILED, 550) and "5.1.2" in gone.detail
    assert gone_again == gone
    assert dns.typed_queries.count(("nowhere.example", "MX")) == 1  # the failure is cached
    assert (null.outcome, null.code) == (Outcome.FAILED, 556) and "5.1.10" in null.detail
    assert classify_reply(550, gone.detail).hard and classify_reply(556, null.detail).hard
    assert implicit.outcome is Outcome.SENT and bare.handler.recipients() == ["z@bare.example"]


def test_sends_to_one_domain_share_at_most_its_connection_limit(
    dns: LocalDns, servers: Callable[..., MxServer]
) -> None:
    mx = servers()
    publish(dns, "busy.example", (10, "mx.busy.example"))
    provider = MxProvider(mx_settings(dns, {"mx.busy.example": mx.port}, connections_per_domain=2))
    recipients = [f"r{i}@busy.example" for i in range(8)]

    async def together() -> list[SendResult]:
        return list(await asyncio.gather(*(provider.send(FROM, r, MESSAGE) for r in recipients)))

    results = run(provider, together)

    assert [r.outcome for r in results] == [Outcome.SENT] * 8
    assert sorted(mx.handler.recipients()) == sorted(recipients)
    assert mx.handler.ehlos == 2


def test_starttls_is_used_when_offered(
    dns: LocalDns, servers: Callable[..., MxServer], tmp_path: Path
) -> None:
    secure, plain = servers(tls_context=tls_context(tmp_path)), servers()
    publish(dns, "secure.example", (10, "mx.secure.example"))
    publish(dns, "plain.example", (10, "mx.plain.example"))
    provider = MxProvider(
        mx_settings(dns, {"mx.secure.example": secure.port, "mx.plain.example": plain.port})
    )

    results = run(provider, send(provider, "s@secure.example", "p@plain.example"))

    assert [r.outcome for r in results] == [Outcome.SENT] * 2
    assert secure.handler.tls == [True] and plain.handler.tls == [False]


def test_an_idle_connection_the_server_closed_is_replaced(
    dns: LocalDns, servers: Callable[..., MxServer]
) -> None:
    mx = servers(timeout=0.3)  # the server hangs up on sessions idle this long
    publish(dns, "quiet.example", (10, "mx.quiet.example"))
    provider = MxProvider(mx_settings(dns, {"mx.quiet.example": mx.port}))

    async def apart() -> list[SendResult]:
        first = await provider.send(FROM, "q1@quiet.example", MESSAGE)
        await asyncio.sleep(0.8)
        return [first, await provider.send(FROM, "q2@quiet.example", MESSAGE)]

    results = run(provider, apart)

    assert [r.outcome for r in results] == [Outcome.SENT] * 2
    assert mx.handler.recipients() == ["q1@quiet.example", "q2@quiet.example"]
    assert mx.handler.ehlos == 2


def test_connections_idle_too_long_are_closed(
    dns: LocalDns, servers: Callable[..., MxServer]
) -> None:
    mx = servers()
    publish(dns, "idle.example", (10, "mx.idle.example"))
    provider = MxProvider(mx_settings(dns, {"mx.idle.example": mx.port}, idle_s=0.5))

    async def then_wait() -> int:
        await provider.send(FROM, "i@idle.example", MESSAGE)
        await asyncio.sleep(1.3)  # the reaper looks every max(1 s, MX_IDLE_S / 2)
        return mx.handler.quits

    assert run(provider, then_wait) == 1 and mx.handler.recipients() == ["i@idle.example"]


def test_a_host_that_greets_with_421_throttles_its_domain(dns: LocalDns) -> None:
    publish(dns, "busy.example", (10, "mx.busy.example"))
    greeted: list[int] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        greeted.append(1)
        writer.write(b"421 4.7.0 mx.busy.example too busy, try later\r\n")
        await writer.drain()
        writer.close()

    async def work() -> list[SendResult]:
        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        provider = MxProvider(mx_settings(dns, {"mx.busy.example": port}))
        try:
            return await run_async(provider, send(provider, "a@busy.example", "b@busy.example"))
        finally:
            server.close()

    first, second = asyncio.run(work())

    assert (first.outcome, first.code) == (Outcome.DEFERRED, 421)
    assert second.code is None and "asked us to slow down" in second.detail
    assert greeted == [1]
