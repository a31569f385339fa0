"""DNS TXT look-ups (dnspython) for domain verification, with a timeout and an optional
resolver address (``DNS_RESOLVER=host:port``)."""

from __future__ import annotations

import dns.exception
import dns.resolver

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
