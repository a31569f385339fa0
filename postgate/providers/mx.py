"""Direct-to-MX delivery: each recipient's domain is looked up (``mx_dns``) and its MX
hosts are tried in preference order over persistent connections, one idle pool per
destination host and shaping key.

- Traffic shaping (``shaper``): the domain's MX hosts place it in a provider group of the
  shaping file (Google, Microsoft, ...; else ``default``, shaped per domain). A send
  waits for its tenant's share before it takes a connection slot, and for the group's
  turn once it has a connection; a new connection needs one of the group's leases (a
  free one goes to a waiting sender first; a send of this sender waiting for one gets
  the lease of the next of its connections to the group to close, ``handoff``). All of
  it is shared by every sender through Redis; a send that would wait longer than
  ``max_wait_s`` is deferred with a due time. A reply that a shaping rule matches slows
  or suspends the group (or the tenant on it) for every sender.
- A host that refuses or times out is skipped for ``MX_HOST_DOWN_S`` and the next
  preference is tried; when none answers the send is deferred.
- STARTTLS is used when offered, without certificate checks (opportunistic, as MTAs do);
  a failed handshake falls back to plain text on a new connection. A domain with an
  MTA-STS policy (``mta_sts``) gets only the MX hosts it names and a checked certificate
  under ``enforce`` (else the send is deferred), and a report under ``testing``. An MX
  host with DNSSEC-secure TLSA records (``dane``) gets STARTTLS with its certificate
  matched against them (DANE before MTA-STS: such a host is used even if the policy does
  not name it), else that host is not used.
- A 421 or 4.7.x reply that no shaping rule matches opens a backoff window for the
  domain's shaping key (``mx_policy.window``): until it ends its sends are deferred at
  once without connecting, by this sender and (a shared ``suspend``, rule ``backoff``) by
  every other. The strikes that double it are counted for every sender too
  (``Throttle.strike``): a sender throttled after another's window has passed gets twice
  that window; a success of a sender that was throttled starts them over.
- ``MX_SOURCES``: each connection is bound to the source address the sender gave the
  message (``SENDING_SOURCE``; ``workers/source_turns.py`` assigns them, ramping up the
  warming ones); idle pools and hosts marked down are per source address.
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
from postgate.core.shaping import DEFAULT
from postgate.observability.metrics import PROVIDER_ERRORS, SEND_SECONDS
from postgate.providers import dane, shaping_file
from postgate.providers import mta_sts as sts
from postgate.providers.base import SENDING_SOURCE, SENDING_TENANT
from postgate.providers.handoff import Handoff
from postgate.providers.mx_dns import DnsFailure, MxRoutes
from postgate.providers.mx_policy import (
    Backoff,
    held_back,
    is_throttle,
    order_hosts,
    throttled,
    window,
)
from postgate.providers.shaper import Pacing, Place, Shaper, throttle_for
from postgate.providers.smtp import SmtpPool
from postgate.providers.throttle import Throttle, Unavailable
from postgate.settings import Settings

log = logging.getLogger("postgate.mx")
LEASE_POLL_S = 0.05  # how often a send waiting for a free connection lease asks again
CONNECT_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError)


def governing(need: dane.Required | None, policy: Policy | None) -> Policy | dane.Required | None:
    """What TLS to a host must satisfy: DANE when the host has usable TLSA records (RFC
    8461 section 2), or only unusable ones and no enforced MTA-STS policy asks for more;
    else the MTA-STS policy, if any."""
    if need is not None and (need.records or policy is None or not policy.enforced):
        return need
    return policy


def final(result: SendResult) -> bool:
    """The server answered (or may have taken the message), or shaping put the send off:
    no other host is tried."""
    return (
        result.outcome is not Outcome.DEFERRED
        or result.code is not None
        or result.unknown
        or result.retry_after is not None
    )


class Destination(NamedTuple):
    host: str  # the MX name (TLS server name)
    address: str
    port: int
    source: str = ""  # the local address connections are made from ("": any)


class Pool(NamedTuple):
    key: str  # the shaping key whose leases the pool's connections hold
    dest: Destination


class MxProvider:
    name = "mx"

    def __init__(
        self,
        settings: Settings,
        rng: random.Random | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        """Raises ``shaping_file.ShapingError`` when the shaping file is not valid."""
        self.settings = settings
        self.routes = MxRoutes(settings)
        self.own = self.routes.own
        self.rng = rng or random.Random()
        self.shaper = Shaper(
            shaping_file.load(settings.shaping_file),
            throttle or throttle_for(settings),
            self.own.connections_per_domain,
            self.rng,
        )
        # an idle connection holds a lease another sender may want: it is kept this long
        self.idle_s = min(self.own.idle_s, self.shaper.shaping.idle_s)
        # (shaping key, host) -> idle connections, each holding one of the key's leases
        self.idle: dict[Pool, list[tuple[float, aiosmtplib.SMTP]]] = defaultdict(list)
        self.leased: dict[aiosmtplib.SMTP, tuple[str, int]] = {}  # client -> (lease, sends)
        self.handoff = Handoff()
        self.limits: dict[str, tuple[asyncio.Semaphore, int]] = {}  # key -> (slots, users)
        self.backoff: dict[str, Backoff] = {}  # shaping key -> window
        self.down: dict[Destination, float] = {}  # host -> monotonic time it may be retried
        self.transaction = SmtpPool(settings)  # only its MAIL/RCPT/DATA code is used
        self.reaper: asyncio.Task[None] | None = None
        self.renewer: asyncio.Task[None] | None = None
        self.sts = sts.Policies(settings)
        self.verified: weakref.WeakSet[aiosmtplib.SMTP] = weakref.WeakSet()  # checked TLS
        self.dane = dane.Dane(settings, self.routes)
        self._latency = SEND_SECONDS.labels("email", self.name)

    async def start(self) -> None:
        if self.reaper is None:
            self.reaper = asyncio.create_task(self._reap())
        if self.renewer is None:
            self.renewer = asyncio.create_task(self._renew())

    async def close(self) -> None:
        for task in (self.reaper, self.renewer):
            if task is not None:
                task.cancel()
        self.reaper = self.renewer = None
        clients = [c for pool in self.idle.values() for _, c in pool]
        self.idle.clear()
        await asyncio.gather(*(self._quit(c) for c in clients))
        await self.shaper.close()

    @property
    def sources(self) -> list[tuple[str, bool]]:
        """``MX_SOURCES`` as (address, warm up?): the addresses the sender assigns."""
        return [(s.address, s.warmup) for s in self.own.sources]

    async def group_of(self, domain: str) -> str:
        """The provider group of a destination domain by its MX hosts (a warming domain's
        caps are per group); one whose MX cannot be read now counts as the default group."""
        try:
            records = await self.routes.mx(domain)
        except DnsFailure:
            return DEFAULT
        return self.shaper.place(domain, records).group

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        domain = recipient.rpartition("@")[2].strip().rstrip(".").lower()
        if not domain:
            return SendResult(Outcome.FAILED, 553, "5.1.3 no domain in the address")
        try:
            records = await self.routes.mx(domain)
        except DnsFailure as failure:
            return failure.result
        place = self.shaper.place(domain, records)
        if (deferred := self._held(place)) is not None:
            return deferred
        hosts = order_hosts(records, self.rng)
        tenant = SENDING_TENANT.get()
        if (deferred := await self.shaper.admit(place, tenant)) is not None:
            return deferred  # its turn waited for without a connection slot held
        key = place.key
        slots, users = self.limits.get(key) or (asyncio.Semaphore(place.connections), 0)
        self.limits[key] = (slots, users + 1)
        try:
            async with slots:
                result = self._held(place) or await self._deliver(
                    Pacing(self.shaper, place, tenant), hosts, envelope_from, recipient, data
                )
        finally:
            slots, users = self.limits[key]
            if users > 1:
                self.limits[key] = (slots, users - 1)
            else:
                del self.limits[key]
        if result.retry_after is None:
            await self._learn(place, tenant, result)
        return result

    def _held(self, place: Place) -> SendResult | None:
        left = held_back(self.backoff.get(place.key), time.monotonic())
        if not left:
            return None
        PROVIDER_ERRORS.labels("email", self.name, "backoff").inc()
        return SendResult(
            Outcome.DEFERRED,
            None,
            f"{place.domain} asked us to slow down: held back {left:.0f}s more",
        )

    async def _learn(self, place: Place, tenant: str, result: SendResult) -> None:
        if await self.shaper.learn(place, tenant, result):
            return  # the shaping rule's action stands for the generic backoff
        domain = place.key
        previous = self.backoff.get(domain)
        if is_throttle(result.code, result.detail):
            now = time.monotonic()
            if previous is not None and now < previous.until:
                return  # a reply to a send already in flight when the window opened
            # the strikes of every sender: a window doubles whoever was throttled before
            shared = await self.shaper.strike(place, 2 * self.own.backoff_max_s)
            if shared == 0:  # another sender's window is open: not a new strike
                return
            base, ceiling = self.own.backoff_base_s, self.own.backoff_max_s
            state = (
                throttled(previous, now, base, ceiling)  # unshared: this sender's own count
                if shared is None
                else window(shared, now, base, ceiling)
            )
            PROVIDER_ERRORS.labels("email", self.name, "throttled").inc()
            log.warning(
                "%s throttles (%s %s): deferring its mail for %.0fs (strike %d)",
                domain,
                result.code,
                result.detail,
                state.until - now,
                state.strikes,
            )
            await self.shaper.hold(place, state.until - now)
            self.backoff[domain] = state
        elif result.outcome is Outcome.SENT and previous is not None:
            del self.backoff[domain]
            await self.shaper.forgive(place)

    async def _deliver(
        self,
        paced: Pacing,
        hosts: list[str],
        envelope_from: str,
        recipient: str,
        data: bytes,
    ) -> SendResult:
        domain = paced.place.domain
        last = SendResult(Outcome.DEFERRED, None, f"no MX host of {domain} has an address")
        policy = await self.sts.policy(domain)
        allowed = set(sts.allowed_hosts(policy, domain, hosts))
        if not allowed and not self.dane.own.enabled:
            return SendResult(Outcome.DEFERRED, None, f"MTA-STS: no MX of {domain} in its policy")
        source = SENDING_SOURCE.get()
        for host in hosts:
            try:
                addresses, secure = await self.routes.addresses_found(host)
            except DnsFailure as failure:
                last = failure.result
                continue
            if not addresses and hosts == [domain]:  # implicit MX without an address
                return SendResult(
                    Outcome.FAILED, 550, f"5.1.2 {domain} has no MX and no address record"
                )
            try:
                rule = await self._tls_rule(domain, host, secure, policy)
            except dane.DaneRefused as exc:
                last = SendResult(Outcome.DEFERRED, None, str(exc))
                continue
            if host not in allowed and not (isinstance(rule, dane.Required) and rule.records):
                # a host DANE authenticates is tried although MTA-STS does not name it
                # (RFC 8461 section 2: DANE first); any other must be in the policy
                last = SendResult(
                    Outcome.DEFERRED, None, f"MTA-STS: no MX of {domain} in its policy ({host})"
                )
                continue
            for address in addresses:
                port = self.own.port_overrides.get(host, self.own.port)
                dest = Destination(host, address, port, source)
                if self.down.get(dest, 0) > time.monotonic():
                    last = SendResult(Outcome.DEFERRED, None, f"{host} [{address}] is down")
                    continue
                result = await self._over(paced, dest, envelope_from, recipient, data, rule)
                if final(result):
                    return result
                last = result
        return SendResult(last.outcome, last.code, f"no MX host of {domain} took it: {last.detail}")

    async def _tls_rule(
        self, domain: str, host: str, secure: bool, policy: Policy | None
    ) -> Policy | dane.Required | None:
        """What TLS with ``host`` must satisfy (``governing``); DANE applies when the MX
        answer and the host's address answer (``secure``) were both DNSSEC-secure."""
        port = self.own.port_overrides.get(host, self.own.port)
        secure = secure and (await self.routes.mx_found(domain)).secure
        return governing(await self.dane.required(domain, host, port, secure), policy)

    async def _over(
        self,
        paced: Pacing,
        dest: Destination,
        envelope_from: str,
        recipient: str,
        data: bytes,
        rule: Policy | dane.Required | None = None,
    ) -> SendResult:
        """One transaction with ``dest``: a reused connection that turns out to be closed
        before DATA is replaced by a fresh one. A result that is not ``final``: next host.
        Under an enforced MTA-STS policy only connections with a checked certificate, under
        DANE only those that met its ``rule``. A new connection takes one of the group's
        leases first. The send's turn in the group's pace is taken with a connection in
        hand."""
        place = paced.place
        pool = self.idle.get(Pool(place.key, dest), [])
        while pool:
            since, client = pool.pop()
            if (isinstance(rule, Policy) and rule.enforced and client not in self.verified) or (
                isinstance(rule, dane.Required) and not self.dane.reusable(client, rule)
            ):
                await self._quit(client)
            elif client.is_connected and time.monotonic() - since < self.idle_s:
                if (deferred := await paced.ready()) is not None:
                    await self._keep(place, dest, client, since)
                    return deferred
                result = await self._transact(client, paced, dest, envelope_from, recipient, data)
                if final(result):
                    return result
            else:
                await self._quit(client)
        lease = await self._lease(place)
        if isinstance(lease, SendResult):
            return lease
        connected: aiosmtplib.SMTP | None = None
        try:
            client = connected = await self._connect(dest, rule)
            self.leased[client] = (lease, 0)
        except (sts.StsRefused, dane.DaneRefused) as exc:
            return SendResult(Outcome.DEFERRED, None, str(exc))
        except aiosmtplib.SMTPResponseException as exc:  # a 421 greeting, say
            return SendResult(
                Outcome.DEFERRED if exc.code < 500 else Outcome.FAILED, exc.code, exc.message
            )
        except CONNECT_ERRORS as exc:
            PROVIDER_ERRORS.labels("email", self.name, "connect").inc()
            self.down[dest] = time.monotonic() + self.own.host_down_s
            return SendResult(Outcome.DEFERRED, None, f"{dest.host} [{dest.address}]: {exc}")
        finally:
            if connected is None:
                await self.shaper.release(lease)
        if (deferred := await paced.ready()) is not None:
            await self._keep(place, dest, client, time.monotonic())
            return deferred
        return await self._transact(client, paced, dest, envelope_from, recipient, data)

    async def _keep(
        self, place: Place, dest: Destination, client: aiosmtplib.SMTP, since: float
    ) -> None:
        """Back into the idle pool (lease and all) if it has room, else closed."""
        pool = self.idle[Pool(place.key, dest)]
        if client.is_connected and len(pool) < place.connections:
            pool.append((since, client))
        else:
            await self._quit(client)

    async def _lease(self, place: Place) -> str | SendResult:
        """A lease for a new connection to ``place``'s group: when all are taken, one of
        this process's idle connections to the group is closed to free one, else it is
        waited for up to ``max_wait_s``; then the send is deferred."""
        deadline = time.monotonic() + self.shaper.shaping.max_wait_s
        while True:
            try:
                lease = await self.shaper.lease(place)
            except Unavailable as exc:
                return self.shaper.unavailable(place, exc)
            if lease is not None:
                return lease
            if await self._close_idle(place.key):
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return self.shaper.connections_full(place)
            if self.shaper.held(place.key):  # one of ours will be free soon: its lease
                if (handed := await self.handoff.wait(place.key, min(left, 0.25))) is not None:
                    return handed
            else:
                await asyncio.sleep(LEASE_POLL_S)

    async def _close_idle(self, key: str) -> bool:
        """Close this process's oldest idle connection of shaping key ``key``, if any."""
        pools = [(pool[0][0], p) for p, pool in self.idle.items() if p.key == key and pool]
        if not pools:
            return False
        _, oldest = min(pools, key=lambda found: found[0])
        _, client = self.idle[oldest].pop(0)
        await self._quit(client)
        return True

    async def _transact(
        self,
        client: aiosmtplib.SMTP,
        paced: Pacing,
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
        place = paced.place
        lease, sends = self.leased.get(client, ("", 0))
        self.leased[client] = (lease, sends + 1)
        pool = self.idle[Pool(place.key, dest)]
        # another sender waits for a connection to the group: give this one back (keeping
        # one); else a send of ours waiting for one (to another host) gets its lease
        to_others = paced.wanted and self.shaper.held(place.key) > 1
        if not final(result) or result.unknown or result.code == 421 or not client.is_connected:
            await self._drop(client, to_others)
        elif (
            sends + 1 < place.limits.messages_per_connection
            and len(pool) < place.connections
            and not to_others
            and not self.handoff.wanted(place.key)
        ):
            pool.append((time.monotonic(), client))
        else:
            await self._quit(client, to_others)
        return result

    async def _connect(
        self, dest: Destination, rule: Policy | dane.Required | None = None
    ) -> aiosmtplib.SMTP:
        client = self._client(dest)
        await client.connect()
        try:
            await client.ehlo()
        except BaseException:
            client.close()
            raise
        if isinstance(rule, dane.Required):
            return await self.dane.starttls(client, rule)
        if rule is not None:
            return await self._checked_tls(client, dest, rule)
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
            source_address=(dest.source, 0) if dest.source else None,
        )

    async def _reap(self) -> None:
        """Close idle connections past ``MX_IDLE_S`` (or the shaping file's ``idle_s``) so
        quiet destinations hold no socket and no lease, and at once those of a group
        another sender waits for; forget hosts that are no longer down and domains long
        out of their window."""
        while True:
            await asyncio.sleep(max(0.25, min(1.0, self.idle_s / 2)))
            wanted = await self.shaper.wanted(sorted({p.key for p, c in self.idle.items() if c}))
            now, stale = time.monotonic(), []
            for dest, pool in list(self.idle.items()):
                if dest.key in wanted:  # another sender waits for a connection: free them
                    stale += [c for _, c in pool]
                    pool.clear()
                stale += [c for t, c in pool if now - t >= self.idle_s]
                pool[:] = [(t, c) for t, c in pool if now - t < self.idle_s]
                if not pool:  # in place: a send may be walking this very list
                    del self.idle[dest]
            self.down = {d: until for d, until in self.down.items() if until > now}
            forget = now - self.own.backoff_max_s  # long quiet: strikes start over
            self.backoff = {d: b for d, b in self.backoff.items() if b.until > forget}
            await asyncio.gather(*(self._quit(c) for c in stale))

    async def _renew(self) -> None:
        """Keep this process's connection leases from lapsing while it lives."""
        while True:
            await asyncio.sleep(self.shaper.shaping.lease_s / 3)
            await self.shaper.renew()

    async def _quit(self, client: aiosmtplib.SMTP, to_others: bool = False) -> None:
        if client.is_connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.quit(), 2)
        await self._drop(client, to_others)

    async def _drop(self, client: aiosmtplib.SMTP, to_others: bool = False) -> None:
        """Close the connection and give its lease back: to a send of ours waiting for
        one if there is one, unless it is closed for another sender that waits."""
        client.close()
        lease, _ = self.leased.pop(client, ("", 0))
        key = self.shaper.leases.get(lease)
        if key is not None and (to_others or not self.handoff.give(key, lease)):
            await self.shaper.release(lease)
