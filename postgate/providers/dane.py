"""DANE for direct-to-MX delivery (RFC 7672), where DNSSEC validates: the TLSA look-up and
the certificate check at STARTTLS (the matching itself is ``core/dane.py``).

postgate does not validate DNSSEC itself: it trusts the AD bit of the answers of the
resolver named in ``DNS_RESOLVER`` (``mx_dns``). The supported deployment is a local
validating resolver (unbound on 127.0.0.1, say); a remote resolver's AD bit is only as
good as the path to it, and one that does not validate sets none, so DANE never applies.

- When a domain's MX answer and the MX host's address answer were both secure (section
  2.2), ``_<port>._tcp.<mxhost>`` TLSA is looked up and cached for its TTL like MX and A.
- A secure TLSA RRset with usable records (``3 x x`` DANE-EE, ``2 x x`` DANE-TA, selector
  0/1, matching type 0/1/2): STARTTLS is mandatory and the presented chain must match
  (``core.dane.authenticate``); else the host is not used for this send (the next one is
  tried, then the send is deferred), never in clear.
- A secure TLSA RRset whose records are all unusable (usages 0/1, unknown parameters):
  STARTTLS is mandatory, the certificate is not checked (section 2.2).
- A TLSA look-up that fails (SERVFAIL, which a validating resolver also answers for bogus
  data, or a timeout) on such a host: the host is not used (section 2.2.3).
- No TLSA records, or an answer that is not secure: opportunistic TLS as before.

With usable TLSA records DANE takes precedence over MTA-STS for that host (RFC 8461
section 2): its certificate is checked by DANE alone. MTA-STS's choice of MX names still
applies. Events are logged with domain and host and counted in
``postgate_dane_total{event}``: ``authenticated``, ``mismatch``, ``no_starttls``,
``handshake_failed``, ``tlsa_failed``, ``unusable``, ``encrypted`` (mandatory TLS with
only unusable records). Setting: ``DANE_ENABLED`` (true).
"""

from __future__ import annotations

import _ssl
import datetime as dt
import logging
import ssl
import weakref
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import aiosmtplib
import dns.exception
import dns.resolver
from prometheus_client import Counter
from pydantic_settings import SettingsConfigDict

from postgate.core import dane
from postgate.core.dane import Mismatch, Tlsa
from postgate.providers.mx_dns import DnsFailure, MxRoutes, secure, temporary
from postgate.settings import ProviderSettings, Settings

log = logging.getLogger("postgate.dane")
DANE = Counter(
    "postgate_dane_total",
    "DANE events in direct-to-MX delivery: hosts authenticated by TLSA, and sends to an MX "
    "host refused for a mismatch, no STARTTLS, a failed handshake or TLSA look-up.",
    ["event"],
)
TLS_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError)


class DaneSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="DANE_", env_file=None, extra="ignore")
    name: ClassVar[str] = "dane"
    enabled: bool = True


class DaneRefused(Exception):
    """This MX host must not get the message now (DANE): the next one is tried."""


@dataclass(frozen=True, slots=True)
class Required:
    """What DANE asks of a connection to ``host``: its usable TLSA records, or none when
    the host's secure TLSA records are all unusable (TLS mandatory, not authenticated)."""

    host: str
    domain: str
    records: tuple[Tlsa, ...]
    base: str = ""  # the TLSA base domain: the CNAME-expanded host name, else the host

    @property
    def server_name(self) -> str:
        """The SNI to send: the TLSA base domain (RFC 7671 section 7)."""
        return self.base or self.host


class Dane:
    def __init__(self, settings: Settings, routes: MxRoutes) -> None:
        self.own = settings.provider(DaneSettings)
        self.routes = routes
        # connection -> the records it satisfied: a reused one must still satisfy them
        self.satisfied: weakref.WeakKeyDictionary[aiosmtplib.SMTP, tuple[Tlsa, ...]] = (
            weakref.WeakKeyDictionary()
        )

    async def required(
        self, domain: str, host: str, port: int, secure_route: bool
    ) -> Required | None:
        """What DANE asks of connections to ``host`` (None: nothing, opportunistic TLS);
        raises :class:`DaneRefused` when the TLSA look-up failed. ``secure_route``: the
        MX and address answers leading to the host were both secure."""
        if not self.own.enabled or not secure_route:
            return None
        alias = self.routes.aliases.get(host)  # secure CNAME expansion: asked first
        found: tuple[Tlsa, ...] | None = None
        for base in [alias, host] if alias else [host]:
            name = f"_{port}._tcp.{base}"
            try:
                found = await self.routes.cached(("TLSA", name), partial(self._tlsa, name))
            except DnsFailure as failure:
                DANE.labels("tlsa_failed").inc()
                log.warning("DANE: MX %s of %s not used: %s", host, domain, failure.result.detail)
                raise DaneRefused(f"DANE: {failure.result.detail}; {host} not used") from None
            if found is not None:
                break
        if found is None:
            return None
        records = dane.usable(found)
        if not records:
            DANE.labels("unusable").inc()
            log.info("DANE: MX %s of %s has only unusable TLSA records: TLS required", host, domain)
        return Required(host, domain, records, base)

    async def _tlsa(self, name: str) -> tuple[float, tuple[Tlsa, ...] | DnsFailure | None]:
        try:
            answer = await self.routes.resolver.resolve(name, "TLSA")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return 0, None
        except dns.exception.DNSException as exc:
            return -1, temporary(f"TLSA look-up of {name} failed: {exc}")
        if not secure(answer.response):
            return 0, None  # not validated: as if there were none
        ttl = answer.rrset.ttl if answer.rrset is not None else 0
        return ttl, tuple(Tlsa(r.usage, r.selector, r.mtype, bytes(r.cert)) for r in answer)

    def reusable(self, client: aiosmtplib.SMTP, need: Required) -> bool:
        return self.satisfied.get(client) == need.records

    async def starttls(self, client: aiosmtplib.SMTP, need: Required) -> aiosmtplib.SMTP:
        """STARTTLS on a connected, greeted client as ``need`` asks; closes it and raises
        :class:`DaneRefused` when it cannot be done."""
        if not client.supports_extension("starttls"):
            client.close()
            raise self._refused(need, "no_starttls", "no STARTTLS offered")
        try:
            await client.starttls(server_hostname=need.server_name, validate_certs=False)
        except TLS_ERRORS as exc:
            client.close()
            raise self._refused(
                need, "handshake_failed", f"TLS handshake failed ({exc or type(exc).__name__})"
            ) from None
        if need.records:
            chain = peer_chain(client.get_transport_info("ssl_object"))
            names = list(dict.fromkeys((need.server_name, need.host, need.domain)))
            try:
                how = dane.authenticate(need.records, chain, names, dt.datetime.now(dt.UTC))
            except Mismatch as exc:
                client.close()
                raise self._refused(need, "mismatch", str(exc)) from None
            DANE.labels("authenticated").inc()
            log.debug("DANE: MX %s of %s authenticated (%s)", need.host, need.domain, how)
        else:
            DANE.labels("encrypted").inc()
        self.satisfied[client] = need.records
        return client

    def _refused(self, need: Required, event: str, why: str) -> DaneRefused:
        DANE.labels(event).inc()
        log.warning("DANE: MX %s of %s: %s: deferred", need.host, need.domain, why)
        return DaneRefused(f"DANE: {need.host} {why}; not sending in clear")


def peer_chain(ssl_object: ssl.SSLObject | None) -> list[bytes]:
    """The certificates the server presented (DER, leaf first), verified or not. Python
    3.13 has ``SSLObject.get_unverified_chain()``; 3.10 to 3.12 have it on the private
    ``_sslobj`` only. Failing both, the leaf alone (enough for DANE-EE)."""
    if ssl_object is None:
        return []
    getter = getattr(ssl_object, "get_unverified_chain", None) or getattr(
        getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None
    )
    if getter is not None:
        chain = getter() or []
        return [c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER) for c in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []
