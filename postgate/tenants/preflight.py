"""The authentication preflight of a tenant's sender domains (DNS and database I/O).

For a claimed domain it reads DNS and judges (``core/spf.py``, ``core/mail_auth.py``):
SPF (one ``v=spf1`` record that authorises every host of ``SPF_INCLUDE``, within 10 DNS
look-ups), DMARC (a ``v=DMARC1`` record at ``_dmarc.<domain>`` or a parent, with its
``adkim``), DKIM (each active selector publishes our key), and reports MTA-STS
(``_mta-sts``) and TLS-RPT (``_smtp._tls``). The result — when, each check's verdict and
reason, and the exact records to publish — is stored per domain (``domain_preflight``).
Verification runs it, the api and the CLI run it on demand, the sweeper runs it for
verified domains never checked and again once a result is ``PREFLIGHT_INTERVAL_S`` old,
and campaign acceptance checks the tenant's never-checked domains first, then reads the
stored result (a verified domain still without one is refused bulk: fail closed).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from postgate.core import mail_auth, spf
from postgate.core import sender_domains as sd
from postgate.core.clock import aware
from postgate.observability.metrics import PREFLIGHT_CHECKS
from postgate.providers.dns_txt import DnsError, DnsLookup
from postgate.settings import Settings
from postgate.store import tables as t

log = logging.getLogger("postgate.preflight")
sdc, pfc = t.sender_domain.c, t.domain_preflight.c


def platform_hosts(settings: Settings) -> list[spf.Probe]:
    """``SPF_INCLUDE`` parsed; raises ValueError naming a bad entry."""
    return [spf.parse_host(h) for h in settings.spf_include.split(",") if h.strip()]


def _spf(dns: spf.Resolver, domain: str, hosts: list[spf.Probe]) -> tuple[mail_auth.Check, str]:
    """The SPF check and the record to publish."""
    found = spf.spf_records(dns.txt(domain))
    suggested = spf.suggested_record(found[0] if len(found) == 1 else None, hosts)
    if not found:
        return mail_auth.Check("spf", False, f"no v=spf1 TXT record at {domain}"), suggested
    if len(found) > 1:
        reason = f"{domain} publishes {len(found)} v=spf1 records; merge them into one"
        return mail_auth.Check("spf", False, reason, found), suggested
    lookups = 0
    for host in hosts or [spf.IncludeTarget("")]:
        result = spf.check_host(dns, domain, host)
        lookups = max(lookups, result.lookups)
        if result.result == "temperror":
            raise DnsError(result.reason)
        if result.result == "permerror":
            return mail_auth.Check("spf", False, f"permerror: {result.reason}", found), suggested
        if hosts and result.result != "pass":
            reason = (
                f"{spf.mechanism_for(host)} is not authorised "
                f"(SPF {result.result}: {result.reason})"
            )
            return mail_auth.Check("spf", False, reason, found), suggested
    what = "authorises " + ", ".join(map(spf.mechanism_for, hosts)) if hosts else "is valid"
    return mail_auth.Check("spf", True, f"{what} ({lookups} DNS look-ups)", found), found[0]


def _dmarc(dns: spf.Resolver, domain: str) -> tuple[mail_auth.Check, str]:
    """The DMARC check and where the record in force is (or should be) published."""
    for name in mail_auth.dmarc_candidates(domain):
        records = [r for r in dns.txt(name) if r.replace(" ", "").lower().startswith("v=dmarc1")]
        if len(records) > 1:
            reason = f"{name} has {len(records)} DMARC records; one is allowed"
            return mail_auth.Check("dmarc", False, reason), name
        if records:
            check = mail_auth.check_dmarc(name, records[0], domain)
            return check, name if check.passed else f"_dmarc.{domain}"
    return mail_auth.check_dmarc(None, None, domain), f"_dmarc.{domain}"


def _dkim(dns: spf.Resolver, row: Any) -> tuple[mail_auth.Check, list[dict[str, Any]]]:
    m = row._mapping
    keys = [(m["dkim_selector"], m["dkim_public_key"])]
    if m["dkim2_selector"]:
        keys.append((m["dkim2_selector"], m["dkim2_public_key"]))
    missing, records = [], []
    for selector, key in keys:
        name = sd.dkim_name(selector, m["domain"])
        published = sd.dkim_published(dns.txt(name), key)
        records.append(_record(name, key, published, True, "DKIM public key"))
        if not published:
            missing.append(name)
    if missing:
        reason = f"the active DKIM key is not published at {', '.join(missing)}"
        return mail_auth.Check("dkim", False, reason), records
    return mail_auth.Check("dkim", True, f"{len(keys)} selector(s) publish the key"), records


def _record(name: str, value: str, published: bool, required: bool, purpose: str) -> dict[str, Any]:
    return {
        "type": "TXT",
        "name": name,
        "value": value,
        "published": published,
        "required": required,
        "purpose": purpose,
    }


def evaluate(settings: Settings, row: Any, dns: spf.Resolver | None = None) -> dict[str, Any]:
    """Read DNS and judge the domain of ``row`` (a sender_domain row). Raises DnsError when
    a look-up failed (the result would say nothing about the domain)."""
    lookup = dns or DnsLookup(settings)
    domain = row._mapping["domain"]
    try:
        spf_check, spf_value = _spf(lookup, domain, platform_hosts(settings))
        dmarc, dmarc_name = _dmarc(lookup, domain)
        dkim, dkim_records = _dkim(lookup, row)
        mta_sts = mail_auth.check_mta_sts(lookup.txt(f"_mta-sts.{domain}"), domain)
        tls_rpt = mail_auth.check_tls_rpt(lookup.txt(f"_smtp._tls.{domain}"), domain)
    except spf.LookupFailed as exc:
        raise DnsError(str(exc)) from None
    checks = {c.name: c for c in (spf_check, dmarc, dkim, mta_sts, tls_rpt)}
    dmarc_value = dmarc.found[0] if dmarc.passed else "v=DMARC1; p=none; adkim=r; aspf=r"
    records = [
        _record(domain, spf_value, spf_check.passed, True, "SPF: the platform's sending hosts"),
        _record(dmarc_name, dmarc_value, dmarc.passed, True, "DMARC policy"),
        *dkim_records,
        _record(
            f"_mta-sts.{domain}",
            mta_sts.found[0] if mta_sts.passed else "v=STSv1; id=1",
            mta_sts.passed,
            False,
            "MTA-STS (with a policy at https://mta-sts.<domain>/.well-known/mta-sts.txt)",
        ),
        _record(
            f"_smtp._tls.{domain}",
            tls_rpt.found[0] if tls_rpt.passed else f"v=TLSRPTv1; rua=mailto:tlsrpt@{domain}",
            tls_rpt.passed,
            False,
            "TLS-RPT: where receivers report TLS failures",
        ),
    ]
    return {
        "domain": domain,
        "passed": mail_auth.passed(checks),
        "checks": {name: c.as_json() for name, c in checks.items()},
        "records": records,
    }


def _row(conn: Connection, tenant_id: int, domain: str) -> Any:
    return conn.execute(
        select(t.sender_domain).where(sdc.tenant_id == tenant_id, sdc.domain == domain)
    ).first()


def run(
    engine: Engine, settings: Settings, tenant_id: int, domain: str, now: datetime, tenant: str = ""
) -> dict[str, Any]:
    """Check a claimed domain now and store the result. Raises LookupError for a domain the
    tenant never claimed, DnsError when DNS did not answer (nothing is stored then)."""
    name = sd.normalise(domain)
    with engine.connect() as conn:
        row = _row(conn, tenant_id, name)
    if row is None:
        raise LookupError(f"domain {name!r} is not claimed by this tenant")
    result = evaluate(settings, row)
    values = {
        "tenant_id": tenant_id,
        "domain": name,
        "checked_at": now,
        "passed": result["passed"],
        "checks": result["checks"],
        "records": result["records"],
    }
    refresh = update(t.domain_preflight).where(pfc.sender_domain_id == row.id).values(**values)
    with engine.begin() as conn:
        if not conn.execute(refresh).rowcount:
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(t.domain_preflight).values(sender_domain_id=row.id, **values)
                    )
            except IntegrityError:  # another sweeper stored one first: ours is as new
                conn.execute(refresh)
    for check, verdict in result["checks"].items():
        outcome = "pass" if verdict["passed"] else "fail"
        PREFLIGHT_CHECKS.labels(tenant or str(tenant_id), check, outcome).inc()
    failing = [c for c in mail_auth.CHECKS if not result["checks"][c]["passed"]]
    log.log(
        logging.WARNING if failing else logging.INFO,
        "preflight of %s for tenant %s: %s",
        name,
        tenant or tenant_id,
        f"fails {', '.join(failing)}" if failing else "passes",
    )
    return {**result, "checked_at": now.isoformat()}


def _describe(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "domain": m["domain"],
        "checked_at": aware(m["checked_at"]).isoformat(),
        "passed": m["passed"],
        "checks": m["checks"],
        "records": m["records"],
    }


def stored(conn: Connection, tenant_id: int, domain: str) -> dict[str, Any] | None:
    """The latest stored result for a domain, or None when it was never checked."""
    row = conn.execute(
        select(t.domain_preflight).where(
            pfc.tenant_id == tenant_id, pfc.domain == sd.normalise(domain)
        )
    ).first()
    return _describe(row) if row is not None else None


def refusal(conn: Connection, tenant_id: int, from_domain: str) -> str | None:
    """Why bulk mail From ``from_domain`` must be refused: the verified domain covering it
    failed its latest preflight or was never checked (DNS did not answer: fail closed), or
    the From is not DKIM-aligned under its DMARC ``adkim``. None when it may go."""
    covering = sd.covering(from_domain, _verified(conn, tenant_id))
    if covering is None:
        return None
    result = stored(conn, tenant_id, covering)
    if result is None:
        return (
            f"domain {covering!r} has no authentication preflight result yet (DNS did not "
            f"answer); check it with POST /v1/domains/{covering}/preflight and send again"
        )
    return mail_auth.refusal(result, from_domain)


def unchecked(conn: Connection, tenant_id: int | None = None, limit: int = 100) -> list[Any]:
    """Verified domains (of one tenant, or of all) that have no preflight result yet:
    (tenant id, domain, tenant slug) rows."""
    query = (
        select(sdc.tenant_id, sdc.domain, t.tenant.c.slug)
        .join(t.tenant, t.tenant.c.id == sdc.tenant_id)
        .outerjoin(t.domain_preflight, pfc.sender_domain_id == sdc.id)
        .where(sdc.verified_at.is_not(None), pfc.sender_domain_id.is_(None))
        .order_by(sdc.id)
        .limit(limit)
    )
    if tenant_id is not None:
        query = query.where(sdc.tenant_id == tenant_id)
    return list(conn.execute(query))


def _check_all(engine: Engine, settings: Settings, rows: list[Any], now: datetime) -> int:
    done = 0
    for tenant_id, domain, slug in rows:
        try:
            run(engine, settings, tenant_id, domain, now, slug)
            done += 1
        except (DnsError, LookupError) as exc:
            log.warning("preflight of %s for tenant %s not checked: %s", domain, slug, exc)
    return done


def first_checks(engine: Engine, settings: Settings, tenant: str, now: datetime) -> int:
    """Check the tenant's verified domains that were never checked (a primary domain the
    operator vouched for, a domain verified before the preflight existed): campaign
    acceptance calls this first, so such a domain is judged instead of waved through."""
    with engine.connect() as conn:
        tenant_id = conn.scalar(select(t.tenant.c.id).where(t.tenant.c.slug == tenant))
        rows = [] if tenant_id is None else unchecked(conn, tenant_id)
    return _check_all(engine, settings, rows, now)


def _verified(conn: Connection, tenant_id: int) -> list[str]:
    return list(
        conn.scalars(
            select(sdc.domain).where(sdc.tenant_id == tenant_id, sdc.verified_at.is_not(None))
        )
    )


def recheck_due(engine: Engine, settings: Settings, now: datetime) -> int:
    """Check every verified domain that was never checked, and again every one whose
    stored result is ``PREFLIGHT_INTERVAL_S`` old; a domain DNS did not answer for keeps
    its result (or stays unchecked) and is tried next time."""
    cutoff = now - timedelta(seconds=settings.preflight_interval_s)
    with engine.connect() as conn:
        due = unchecked(conn) + list(
            conn.execute(
                select(pfc.tenant_id, pfc.domain, t.tenant.c.slug)
                .join(t.sender_domain, sdc.id == pfc.sender_domain_id)
                .join(t.tenant, t.tenant.c.id == pfc.tenant_id)
                .where(pfc.checked_at < cutoff, sdc.verified_at.is_not(None))
                .order_by(pfc.checked_at)
                .limit(100)
            )
        )
    return _check_all(engine, settings, due, now)
