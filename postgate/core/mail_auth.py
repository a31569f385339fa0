"""Judging a sending domain's published authentication (pure): DMARC records and From
alignment, MTA-STS and TLS-RPT presence, and the preflight verdict that bulk campaigns
need. The DNS answers are gathered by ``tenants/preflight.py``.

Mail leaves with the return path at ``BOUNCE_DOMAIN``, so SPF never aligns with a tenant's
From: DMARC passes through the DKIM signature (``d=`` the tenant's verified domain). A From
at that domain or one of its subdomains is always aligned in relaxed mode (the same
organisational domain); ``adkim=s`` requires the From domain to be exactly ``d=``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DMARC_POLICIES = ("none", "quarantine", "reject")
CHECKS = ("spf", "dmarc", "dkim")  # required for bulk mail
REPORTED = ("mta_sts", "tls_rpt")  # shown, not required


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    reason: str
    found: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "found": self.found}


def tags(record: str) -> dict[str, str]:
    """``k=v; k=v`` tag lists (DMARC, DKIM, MTA-STS, TLS-RPT), keys lower-cased."""
    pairs = (part.split("=", 1) for part in record.split(";") if "=" in part)
    return {k.strip().lower(): v.strip() for k, v in pairs}


def dmarc_candidates(domain: str) -> list[str]:
    """Where a DMARC policy for ``domain`` may live, nearest first: the DNS tree walk of
    DMARCbis (the domain, then each parent above the top-level domain, at most 8 names),
    which finds the organisational domain's record without a public-suffix list."""
    labels = domain.lower().rstrip(".").split(".")
    names = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    if len(names) > 8:
        names = names[:7] + names[-1:]
    return [f"_dmarc.{n}" for n in names]


def dmarc_record(records: Iterable[str]) -> str | None:
    found = [r for r in records if r.replace(" ", "").lower().startswith("v=dmarc1")]
    return found[0] if len(found) == 1 else None


def aligned(from_domain: str, signing_domain: str, adkim: str) -> bool:
    """DKIM alignment of a From domain with the signature's ``d=`` (RFC 7489 §3.1.1).
    ``from_domain`` is the signing domain or below it (the sender checks so)."""
    f, d = from_domain.lower().rstrip("."), signing_domain.lower().rstrip(".")
    if adkim == "s":
        return f == d
    return f == d or f.endswith("." + d)


def check_dmarc(name: str | None, record: str | None, domain: str) -> Check:
    """``record`` is the one found at ``name`` by the tree walk (None: none found)."""
    if record is None or name is None:
        return Check("dmarc", False, f"no v=DMARC1 TXT record at _dmarc.{domain} or a parent")
    t = tags(record)
    policy = t.get("p", "").lower()
    if policy not in DMARC_POLICIES:
        return Check("dmarc", False, f"{name}: p= must be none, quarantine or reject", [record])
    adkim = t.get("adkim", "r").lower()
    if adkim not in ("r", "s"):
        return Check("dmarc", False, f"{name}: adkim= must be r or s", [record])
    note = " (monitoring only: receivers are not asked to act)" if policy == "none" else ""
    return Check("dmarc", True, f"{name}: p={policy}, adkim={adkim}{note}", [record])


def dmarc_adkim(check: Mapping[str, Any]) -> str:
    """The alignment mode of a stored DMARC check (``r`` when unknown)."""
    found = check.get("found") or []
    return tags(found[0]).get("adkim", "r").lower() if found else "r"


def check_mta_sts(records: list[str], domain: str) -> Check:
    found = [r for r in records if tags(r).get("v") == "STSv1"]
    if len(found) == 1 and tags(found[0]).get("id"):
        return Check("mta_sts", True, f"_mta-sts.{domain}: id={tags(found[0])['id']}", found)
    return Check("mta_sts", False, f"no v=STSv1 TXT record with an id at _mta-sts.{domain}")


def check_tls_rpt(records: list[str], domain: str) -> Check:
    found = [r for r in records if tags(r).get("v") == "TLSRPTv1" and tags(r).get("rua")]
    if found:
        return Check("tls_rpt", True, f"_smtp._tls.{domain}: rua={tags(found[0])['rua']}", found)
    return Check("tls_rpt", False, f"no v=TLSRPTv1 TXT record with rua= at _smtp._tls.{domain}")


def passed(checks: Mapping[str, Check]) -> bool:
    return all(checks[name].passed for name in CHECKS if name in checks)


def refusal(result: Mapping[str, Any], from_domain: str) -> str | None:
    """Why a bulk campaign From ``from_domain`` may not go out under a stored preflight
    ``result`` (``{"domain", "passed", "checks"}``), or None when it may."""
    domain = result["domain"]
    checks = result["checks"]
    failing = [f"{n}: {checks[n]['reason']}" for n in CHECKS if not checks[n]["passed"]]
    if failing:
        return f"domain {domain!r} fails the authentication preflight ({'; '.join(failing)})"
    adkim = dmarc_adkim(checks["dmarc"])
    if not aligned(from_domain, domain, adkim):
        return (
            f"From domain {from_domain!r} is not aligned with the DKIM signing domain "
            f"{domain!r} under DMARC adkim={adkim} (strict: they must be equal)"
        )
    return None
