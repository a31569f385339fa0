"""Claiming, verifying and looking up a tenant's sender domains (database and DNS I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from postgate import tables as t
from postgate.delivery import sender_domains as sd
from postgate.delivery.dkim_signing import DkimKey, generate
from postgate.providers.dns_txt import DnsError, txt_records
from postgate.settings import Settings

sdc = t.sender_domain.c


def describe(row: Any) -> dict[str, Any]:
    """What a tenant sees: the state, and the two DNS records to publish."""
    m = row._mapping
    return {
        "domain": m["domain"],
        "verified": m["verified_at"] is not None,
        "verified_at": m["verified_at"].isoformat() if m["verified_at"] else None,
        "last_error": m["last_error"],
        "dns": [
            {"type": "TXT", "name": sd.txt_name(m["domain"]), "value": sd.txt_value(m["token"])},
            {"type": "TXT", "name": sd.dkim_name(m["dkim_selector"], m["domain"]),
             "value": m["dkim_public_key"]},
        ],
        "dkim": {"selector": m["dkim_selector"], "algorithm": m["dkim_algorithm"]},
    }


def _row(conn: Connection, tenant_id: int, domain: str) -> Any:
    return conn.execute(
        select(t.sender_domain).where(sdc.tenant_id == tenant_id, sdc.domain == domain)
    ).first()


def add(engine: Engine, tenant_id: int, domain: str, algorithm: str, now: datetime) -> Any:
    """Claim ``domain`` for the tenant (again: the same claim), with a fresh DKIM key."""
    name = sd.normalise(domain)
    with engine.begin() as conn:
        row = _row(conn, tenant_id, name)
        if row is not None:
            return row
        private, public = generate(algorithm)
        conn.execute(insert(t.sender_domain).values(
            tenant_id=tenant_id, domain=name, token=sd.new_token(), last_error="",
            dkim_selector=sd.new_selector(now), dkim_algorithm=algorithm,
            dkim_private_key=private, dkim_public_key=public, created_at=now))
        return _row(conn, tenant_id, name)


def listing(engine: Engine, tenant_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(t.sender_domain).where(sdc.tenant_id == tenant_id).order_by(sdc.domain)))


def verify(engine: Engine, settings: Settings, tenant_id: int, domain: str,
           now: datetime) -> tuple[Any, bool]:
    """Look the token up in DNS; record the outcome. Returns (row, dkim key published).

    Raises LookupError for a domain the tenant never claimed and DnsError when DNS
    did not answer (nothing is recorded then: it says nothing about the domain)."""
    name = sd.normalise(domain)
    with engine.connect() as conn:
        row = _row(conn, tenant_id, name)
    if row is None:
        raise LookupError(f"domain {name!r} is not claimed by this tenant")
    m = row._mapping
    records = txt_records(sd.txt_name(name), settings)
    found = sd.token_published(records, m["token"])
    try:
        dkim_ok = sd.dkim_published(
            txt_records(sd.dkim_name(m["dkim_selector"], name), settings), m["dkim_public_key"])
    except DnsError:
        dkim_ok = False
    values: dict[str, Any] = {"checked_at": now}
    if found:
        values |= {"verified_at": m["verified_at"] or now, "last_error": ""}
    else:
        values["last_error"] = (f"no TXT record {sd.txt_value(m['token'])!r} "
                                f"at {sd.txt_name(name)}")
    with engine.begin() as conn:
        conn.execute(update(t.sender_domain).where(sdc.id == m["id"]).values(**values))
        return _row(conn, tenant_id, name), dkim_ok


def verified(conn: Connection, tenant_id: int) -> list[str]:
    return list(conn.scalars(select(sdc.domain).where(
        sdc.tenant_id == tenant_id, sdc.verified_at.is_not(None))))


def signing_key(conn: Connection, tenant_id: int, from_email: str) -> DkimKey | None:
    """The DKIM key of the verified domain that covers ``from_email``, if there is one."""
    rows = {r.domain: r for r in conn.execute(select(
        sdc.domain, sdc.dkim_selector, sdc.dkim_algorithm, sdc.dkim_private_key).where(
        sdc.tenant_id == tenant_id, sdc.verified_at.is_not(None)))}
    domain = sd.covering(from_email.rpartition("@")[2], rows)
    if domain is None:
        return None
    r = rows[domain]
    return DkimKey(r.domain, r.dkim_selector, r.dkim_algorithm, r.dkim_private_key.encode())
