"""DNS look-ups (dnspython) for domain verification and the authentication preflight,
with a timeout and an optional resolver address (``DNS_RESOLVER=host:port``)."""

from __future__ import annotations

import dns.exception
import dns.rdata
import dns.resolver

from postgate.core.spf import LookupFailed
from postgate.settings import Settings


class DnsError(RuntimeError):
    """The look-up itself failed (timeout, no server answered); try again later."""


def resolver(settings: Settings) -> dns.resolver.Resolver:
    if not settings.dns_resolver:
        res = dns.resolver.Resolver()
    else:
        host, _, port = settings.dns_resolver.rpartition(":")
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [host or settings.dns_resolver]
        res.port = int(port) if host else 53
    res.lifetime = settings.dns_timeout_s
    res.timeout = settings.dns_timeout_s
    return res


def txt_records(name: str, settings: Settings) -> list[str]:
    """The TXT strings at ``name`` (each record's parts joined); [] when there are none."""
    try:
        answer = resolver(settings).resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise DnsError(f"TXT look-up of {name} failed: {exc}") from None
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


class DnsLookup:
    """TXT, address (A and AAAA) and MX look-ups through one configured resolver, as the
    SPF evaluator (``core/spf.py``) asks for them; a failed look-up raises
    :class:`postgate.core.spf.LookupFailed` (SPF's temperror)."""

    def __init__(self, settings: Settings) -> None:
        self.res = resolver(settings)

    def _answer(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        try:
            return list(self.res.resolve(name, rdtype))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"{rdtype} look-up of {name} failed: {exc}") from None

    def txt(self, name: str) -> list[str]:
        return [
            b"".join(r.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
            for r in self._answer(name, "TXT")
        ]

    def addresses(self, name: str) -> list[str]:
        return [r.to_text() for kind in ("A", "AAAA") for r in self._answer(name, kind)]

    def mx(self, name: str) -> list[str]:
        answers = sorted(self._answer(name, "MX"), key=lambda r: r.preference)  # type: ignore[attr-defined]
        return [r.exchange.to_text().rstrip(".").lower() for r in answers]  # type: ignore[attr-defined]
