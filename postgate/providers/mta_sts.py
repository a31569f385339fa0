"""MTA-STS for direct-to-MX delivery (RFC 8461): a destination domain that publishes an
``_mta-sts`` TXT record has its policy fetched from
``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (a valid certificate required, no
redirects, at most 64 KiB) and cached for its ``max_age``, fetched again when the TXT
``id`` changes. The MX provider then, under ``enforce``, sends only to MX hosts matching
the policy's ``mx:`` patterns and only over STARTTLS with a certificate valid for the
host; failing that the send is deferred, never made in clear. Under ``testing`` it sends
as before and reports what would have been refused (log and
``postgate_mta_sts_total``). A domain without a record, or whose policy cannot be fetched
and none is cached, is delivered as before (opportunistic TLS).

Settings (``MTA_STS_*``): ``ENABLED``; ``CA_FILE``, a CA bundle trusted for policy hosts
and MX certificates (empty: the system's); ``POLICY_ADDRESS`` (``host:port``) to fetch
every policy from instead of ``mta-sts.<domain>:443``, its certificate still checked for
``mta-sts.<domain>`` (tests); ``TIMEOUT_S``; ``TXT_CACHE_S``, how long a TXT answer is kept.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import ClassVar

import dns.exception
import dns.resolver
from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from postgate.core import mta_sts
from postgate.core.mta_sts import Policy, PolicyError
from postgate.providers.mx_dns import async_resolver
from postgate.settings import ProviderSettings, Settings

log = logging.getLogger("postgate.mta_sts")
MAX_POLICY_BYTES = 64 * 1024
STS = Counter(
    "postgate_mta_sts_total",
    "MTA-STS events in direct-to-MX delivery: policy fetched or failed, sends deferred "
    "(enforce) or reported (testing) for an MX mismatch or a TLS failure.",
    ["mode", "event"],
)


class MtaStsSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="MTA_STS_", env_file=None, extra="ignore")
    name: ClassVar[str] = "mta_sts"
    enabled: bool = True
    ca_file: str = ""
    policy_address: str = ""
    timeout_s: float = Field(default=10.0, gt=0)
    txt_cache_s: float = Field(default=300.0, ge=0)


class StsRefused(Exception):
    """Sending to this MX would break the domain's enforced policy: defer instead."""


class Policies:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.own = settings.provider(MtaStsSettings)
        self.resolver = async_resolver(settings)
        self.clock = clock
        self.context = ssl.create_default_context(cafile=self.own.ca_file or None)
        self.txt: dict[str, tuple[float, str | None]] = {}  # domain -> (until, id)
        self.cached: dict[str, tuple[float, Policy]] = {}  # domain -> (until, policy)
        self.pending: dict[str, asyncio.Task[Policy | None]] = {}

    async def policy(self, domain: str) -> Policy | None:
        """The domain's policy in force or under test, or None (deliver as before)."""
        if not self.own.enabled:
            return None
        task = self.pending.get(domain)
        if task is None:
            task = asyncio.ensure_future(self._policy(domain))
            self.pending[domain] = task
            task.add_done_callback(lambda _: self.pending.pop(domain, None))
        policy = await asyncio.shield(task)
        return policy if policy is not None and policy.applies else None

    async def _policy(self, domain: str) -> Policy | None:
        now = self.clock()
        held = self.cached.get(domain)
        current = held[1] if held is not None and held[0] > now else None
        known = self.txt.get(domain)
        if known is None or known[0] <= now:
            known = (now + self.own.txt_cache_s, await self._txt_id(domain))
            self.txt[domain] = known
        policy_id = known[1]
        if policy_id is None or (current is not None and current.id == policy_id):
            return current  # no record: a cached policy still holds until its max_age
        try:
            fetched = mta_sts.parse(await self._fetch(domain), policy_id)
        except (OSError, TimeoutError, ssl.SSLError, PolicyError, ValueError) as exc:
            STS.labels("unknown", "fetch_failed").inc()
            log.warning("MTA-STS policy of %s could not be fetched: %s", domain, exc)
            return current
        STS.labels(fetched.mode, "fetched").inc()
        log.info("MTA-STS policy of %s: %s, mx %s", domain, fetched.mode, ", ".join(fetched.mx))
        self.cached[domain] = (now + fetched.max_age, fetched)
        return fetched

    async def _txt_id(self, domain: str) -> str | None:
        try:
            answer = await self.resolver.resolve(f"_mta-sts.{domain}", "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            log.info("MTA-STS TXT look-up of %s failed: %s", domain, exc)
            return None
        return mta_sts.txt_id(b"".join(r.strings).decode("ascii", "replace") for r in answer)

    async def _fetch(self, domain: str) -> str:
        """GET the policy over HTTPS (HTTP/1.1, one request, the answer read to its end)."""
        name = f"mta-sts.{domain}"
        host, port = name, 443
        if self.own.policy_address:
            host, _, port_text = self.own.policy_address.rpartition(":")
            port = int(port_text)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=self.context, server_hostname=name),
            self.own.timeout_s,
        )
        try:
            request = (
                f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {name}\r\n"
                "User-Agent: postgate\r\nConnection: close\r\n\r\n"
            )
            writer.write(request.encode("ascii"))
            await writer.drain()
            raw = await asyncio.wait_for(_read_all(reader), self.own.timeout_s)
        finally:
            writer.close()
        head, sep, body = raw.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split()
        if not sep or len(status) < 2 or status[1] != b"200":
            raise PolicyError(f"{name} answered {head[:60]!r}, not 200 (no redirects followed)")
        if b"chunked" in head.lower():
            raise PolicyError(f"{name} sent a chunked answer; postgate reads plain bodies")
        if len(body) > MAX_POLICY_BYTES:
            raise PolicyError(f"the policy of {domain} is larger than {MAX_POLICY_BYTES} bytes")
        return body.decode("utf-8")


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """The whole answer (the server closes), refused past the size limit."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await reader.read(16384):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_POLICY_BYTES + 4096:
            raise PolicyError(f"the policy answer is larger than {MAX_POLICY_BYTES} bytes")
    return b"".join(chunks)


def allowed_hosts(policy: Policy | None, domain: str, hosts: list[str]) -> list[str]:
    """The MX hosts to try: under ``enforce`` those the policy names (maybe none); under
    ``testing`` all, reporting those it does not name."""
    if policy is None:
        return hosts
    named = [h for h in hosts if mta_sts.matches(h, policy.mx)]
    for host in hosts:
        if host not in named:
            STS.labels(policy.mode, "mx_mismatch").inc()
            log.warning(
                "MTA-STS %s: MX %s of %s is not in the policy (%s)%s",
                policy.mode,
                host,
                domain,
                ", ".join(policy.mx),
                "; not used" if policy.enforced else "; used anyway (testing)",
            )
    return named if policy.enforced else hosts


def tls_failed(policy: Policy, host: str, why: str) -> None:
    """An MX under a policy without valid STARTTLS: raises :class:`StsRefused` under
    ``enforce``; reported (and allowed) under ``testing``."""
    STS.labels(policy.mode, "tls_failed").inc()
    if policy.enforced:
        log.warning("MTA-STS enforce: MX %s has no valid TLS (%s): deferred", host, why)
        raise StsRefused(f"MTA-STS: {host} has no valid TLS ({why}); not sending in clear")
    log.warning("MTA-STS testing: MX %s has no valid TLS (%s): sent anyway", host, why)
