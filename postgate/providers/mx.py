"""Direct-to-MX delivery: each recipient's domain is looked up (``mx_dns``) and its MX
hosts are tried in preference order over persistent connections, one idle pool per
destination host, at most ``MX_CONNECTIONS_PER_DOMAIN`` sends at a time per domain.

- A host that refuses or times out is skipped for ``MX_HOST_DOWN_S`` and the next
  preference is tried; when none answers the send is deferred.
- STARTTLS is used when offered, without certificate checks (opportunistic, as MTAs do);
  a failed handshake falls back to plain text on a new connection. A domain with an
  MTA-STS policy (``mta_sts``) gets only the MX hosts it names and a checked certificate
  under ``enforce`` (else the send is deferred), and a report under ``testing``.
- A 421 or 4.7.x reply opens a backoff window for the domain (``mx_policy.throttled``):
  until it ends its sends are deferred at once without connecting; a success closes it.
- Replies map like the smarthost's (2xx sent, 4xx deferred, 5xx failed); the MAIL/RCPT/
  DATA transaction itself is ``SmtpPool``'s. A domain that does not exist or publishes a
  null MX fails with a 5.1.2 / 5.1.10 status, which the bounce classifier calls hard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
import weakref
from collections import defaultdict
from typing import NamedTuple

import aiosmtplib

from postgate.core.mta_sts import Policy
from postgate.core.outcome import Outcome, SendResult
from postgate.observability.metrics import PROVIDER_ERRORS, SEND_SECONDS
from postgate.providers import mta_sts as sts
from postgate.providers.mx_dns import DnsFailure, MxRoutes
from postgate.providers.mx_policy import Backoff, held_back, is_throttle, order_hosts, throttled
from postgate.providers.smtp import SmtpPool
from postgate.settings import Settings

log = logging.getLogger("postgate.mx")
CONNECT_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError)


def final(result: SendResult) -> bool:
    """The server answered (or may have taken the message): no other host is tried."""
    return result.outcome is not Outcome.DEFERRED or result.code is not None or result.unknown


class Destination(NamedTuple):
    host: str  # the MX name (TLS server name)
    address: str
    port: int


class MxProvider:
    name = "mx"

    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.routes = MxRoutes(settings)
        self.own = self.routes.own
        self.rng = rng or random.Random()
        self.idle: dict[Destination, list[tuple[float, aiosmtplib.SMTP]]] = defaultdict(list)
        self.limits: dict[str, tuple[asyncio.Semaphore, int]] = {}  # domain -> (slots, users)
        self.backoff: dict[str, Backoff] = {}
        self.down: dict[Destination, float] = {}  # host -> monotonic time it may be retried
        self.transaction = SmtpPool(settings)  # only its MAIL/RCPT/DATA code is used
        self.reaper: asyncio.Task[None] | None = None
        self.sts = sts.Policies(settings)
        self.verified: weakref.WeakSet[aiosmtplib.SMTP] = weakref.WeakSet()  # checked TLS
        self._latency = SEND_SECONDS.labels("email", self.name)

    async def start(self) -> None:
        if self.reaper is None:
            self.reaper = asyncio.create_task(self._reap())

    async def close(self) -> None:
        if self.reaper is not None:
            self.reaper.cancel()
            self.reaper = None
        clients = [c for pool in self.idle.values() for _, c in pool]
        self.idle.clear()
        await asyncio.gather(*(self._quit(c) for c in clients))

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        domain = recipient.rpartition("@")[2].strip().rstrip(".").lower()
        if not domain:
            return SendResult(Outcome.FAILED, 553, "5.1.3 no domain in the address")
        if (deferred := self._held(domain)) is not None:
            return deferred
        try:
            hosts = order_hosts(await self.routes.mx(domain), self.rng)
        except DnsFailure as failure:
            return failure.result
        slots, users = self.limits.get(domain) or (
            asyncio.Semaphore(self.own.connections_per_domain),
            0,
        )
        self.limits[domain] = (slots, users + 1)
        try:
            async with slots:
                result = self._held(domain) or await self._deliver(
                    domain, hosts, envelope_from, recipient, data
                )
        finally:
            slots, users = self.limits[domain]
            if users > 1:
                self.limits[domain] = (slots, users - 1)
            else:
                del self.limits[domain]
        self._learn(domain, result)
        return result

    def _held(self, domain: str) -> SendResult | None:
        left = held_back(self.backoff.get(domain), time.monotonic())
        if not left:
            return None
        PROVIDER_ERRORS.labels("email", self.name, "backoff").inc()
        return SendResult(
            Outcome.DEFERRED, None, f"{domain} asked us to slow down: held back {left:.0f}s more"
        )

    def _learn(self, domain: str, result: SendResult) -> None:
        if is_throttle(result.code, result.detail):
            previous = self.backoff.get(domain)
            state = throttled(
                previous, time.monotonic(), self.own.backoff_base_s, self.own.backoff_max_s
            )
            if state is not previous:
                PROVIDER_ERRORS.labels("email", self.name, "throttled").inc()
                log.warning(
                    "%s throttles (%s %s): deferring its mail for %.0fs",
                    domain,
                    result.code,
                    result.detail,
                    state.until - time.monotonic(),
                )
            self.backoff[domain] = state
        elif result.outcome is Outcome.SENT:
            self.backoff.pop(domain, None)

    async def _deliver(
        self, domain: str, hosts: list[str], envelope_from: str, recipient: str, data: bytes
    ) -> SendResult:
        last = SendResult(Outcome.DEFERRED, None, f"no MX host of {domain} has an address")
        policy = await self.sts.policy(domain)
        if not (hosts := sts.allowed_hosts(policy, domain, hosts)):
            return SendResult(Outcome.DEFERRED, None, f"MTA-STS: no MX of {domain} in its policy")
        for host in hosts:
            try:
                addresses = await self.routes.addresses(host)
            except DnsFailure as failure:
                last = failure.result
                continue
            if not addresses and hosts == [domain]:  # implicit MX without an address
                return SendResult(
                    Outcome.FAILED, 550, f"5.1.2 {domain} has no MX and no address record"
                )
            for address in addresses:
                port = self.own.port_overrides.get(host, self.own.port)
                dest = Destination(host, address, port)
                if self.down.get(dest, 0) > time.monotonic():
                    last = SendResult(Outcome.DEFERRED, None, f"{host} [{address}] is down")
                    continue
                result = await self._over(dest, envelope_from, recipient, data, policy)
                if final(result):
                    return result
                last = result
        return SendResult(last.outcome, last.code, f"no MX host of {domain} took it: {last.detail}")

    async def _over(
        self,
        dest: Destination,
        envelope_from: str,
        recipient: str,
        data: bytes,
        policy: Policy | None = None,
    ) -> SendResult:
        """One transaction with ``dest``: a reused connection that turns out to be closed
        before DATA is replaced by a fresh one. A result that is not ``final``: next host.
        Under an enforced MTA-STS policy only connections with a checked certificate."""
        pool = self.idle.get(dest, [])
        while pool:
            since, client = pool.pop()
            if policy is not None and policy.enforced and client not in self.verified:
                await self._quit(client)
            elif client.is_connected and time.monotonic() - since < self.own.idle_s:
                result = await self._transact(client, dest, envelope_from, recipient, data)
                if final(result):
                    return result
            else:
                await self._quit(client)
        try:
            client = await self._connect(dest, policy)
        except sts.StsRefused as exc:
            return SendResult(Outcome.DEFERRED, None, str(exc))
        except aiosmtplib.SMTPResponseException as exc:  # a 421 greeting, say
            return SendResult(
                Outcome.DEFERRED if exc.code < 500 else Outcome.FAILED, exc.code, exc.message
            )
        except CONNECT_ERRORS as exc:
            PROVIDER_ERRORS.labels("email", self.name, "connect").inc()
            self.down[dest] = time.monotonic() + self.own.host_down_s
            return SendResult(Outcome.DEFERRED, None, f"{dest.host} [{dest.address}]: {exc}")
        return await self._transact(client, dest, envelope_from, recipient, data)

    async def _transact(
        self,
        client: aiosmtplib.SMTP,
        dest: Destination,
        envelope_from: str,
        recipient: str,
        data: bytes,
    ) -> SendResult:
        started = time.perf_counter()
        result = await self.transaction.transact(client, envelope_from, recipient, data)
        self._latency.observe(time.perf_counter() - started)
        if result.unknown:
            PROVIDER_ERRORS.labels("email", self.name, "connection_lost").inc()
        if not final(result) or result.unknown or result.code == 421 or not client.is_connected:
            client.close()
        elif len(self.idle[dest]) < self.own.connections_per_domain:
            self.idle[dest].append((time.monotonic(), client))
        else:
            await self._quit(client)
        return result

    async def _connect(self, dest: Destination, policy: Policy | None = None) -> aiosmtplib.SMTP:
        client = self._client(dest)
        await client.connect()
        try:
            await client.ehlo()
        except BaseException:
            client.close()
            raise
        if policy is not None:
            return await self._checked_tls(client, dest, policy)
        if not client.supports_extension("starttls"):
            return client
        try:
            await client.starttls(server_hostname=dest.host, validate_certs=False)
        except CONNECT_ERRORS as exc:
            log.info("STARTTLS with %s failed (%s): sending in plain text", dest.host, exc)
            client.close()
            client = self._client(dest)
            await client.connect()
        return client

    async def _checked_tls(
        self, client: aiosmtplib.SMTP, dest: Destination, policy: Policy
    ) -> aiosmtplib.SMTP:
        """STARTTLS with the certificate checked for the MX name (MTA-STS); without it the
        send is refused (enforce) or goes on as opportunistic TLS would (testing)."""
        if not client.supports_extension("starttls"):
            try:
                sts.tls_failed(policy, dest.host, "no STARTTLS offered")  # raises if enforced
            except sts.StsRefused:
                client.close()
                raise
            return client
        try:
            await client.starttls(
                server_hostname=dest.host, validate_certs=True, tls_context=self.sts.context
            )
        except CONNECT_ERRORS as exc:
            client.close()
            sts.tls_failed(policy, dest.host, str(exc) or type(exc).__name__)
            return await self._connect(dest)  # testing: as without a policy
        self.verified.add(client)
        return client

    def _client(self, dest: Destination) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=dest.address,
            port=dest.port,
            start_tls=False,
            timeout=self.own.timeout_s,
            local_hostname=self.settings.helo_name,
        )

    async def _reap(self) -> None:
        """Close idle connections past ``MX_IDLE_S`` so quiet destinations hold no socket;
        forget hosts that are no longer down and domains long out of their window."""
        while True:
            await asyncio.sleep(max(1.0, self.own.idle_s / 2))
            now, stale = time.monotonic(), []
            for dest, pool in list(self.idle.items()):
                stale += [c for t, c in pool if now - t >= self.own.idle_s]
                pool[:] = [(t, c) for t, c in pool if now - t < self.own.idle_s]
                if not pool:  # in place: a send may be walking this very list
                    del self.idle[dest]
            self.down = {d: until for d, until in self.down.items() if until > now}
            forget = now - self.own.backoff_max_s  # long quiet: strikes start over
            self.backoff = {d: b for d, b in self.backoff.items() if b.until > forget}
            await asyncio.gather(*(self._quit(c) for c in stale))

    @staticmethod
    async def _quit(client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.quit(), 2)
        client.close()
