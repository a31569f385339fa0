"""Traffic shaping over real sockets: the local DNS server puts several domains on one
provider group (Gmail, Googlemail and a Workspace domain all on Google's MX hosts), an
aiosmtpd MX host counts the sessions open at once and stamps each message's arrival;
shared state in this process or in the Redis at 127.0.0.1:6379 (skipped without one)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from prometheus_client import REGISTRY

from postgate.core.outcome import Outcome, SendResult
from postgate.core.shaping import Action
from postgate.providers.base import SENDING_TENANT
from postgate.providers.mx import MxProvider
from postgate.providers.throttle import LocalThrottle, Throttle
from postgate.providers.throttle_redis import RedisThrottle
from postgate.settings import Settings
from postgate.sinks.smtp import _free_port
from tests.dns_server import LocalDns
from tests.providers.mx_servers import FROM, MESSAGE, mx_settings, publish
from tests.providers.shaping_servers import CountingMx, shaping_file

T = TypeVar("T")
REDIS = "redis://127.0.0.1:6379/0"
GOOGLE_HOSTS = {
    "gmail.com": ["gmail-smtp-in.l.google.com", "alt1.gmail-smtp-in.l.google.com"],
    "googlemail.com": ["gmail-smtp-in.l.google.com"],
    "corp.example": ["aspmx.l.google.com", "alt1.aspmx.l.google.com"],  # Workspace
}
RATE_LIMITED = (
    "421 4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail "
    "originating from your IP address. To protect our users from spam, mail sent from your "
    "IP address has been temporarily rate limited."
)


def redis_running() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=0.5).ping())
    except redis.exceptions.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_running(), reason="no Redis at 127.0.0.1:6379")


@pytest.fixture
def google(dns: LocalDns) -> Iterator[CountingMx]:
    """One MX host answering for every Google MX name the three domains publish."""
    mx = CountingMx()
    for domain, hosts in GOOGLE_HOSTS.items():
        publish(dns, domain, *((5 + 5 * i, h) for i, h in enumerate(hosts)))
    yield mx
    mx.stop()


def settings_for(dns: LocalDns, mx: CountingMx, path: Path, **values: Any) -> Settings:
    ports = {h: mx.port for hosts in GOOGLE_HOSTS.values() for h in hosts}
    return mx_settings(dns, ports).model_copy(update={"shaping_file": str(path), **values})


def addresses(count: int, tag: str = "r") -> list[str]:
    domains = list(GOOGLE_HOSTS)
    return [f"{tag}{i}@{domains[i % len(domains)]}" for i in range(count)]


async def running(providers: list[MxProvider], work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    for provider in providers:
        await provider.start()
    try:
        return await work()
    finally:
        for provider in providers:
            await provider.close()


async def together(provider: MxProvider, recipients: list[str]) -> list[SendResult]:
    return list(await asyncio.gather(*(provider.send(FROM, r, MESSAGE) for r in recipients)))


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_domains_on_one_provider_group_share_its_connections_and_rate(
    dns: LocalDns, google: CountingMx, tmp_path: Path
) -> None:
    path = shaping_file(tmp_path, "connections = 2\nmessages_per_connection = 4\nper_minute = 1200")
    provider = MxProvider(settings_for(dns, google, path))
    recipients = addresses(45)

    async def work() -> tuple[list[SendResult], float]:
        started = time.monotonic()
        results = await together(provider, recipients)
        return results, time.monotonic() - started

    results, elapsed = asyncio.run(running([provider], work))

    assert [r.outcome for r in results] == [Outcome.SENT] * 45
    assert sorted(google.handler.recipients()) == sorted(recipients)
    assert google.sessions.most <= 2  # all three domains count against one limit of 2
    assert google.sessions.total >= 45 / 4  # a connection carries at most 4 messages
    assert google.handler.most_in(1.0) <= 22  # 20 a second (1200 a minute), all domains
    assert elapsed >= 44 / 20 - 0.1


def test_a_default_domain_is_shaped_by_itself_and_a_google_one_by_its_group(
    dns: LocalDns, google: CountingMx, tmp_path: Path
) -> None:
    other = CountingMx()
    publish(dns, "shop.example", (10, "mx.shop.example"))
    settings = settings_for(dns, google, shaping_file(tmp_path, "connections = 3"))
    settings = settings.with_provider(
        "mx",
        port_overrides={
            **settings.providers["mx"]["port_overrides"],
            "mx.shop.example": other.port,
        },
    )
    provider = MxProvider(settings)

    async def work() -> list[str]:
        records = [await provider.routes.mx(d) for d in [*GOOGLE_HOSTS, "shop.example"]]
        return [
            provider.shaper.place(d, r).key
            for d, r in zip([*GOOGLE_HOSTS, "shop.example"], records, strict=True)
        ]

    try:
        keys = asyncio.run(running([provider], work))
    finally:
        other.stop()

    assert keys == ["google", "google", "google", "default/shop.example"]


async def as_tenant(
    tenant: str, provider: MxProvider, recipients: list[str]
) -> tuple[list[SendResult], float]:
    SENDING_TENANT.set(tenant)  # in this task only, as the sender does around each send
    started = time.monotonic()
    results = await together(provider, recipients)
    return results, time.monotonic() - started


def test_one_tenant_takes_at_most_its_share_of_the_group_rate(
    dns: LocalDns, google: CountingMx, tmp_path: Path
) -> None:
    path = shaping_file(tmp_path, "connections = 4\nper_minute = 1200\ntenant_share = 0.5")
    provider = MxProvider(settings_for(dns, google, path))

    async def work() -> tuple[float, float, float]:
        _, alone = await as_tenant("acme", provider, addresses(20, "a"))
        first, second = await asyncio.gather(
            as_tenant("acme", provider, addresses(16, "b")),
            as_tenant("globex", provider, addresses(16, "c")),
        )
        return alone, first[1], second[1]

    alone, acme, globex = asyncio.run(running([provider], work))

    assert alone >= 19 / 10 - 0.1  # 10 a second: half the group's 20
    # two tenants at 10 a second each: 1.5 s (one holding up the other: 3 s)
    assert acme < 2.5 and globex < 2.5
    assert len(google.handler.recipients()) == 52


def test_microsofts_550_5_7_515_suspends_only_that_tenant_on_the_group(
    dns: LocalDns, tmp_path: Path
) -> None:
    mx = CountingMx()
    publish(dns, "outlook.example", (10, "outlook-example.mail.protection.outlook.com"))
    path = tmp_path / "shaping.toml"
    path.write_text(
        '[groups.microsoft]\nmx = ["*.protection.outlook.com"]\n[groups.default]\n'
        '[[rules]]\nname = "microsoft-auth"\ncode = 550\ntext = "5\\\\.7\\\\.515"\n'
        'action = "suspend_tenant"\nminutes = 60\n',
        encoding="utf-8",
    )
    mx.handler.script(
        "x@outlook.example",
        "550 5.7.515 Access denied, sending domain acme.example doesn't meet the required "
        "authentication level.",
    )
    settings = mx_settings(
        dns, {"outlook-example.mail.protection.outlook.com": mx.port}
    ).model_copy(update={"shaping_file": str(path)})
    provider = MxProvider(settings)

    async def work() -> tuple[list[SendResult], list[SendResult], list[Any]]:
        refused, _ = await as_tenant("acme", provider, ["x@outlook.example"])
        held, _ = await as_tenant("acme", provider, ["y@outlook.example"])
        other, _ = await as_tenant("globex", provider, ["z@outlook.example"])
        return refused + held, other, await provider.shaper.active()

    try:
        acme, globex, active = asyncio.run(running([provider], work))
    finally:
        mx.stop()

    assert [(r.outcome, r.code) for r in acme] == [(Outcome.FAILED, 550), (Outcome.DEFERRED, None)]
    assert "this tenant is suspended on provider group microsoft" in acme[1].detail
    assert acme[1].retry_after is not None and acme[1].retry_after > 3500
    assert [r.outcome for r in globex] == [Outcome.SENT]
    assert mx.handler.recipients() == ["z@outlook.example"]
    assert [(a.key, a.action, a.tenant) for a in active] == [
        ("microsoft", Action.SUSPEND_TENANT, "acme")
    ]


@pytest.mark.parametrize("store", ["local", pytest.param("redis", marks=needs_redis)])
def test_a_scripted_421_4_7_28_slows_the_group_for_every_sender_at_once(
    dns: LocalDns, google: CountingMx, tmp_path: Path, store: str
) -> None:
    path = shaping_file(tmp_path, "connections = 4\nper_minute = 1200")
    prefix = f"shaping-test-{uuid.uuid4().hex}"
    shared = LocalThrottle()

    def throttle() -> Throttle:
        return shared if store == "local" else RedisThrottle(REDIS, prefix)

    one, two = (MxProvider(settings_for(dns, google, path), throttle=throttle()) for _ in range(2))
    google.handler.script("first@gmail.com", RATE_LIMITED)
    before = counted(
        "postgate_shaping_actions_total", group="google", rule="gmail-rate-limit", action="slow"
    )

    async def work() -> tuple[float, SendResult, float, list[Any], SendResult]:
        started = time.monotonic()
        assert {r.outcome for r in await together(two, addresses(20, "pre"))} == {Outcome.SENT}
        unslowed = time.monotonic() - started
        refused = await one.send(FROM, "first@gmail.com", MESSAGE)
        started = time.monotonic()
        assert {r.outcome for r in await together(two, addresses(20, "post"))} == {Outcome.SENT}
        slowed = time.monotonic() - started
        return (
            unslowed,
            refused,
            slowed,
            await two.shaper.active(),
            await one.send(FROM, "again@corp.example", MESSAGE),
        )

    unslowed, refused, slowed, active, again = asyncio.run(running([one, two], work))

    assert (refused.outcome, refused.code) == (Outcome.DEFERRED, 421)
    # 20 at 10 a second: the other sender was slowed at once, from 20 at 20 a second (the
    # pace sets only lower bounds: a busy machine stretches both runs, never shortens them)
    assert slowed >= 1.8 and unslowed < slowed
    assert [(a.key, a.action, a.rule, a.factor) for a in active] == [
        ("google", Action.SLOW, "gmail-rate-limit", 0.5)
    ]
    assert 55 < active[0].until - time.time() <= 60  # one minute, then it lapses
    assert again.outcome is Outcome.SENT  # the rule's slow-down, not the domain backoff
    assert (
        counted(
            "postgate_shaping_actions_total",
            group="google",
            rule="gmail-rate-limit",
            action="slow",
        )
        - before
        == 1
    )


@needs_redis
def test_two_sender_processes_together_keep_the_group_connection_and_rate_limits(
    dns: LocalDns, google: CountingMx, tmp_path: Path
) -> None:
    path = shaping_file(tmp_path, "connections = 2\nmessages_per_connection = 5\nper_minute = 1200")
    ports = {h: google.port for hosts in GOOGLE_HOSTS.values() for h in hosts}
    env = os.environ | {
        "REDIS_URL": REDIS,
        "QUEUE_PREFIX": f"shaping-test-{uuid.uuid4().hex}",
        "SHAPING_FILE": str(path),
        "DNS_RESOLVER": dns.address,
        "DNS_TIMEOUT_S": "3",
        "HELO_NAME": "out.postgate.test",
        "MX_PORT_OVERRIDES": json.dumps(ports),
        "MX_TIMEOUT_S": "5",
    }
    start = time.time() + 4  # both are up and resolving by then
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.providers.shaping_sender",
                str(start),
                tenant,
                *addresses(40, tenant),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for tenant in ("acme", "globex")
    ]
    outputs = [p.communicate(timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    counts = [json.loads(out) for out, _ in outputs]
    sent = sum(c.get("sent", 0) for c in counts)
    assert all(c.get("failed", 0) == 0 for c in counts)
    assert sum(c.get("deferred", 0) for c in counts) + sent == 80
    assert len(google.handler.recipients()) == sent >= 70
    assert google.sessions.most <= 2  # both processes together: the group's limit
    assert google.handler.most_in(1.0) <= 22  # 20 a second between them
    stamps = sorted(google.handler.arrived)
    assert stamps[-1] - stamps[0] >= (sent - 1) / 20 - 0.1


def test_with_redis_unreachable_a_send_is_deferred_and_nothing_goes_out(
    dns: LocalDns, google: CountingMx, tmp_path: Path
) -> None:
    path = shaping_file(tmp_path, "connections = 2\nper_minute = 1200")
    settings = settings_for(dns, google, path, redis_url=f"redis://127.0.0.1:{_free_port()}/0")
    provider = MxProvider(settings)
    before = counted("postgate_shaping_deferred_total", group="google", reason="unavailable")

    results = asyncio.run(running([provider], lambda: together(provider, addresses(3))))

    assert [r.outcome for r in results] == [Outcome.DEFERRED] * 3
    assert all(r.retry_after is not None and r.retry_after >= 30 for r in results)
    assert all("Redis unreachable" in r.detail for r in results)
    assert google.handler.recipients() == [] and google.sessions.total == 0
    assert (
        counted("postgate_shaping_deferred_total", group="google", reason="unavailable") - (before)
        == 3
    )


@pytest.mark.parametrize("store", ["local", pytest.param("redis", marks=needs_redis)])
def test_a_421_no_rule_matches_holds_the_domain_back_for_every_sender(
    dns: LocalDns, tmp_path: Path, store: str
) -> None:
    mx = CountingMx()
    publish(dns, "slow.example", (10, "mx.slow.example"))
    mx.handler.script("x1@slow.example", "451 4.7.1 Rate limited, please retry later")
    settings = mx_settings(dns, {"mx.slow.example": mx.port}, backoff_base_s=30).model_copy(
        update={"shaping_file": str(shaping_file(tmp_path, ""))}
    )
    prefix = f"shaping-test-{uuid.uuid4().hex}"
    shared = LocalThrottle()
    one, two = (
        MxProvider(
            settings,
            throttle=shared if store == "local" else RedisThrottle(REDIS, prefix),
        )
        for _ in range(2)
    )

    async def work() -> tuple[SendResult, SendResult, list[Any]]:
        first = await one.send(FROM, "x1@slow.example", MESSAGE)
        return first, await two.send(FROM, "x2@slow.example", MESSAGE), await two.shaper.active()

    try:
        first, other, active = asyncio.run(running([one, two], work))
    finally:
        mx.stop()

    assert (first.outcome, first.code) == (Outcome.DEFERRED, 451)
    assert other.outcome is Outcome.DEFERRED and other.code is None
    assert "slow.example (no provider group) is suspended" in other.detail
    assert other.retry_after is not None and 29 < other.retry_after <= 40  # + max_wait_s jitter
    assert mx.sessions.total == 1  # the other sender did not even connect
    assert [(a.key, a.action, a.rule) for a in active] == [
        ("default/slow.example", Action.SUSPEND, "backoff")
    ]


@pytest.mark.parametrize("store", ["local", pytest.param("redis", marks=needs_redis)])
def test_the_backoff_doubles_by_every_senders_strikes_and_a_success_starts_it_over(
    dns: LocalDns, tmp_path: Path, store: str
) -> None:
    mx = CountingMx()
    publish(dns, "slow.example", (10, "mx.slow.example"))
    limited = "451 4.7.1 Rate limited, please retry later"
    mx.handler.script("x1@slow.example", limited)
    mx.handler.script("x2@slow.example", limited, limited)
    settings = mx_settings(
        dns, {"mx.slow.example": mx.port}, backoff_base_s=1.0, backoff_max_s=30
    ).model_copy(update={"shaping_file": str(shaping_file(tmp_path, ""))})
    shared = LocalThrottle()
    prefix = f"shaping-test-{uuid.uuid4().hex}"
    one, two = (
        MxProvider(
            settings,
            throttle=shared if store == "local" else RedisThrottle(REDIS, prefix),
        )
        for _ in range(2)
    )
    key = "default/slow.example"

    async def suspended_for(provider: MxProvider) -> float:
        held = [a for a in await provider.shaper.active() if a.key == key]
        return held[0].until - time.time() if held else 0.0

    async def work() -> list[Any]:
        seen: list[Any] = []
        first = await one.send(FROM, "x1@slow.example", MESSAGE)  # strike 1: 1 s
        seen.append((first.code, one.backoff[key].strikes, await suspended_for(two)))
        await asyncio.sleep(1.1)  # the window has passed
        second = await two.send(FROM, "x2@slow.example", MESSAGE)  # strike 2, by the other
        seen.append((second.code, two.backoff[key].strikes, await suspended_for(one)))
        await asyncio.sleep(2.1)
        fine = await one.send(FROM, "ok@slow.example", MESSAGE)  # a success: starts over
        seen.append((fine.outcome, key in one.backoff))
        third = await two.send(FROM, "x2@slow.example", MESSAGE)  # strike 1 again
        seen.append((third.code, two.backoff[key].strikes, await suspended_for(one)))
        return seen

    try:
        seen = asyncio.run(running([one, two], work))
    finally:
        mx.stop()

    (c1, s1, w1), (c2, s2, w2), (ok, kept), (c3, s3, w3) = seen
    assert (c1, s1, c2, s2, c3, s3) == (451, 1, 451, 2, 451, 1)
    assert 0.5 < w1 <= 1.0  # the first window, as every sender sees it
    assert 1.5 < w2 <= 2.0  # twice as long though this sender had never been throttled
    assert (ok, kept) == (Outcome.SENT, False)
    assert 0.5 < w3 <= 1.0  # the success started the count over for every sender


KILLED_SENDER = """
import asyncio, sys, time
from postgate.providers.throttle_redis import RedisThrottle

async def main() -> None:
    throttle = RedisThrottle(sys.argv[1], sys.argv[2])
    for _ in range(2):
        assert await throttle.lease("google", 2, 1.5, "killed")
    print("leased", flush=True)
    while True:
        await asyncio.sleep(0.5)  # renews nothing: a real sender would, every lease_s / 3

asyncio.run(main())
"""


@needs_redis
def test_a_killed_senders_connection_leases_lapse_by_themselves() -> None:
    prefix = f"shaping-test-{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SENDER, REDIS, prefix], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"leased"
    proc.kill()
    proc.wait()
    throttle = RedisThrottle(REDIS, prefix)

    async def after() -> tuple[str | None, float, str | None]:
        refused = await throttle.lease("google", 2, 10, "alive")
        started = time.monotonic()
        while (granted := await throttle.lease("google", 2, 10, "alive")) is None:
            await asyncio.sleep(0.05)
        waited = time.monotonic() - started
        await throttle.close()
        return refused, waited, granted

    refused, waited, granted = asyncio.run(after())

    assert refused is None  # the dead process's two leases still count ...
    assert granted is not None and waited < 1.6  # ... until 1.5 s after they were taken


def test_two_senders_share_a_groups_connections_across_its_mx_hosts_without_deferring(
    dns: LocalDns, google: CountingMx, tmp_path: Path
) -> None:
    path = shaping_file(tmp_path, "connections = 2\nper_minute = 1200", max_wait_s=2)
    shared = LocalThrottle()
    one, two = (MxProvider(settings_for(dns, google, path), throttle=shared) for _ in range(2))

    def mixed(tag: str) -> list[str]:
        return [f"{tag}{i}@{'gmail.com' if i % 2 else 'corp.example'}" for i in range(30)]

    async def work() -> list[SendResult]:
        first, second = await asyncio.gather(together(one, mixed("a")), together(two, mixed("b")))
        return first + second

    results = asyncio.run(running([one, two], work))

    assert [r.outcome for r in results] == [Outcome.SENT] * 60
    assert google.sessions.most <= 2  # Gmail's and Workspace's MX hosts, two senders
    assert len(google.handler.recipients()) == 60


class RedisLink:
    """A TCP relay to the Redis at 127.0.0.1:6379 that can be cut and restored, as a Redis
    restart or a network break looks to the senders."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@needs_redis
def test_when_redis_goes_away_and_comes_back_nothing_is_lost_or_sent_twice(
    dns: LocalDns, google: CountingMx, tmp_path: Path
) -> None:
    path = shaping_file(tmp_path, "connections = 2\nper_minute = 1200")
    link = RedisLink()
    settings = settings_for(
        dns,
        google,
        path,
        redis_url=f"redis://127.0.0.1:{link.port}/0",
        queue_prefix=f"shaping-test-{uuid.uuid4().hex}",
    )
    provider = MxProvider(settings)
    before, during = addresses(6, "before"), addresses(6, "during")

    async def work() -> tuple[list[SendResult], list[SendResult], list[SendResult]]:
        await link.up()
        sent = await together(provider, before)
        await link.down()
        refused = await together(provider, during)
        await link.up()
        retried = await together(provider, during)
        await link.down()
        return sent, refused, retried

    sent, refused, retried = asyncio.run(running([provider], work))

    assert [r.outcome for r in sent] == [Outcome.SENT] * 6
    assert [r.outcome for r in refused] == [Outcome.DEFERRED] * 6  # slow, never unshaped
    assert all("Redis unreachable" in r.detail and r.retry_after for r in refused)
    assert [r.outcome for r in retried] == [Outcome.SENT] * 6
    assert sorted(google.handler.recipients()) == sorted(before + during)  # once each
