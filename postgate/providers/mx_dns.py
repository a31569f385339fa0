"""Where a domain's mail goes: MX and address (A, then AAAA) look-ups with dnspython's
async resolver (``DNS_RESOLVER`` as for TXT), cached for the answer's TTL within
``MX_DNS_TTL_MIN_S`` and ``MX_DNS_TTL_MAX_S``. Concurrent look-ups of a name share a query.

A domain without MX records is its own MX (RFC 5321 section 5.1). A domain that does not
exist, or publishes a null MX (RFC 7505), cannot receive mail: that failure is permanent
and cached like an answer. Timeouts and server failures are temporary and not cached.

Queries set the AD flag (and EDNS DO) and each answer records whether it came back with
the AD bit, ``Found.secure``: DNSSEC-validated by the resolver, which postgate trusts and
does not check itself. DANE (``dane.py``) relies on it, so the resolver named in
``DNS_RESOLVER`` must be a validating one that postgate reaches over a trusted path, in
practice a local one (unbound on 127.0.0.1, say); a resolver that does not validate sets
no AD bit and DANE is simply never applied.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar, Generic, NamedTuple, TypeVar

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.resolver
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from postgate.core.outcome import Outcome, SendResult
from postgate.providers.dns_txt import resolver as txt_resolver
from postgate.providers.mx_policy import MxHost, cache_ttl, null_mx
from postgate.settings import ProviderSettings, Settings

T = TypeVar("T")
MAX_ENTRIES = 50_000  # expired answers are dropped when the cache grows past this
BAD_NAME = (dns.exception.SyntaxError, dns.name.NameTooLong, dns.name.IDNAException)


class DnsFailure(Exception):
    """No route to the domain: ``result`` is what the send reports."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.detail)
        self.result = result


def permanent(code: int, detail: str) -> DnsFailure:
    return DnsFailure(SendResult(Outcome.FAILED, code, detail))


def temporary(detail: str) -> DnsFailure:
    return DnsFailure(SendResult(Outcome.DEFERRED, None, detail))


class Found(NamedTuple, Generic[T]):
    value: T
    secure: bool  # the answer had the AD bit: DNSSEC-validated by the resolver


def async_resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    """The configured servers, asked to say (AD bit) whether an answer validated."""
    configured = txt_resolver(settings)  # the same servers, port and timeouts as TXT
    res = dns.asyncresolver.Resolver(configure=False)
    res.nameservers = list(configured.nameservers)
    res.port = configured.port
    res.lifetime, res.timeout = configured.lifetime, configured.timeout
    res.flags = dns.flags.RD | dns.flags.AD
    res.use_edns(0, dns.flags.DO, 1232)
    return res


def secure(response: dns.message.Message | None) -> bool:
    """The resolver validated the answer (or the denial of it) with DNSSEC."""
    return response is not None and bool(response.flags & dns.flags.AD)


class SourceSpec(BaseModel):
    """One source address of ``MX_SOURCES``: connections are bound to it; ``warmup``: it
    starts on a ramp the first time a sender sees it (``platform/source_warmup.py``)."""

    model_config = ConfigDict(extra="forbid")
    address: str
    warmup: bool = False

    @field_validator("address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError(f"MX_SOURCES: {value!r} is not an IP address") from None


class MxSettings(ProviderSettings):
    """Direct-to-MX: ``MX_PORT``, ``MX_PORT_OVERRIDES`` (JSON, MX host -> port; tests),
    ``MX_CONNECTIONS_PER_DOMAIN``, ``MX_TIMEOUT_S``, ``MX_IDLE_S``, ``MX_DNS_TTL_MIN_S``,
    ``MX_DNS_TTL_MAX_S``, ``MX_HOST_DOWN_S``, ``MX_BACKOFF_BASE_S``, ``MX_BACKOFF_MAX_S``,
    ``MX_SOURCES`` (JSON, ``[{"address": "192.0.2.10", "warmup": true}, ...]``: the local
    addresses to send from; empty, the system's choice)."""

    model_config = SettingsConfigDict(env_prefix="MX_", env_file=None, extra="ignore")
    name: ClassVar[str] = "mx"
    port: int = 25
    port_overrides: dict[str, int] = Field(default_factory=dict)
    connections_per_domain: int = Field(default=4, ge=1)
    timeout_s: float = 30.0
    idle_s: float = 30.0  # an idle connection older than this is closed, not reused
    dns_ttl_min_s: float = 60.0  # MX/A answers are cached for their TTL within these
    dns_ttl_max_s: float = 3600.0
    host_down_s: float = 60.0  # an MX host that refused a connection is skipped this long
    backoff_base_s: float = 60.0  # after a 421 / 4.7.x the domain is deferred this long,
    backoff_max_s: float = 1800.0  # doubling on each repeat up to this; a success resets
    sources: list[SourceSpec] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _distinct(cls, value: list[SourceSpec]) -> list[SourceSpec]:
        if len({s.address for s in value}) != len(value):
            raise ValueError("MX_SOURCES names an address twice")
        return value


class MxRoutes:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.own = settings.provider(MxSettings)
        self.clock = clock
        self.resolver = async_resolver(settings)
        self.cache: dict[tuple[str, str], tuple[float, object]] = {}
        self.pending: dict[tuple[str, str], asyncio.Future[tuple[float, object]]] = {}
        # MX host -> the name its CNAME chain ends at, when the whole chain was secure
        # (DANE asks for TLSA there first, RFC 7672 section 2.2.2)
        self.aliases: dict[str, str] = {}
        self.queries = 0

    async def mx(self, domain: str) -> list[MxHost]:
        """The domain's MX records, or the domain itself when it has none."""
        return (await self.mx_found(domain)).value

    async def mx_found(self, domain: str) -> Found[list[MxHost]]:
        """``mx`` and whether the answer (or the absence of MX records) was secure."""
        return await self.cached(("MX", domain), lambda: self._mx(domain))

    async def addresses(self, host: str) -> list[str]:
        """The host's IPv4 addresses, then its IPv6 ones; [] when it has none."""
        return (await self.addresses_found(host)).value

    async def addresses_found(self, host: str) -> Found[list[str]]:
        """``addresses`` and whether every address record came in a secure answer."""
        return await self.cached(("A", host), lambda: self._addresses(host))

    async def cached(
        self, key: tuple[str, str], query: Callable[[], Awaitable[tuple[float, T | DnsFailure]]]
    ) -> T:
        hit = self.cache.get(key)
        if hit is None or hit[0] <= self.clock():
            future = self.pending.get(key)
            if future is None:
                future = asyncio.ensure_future(self._fill(key, query))
                self.pending[key] = future
            hit = await asyncio.shield(future)
        value = hit[1]
        if isinstance(value, DnsFailure):
            raise value
        return value  # type: ignore[return-value]

    async def _fill(
        self, key: tuple[str, str], query: Callable[[], Awaitable[tuple[float, object]]]
    ) -> tuple[float, object]:
        try:
            self.queries += 1
            ttl, value = await query()
            entry = (
                self.clock() + cache_ttl(ttl, self.own.dns_ttl_min_s, self.own.dns_ttl_max_s),
                value,
            )
            if ttl >= 0:  # a temporary failure (ttl -1) is answered but not kept
                if len(self.cache) >= MAX_ENTRIES:
                    now = self.clock()
                    self.cache = {k: v for k, v in self.cache.items() if v[0] > now}
                self.cache[key] = entry
            return entry
        finally:
            self.pending.pop(key, None)

    async def _mx(self, domain: str) -> tuple[float, Found[list[MxHost]] | DnsFailure]:
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            return 0, permanent(550, f"5.1.2 no such domain: {domain} does not exist in DNS")
        except dns.resolver.NoAnswer as exc:
            return 0, Found([MxHost(0, domain)], secure(exc.kwargs.get("response")))
        except BAD_NAME as exc:
            return 0, permanent(553, f"5.1.3 bad domain {domain!r}: {exc}")
        except dns.exception.DNSException as exc:
            return -1, temporary(f"MX look-up of {domain} failed: {exc}")
        ttl = answer.rrset.ttl if answer.rrset is not None else 0
        hosts = [
            MxHost(
                r.preference,
                r.exchange.to_text(omit_final_dot=True).lower()
                if r.exchange != dns.name.root
                else "",
            )
            for r in answer
        ]
        if null_mx(hosts):
            return ttl, permanent(556, f"5.1.10 {domain} accepts no mail (null MX, RFC 7505)")
        return ttl, Found(hosts, secure(answer.response))

    async def _addresses(self, host: str) -> tuple[float, Found[list[str]] | DnsFailure]:
        found: list[str] = []
        ttls: list[float] = []
        validated, expanded = True, host.lower()
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(host, rdtype)
            except dns.resolver.NXDOMAIN:
                break
            except (dns.resolver.NoAnswer, *BAD_NAME):
                continue
            except dns.exception.DNSException as exc:
                if found:  # IPv4 is enough to go on with
                    break
                return -1, temporary(f"address look-up of {host} failed: {exc}")
            ttls.append(answer.rrset.ttl if answer.rrset is not None else 0)
            found += [r.address for r in answer]
            validated = validated and secure(answer.response)
            expanded = answer.canonical_name.to_text(omit_final_dot=True).lower()
        validated = validated and bool(found)
        if validated and found and expanded != host.lower():
            self.aliases[host] = expanded
        else:
            self.aliases.pop(host, None)
        return min(ttls, default=0), Found(found, validated)
