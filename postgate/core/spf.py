"""A small SPF evaluator (RFC 7208), pure: DNS answers come from an injected resolver.

It answers the question the authentication preflight asks of a tenant's domain: does its
``v=spf1`` record authorise the platform's sending hosts? A host is either an IP address
or network (``203.0.113.7``, ``2001:db8::/32``), evaluated as ``check_host`` would, or an
``include:`` target (``include:_spf.postgate.example``), which the record authorises when
evaluation reaches that include with a pass qualifier before anything else decides.

Supported: ``all``, ``include``, ``a``, ``mx``, ``ip4``, ``ip6``, ``exists`` (without
macros) and ``redirect=``; ``ptr`` is counted but never matches (RFC 7208 §5.5 says not
to use it); a term with a macro (``%{...}``) does not match. At most 10 terms that cause
DNS look-ups and 2 void look-ups per evaluation, else ``permerror`` (§4.6.4).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists")
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class LookupFailed(Exception):
    """A DNS look-up failed for a reason other than "no such record" (SPF temperror)."""


class Resolver(Protocol):
    """The look-ups SPF needs; each returns [] when the name or record type is absent."""

    def txt(self, name: str) -> list[str]: ...

    def addresses(self, name: str) -> list[str]: ...

    def mx(self, name: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class IncludeTarget:
    """The probe for "does the record include this domain": matches only ``include:`` it."""

    domain: str


Probe = IpAddress | IncludeTarget


class _PermError(Exception):
    pass


def spf_records(records: Sequence[str]) -> list[str]:
    """The TXT strings that are SPF records (``v=spf1`` alone or followed by a space)."""
    return [r for r in records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]


def parse_host(spec: str) -> Probe:
    """``include:DOMAIN``, an IP address or an IP network (its first address is tested).

    Raises ValueError for anything else."""
    text = spec.strip()
    if text.lower().startswith("include:"):
        domain = text[8:].strip().lower().rstrip(".")
        if not domain or "." not in domain:
            raise ValueError(f"SPF host {spec!r}: include needs a domain")
        return IncludeTarget(domain)
    for prefix in ("ip4:", "ip6:"):
        if text.lower().startswith(prefix):
            text = text[4:]
    try:
        return ipaddress.ip_network(text, strict=False).network_address
    except ValueError:
        raise ValueError(f"SPF host {spec!r} is neither include:DOMAIN nor an IP address") from None


def mechanism_for(probe: Probe) -> str:
    """The term that authorises ``probe`` in a record to publish."""
    if isinstance(probe, IncludeTarget):
        return f"include:{probe.domain}"
    return f"ip{probe.version}:{probe}"


@dataclass
class Evaluation:
    """One ``check_host`` run: its result and the DNS terms it spent."""

    result: str  # pass | fail | softfail | neutral | none | permerror | temperror
    reason: str
    lookups: int = 0


class _Run:
    def __init__(self, resolver: Resolver, probe: Probe) -> None:
        self.resolver = resolver
        self.probe = probe
        self.lookups = 0
        self.voids = 0

    def spend(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _PermError(f"more than {MAX_LOOKUPS} DNS look-ups (RFC 7208 §4.6.4)")

    def void(self, answers: list[str]) -> list[str]:
        if not answers:
            self.voids += 1
            if self.voids > MAX_VOID_LOOKUPS:
                raise _PermError(f"more than {MAX_VOID_LOOKUPS} void DNS look-ups")
        return answers

    def record(self, domain: str) -> str | None:
        found = spf_records(self.resolver.txt(domain))
        if len(found) > 1:
            raise _PermError(f"{domain} publishes {len(found)} SPF records; one is allowed")
        return found[0] if found else None

    def check(self, domain: str) -> tuple[str, str]:
        """(result, reason) of ``check_host(probe, domain)``."""
        record = self.record(domain)
        if record is None:
            return "none", f"no v=spf1 record at {domain}"
        redirect = None
        for term in record.split()[1:]:
            if "=" in term and ":" not in term.split("=", 1)[0]:
                key, value = term.split("=", 1)
                if key.lower() == "redirect":
                    redirect = value.lower().rstrip(".")
                continue
            qualifier = QUALIFIERS.get(term[0])
            name = term[1:] if qualifier else term
            if self.matches(name, domain):
                verdict = qualifier or "pass"
                return verdict, f"{term!r} in the record of {domain}"
        if redirect is not None:
            self.spend()
            result, reason = self.check(redirect)
            if result == "none":
                raise _PermError(f"redirect={redirect} has no SPF record")
            return result, reason
        return "neutral", f"nothing in the record of {domain} matched"

    def matches(self, term: str, domain: str) -> bool:
        kind, _, arg = term.partition(":")
        kind, cidr = kind.split("/", 1) if "/" in kind and not arg else (kind, "")
        kind = kind.lower()
        if kind in LOOKUP_TERMS:
            self.spend()
        if "%" in arg:
            return False  # macros are not expanded: the term cannot be judged, so no match
        if kind == "all":
            return True
        if kind == "include":
            target = arg.lower().rstrip(".")
            if not target:
                raise _PermError("include without a domain")
            if isinstance(self.probe, IncludeTarget) and target == self.probe.domain:
                return True
            result, reason = self.check(target)
            if result == "none":
                raise _PermError(f"include:{target} has no SPF record")
            if result in ("permerror", "temperror"):
                raise _PermError(reason)
            return result == "pass"
        if kind in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(arg, strict=False)
            except ValueError:
                raise _PermError(f"bad {kind} term {term!r}") from None
            return isinstance(self.probe, IpAddress) and self.probe in network
        if kind in ("a", "mx"):
            host, _, cidr_arg = arg.partition("/")
            target = (host or domain).lower().rstrip(".")
            if isinstance(self.probe, IncludeTarget):
                return False
            hosts = [target] if kind == "a" else self.void(self.resolver.mx(target))[:10]
            prefix = cidr or cidr_arg
            for name in hosts:
                for address in self.void(self.resolver.addresses(name)):
                    if _within(self.probe, address, prefix):
                        return True
            return False
        if kind == "exists":
            if isinstance(self.probe, IncludeTarget):
                return False
            return bool(self.void(self.resolver.addresses(arg.lower().rstrip("."))))
        if kind == "ptr":
            return False
        raise _PermError(f"unknown SPF term {term!r}")


def _within(probe: IpAddress, address: str, prefix: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version != probe.version:
        return False
    bits: int = ip.max_prefixlen
    if prefix:
        parts = prefix.split("/")  # "24", or "24//64" for both families
        chosen = parts[0] if ip.version == 4 else (parts[-1] if len(parts) > 1 else "")
        bits = int(chosen) if chosen.isdigit() else bits
    return probe in ipaddress.ip_network(f"{ip}/{bits}", strict=False)


def check_host(resolver: Resolver, domain: str, probe: Probe) -> Evaluation:
    """The SPF result for ``probe`` (an IP address, or an include target) at ``domain``."""
    run = _Run(resolver, probe)
    try:
        result, reason = run.check(domain.lower().rstrip("."))
    except _PermError as exc:
        return Evaluation("permerror", str(exc), run.lookups)
    except LookupFailed as exc:
        return Evaluation("temperror", str(exc), run.lookups)
    return Evaluation(result, reason, run.lookups)


def suggested_record(existing: str | None, probes: Sequence[Probe]) -> str:
    """The record to publish: the existing one with the missing terms added before its
    ``all``/``redirect`` (or a new ``v=spf1 … -all``)."""
    wanted = [mechanism_for(p) for p in probes]
    if existing is None:
        return " ".join(["v=spf1", *wanted, "-all"])
    terms = existing.split()[1:]
    missing = [w for w in wanted if w.lower() not in (t.lower().lstrip("+") for t in terms)]
    tail = [t for t in terms if t.lower().lstrip("+-~?") == "all" or t.lower()[:9] == "redirect="]
    head = [t for t in terms if t not in tail]
    return " ".join(["v=spf1", *head, *missing, *(tail or ["-all"])])
