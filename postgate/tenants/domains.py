"""Claiming, verifying and looking up a tenant's sender domains (database and DNS I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from postgate.core import sender_domains as sd
from postgate.core.dkim_signing import ALGORITHMS, DkimKey, generate
from postgate.core.warmup import WarmupState
from postgate.providers.dns_txt import DnsError, txt_records
from postgate.settings import Settings
from postgate.store import tables as t

sdc = t.sender_domain.c


def describe(row: Any) -> dict[str, Any]:
    """What a tenant sees: the state, and the DNS records to publish (the ownership token
    and each DKIM key)."""
    m = row._mapping
    second = (
        [
            {
                "type": "TXT",
                "name": sd.dkim_name(m["dkim2_selector"], m["domain"]),
                "value": m["dkim2_public_key"],
            }
        ]
        if m["dkim2_selector"]
        else []
    )
    return {
        "domain": m["domain"],
        "verified": m["verified_at"] is not None,
        "verified_at": m["verified_at"].isoformat() if m["verified_at"] else None,
        "last_error": m["last_error"],
        "dns": [
            {"type": "TXT", "name": sd.txt_name(m["domain"]), "value": sd.txt_value(m["token"])},
            {
                "type": "TXT",
                "name": sd.dkim_name(m["dkim_selector"], m["domain"]),
                "value": m["dkim_public_key"],
            },
            *second,
        ],
        "dkim": {"selector": m["dkim_selector"], "algorithm": m["dkim_algorithm"]},
        "warmup": {
            "state": m["warmup_state"],
            "stage": m["warmup_stage"],
            "reason": m["warmup_reason"],
        },
        **(
            {"dkim2": {"selector": m["dkim2_selector"], "algorithm": m["dkim2_algorithm"]}}
            if second
            else {}
        ),
    }


def _row(conn: Connection, tenant_id: int, domain: str) -> Any:
    return conn.execute(
        select(t.sender_domain).where(sdc.tenant_id == tenant_id, sdc.domain == domain)
    ).first()


def add(
    engine: Engine, tenant_id: int, domain: str, algorithm: str, now: datetime, dual: bool = False
) -> Any:
    """Claim ``domain`` for the tenant (again: the same claim), with a fresh DKIM key, and
    with ``dual`` a second one of the other algorithm (RFC 8463 dual signing)."""
    with engine.begin() as conn:
        return claim(conn, tenant_id, domain, algorithm, now, dual)


def claim(
    conn: Connection, tenant_id: int, domain: str, algorithm: str, now: datetime, dual: bool
) -> Any:
    """``add`` inside the caller's transaction."""
    name = sd.normalise(domain)
    row = _row(conn, tenant_id, name)
    if row is not None:
        return row
    private, public = generate(algorithm)
    selector = sd.new_selector(now)
    second: dict[str, str] = {}
    if dual:
        other = next(a for a in ALGORITHMS if a != algorithm)
        private2, public2 = generate(other)
        second = {
            "dkim2_selector": f"{selector}{other.split('-')[0][:2]}",
            "dkim2_algorithm": other,
            "dkim2_private_key": private2,
            "dkim2_public_key": public2,
        }
    conn.execute(
        insert(t.sender_domain).values(
            tenant_id=tenant_id,
            domain=name,
            token=sd.new_token(),
            last_error="",
            dkim_selector=selector,
            dkim_algorithm=algorithm,
            dkim_private_key=private,
            dkim_public_key=public,
            created_at=now,
            **second,
        )
    )
    return _row(conn, tenant_id, name)


def vouch(conn: Connection, settings: Settings, tenant_id: int, domain: str, now: datetime) -> Any:
    """Claim a tenant's primary domain as verified: the operator who provisions the tenant
    vouches for its ownership, so no token look-up. It gets a DKIM key like any sender
    domain (its mail is signed), starts its warm-up, and is judged by the preflight."""
    row = claim(conn, tenant_id, domain, settings.dkim_algorithm, now, settings.dkim_dual)
    if row.verified_at is not None:
        return row
    values: dict[str, Any] = {"verified_at": now, "checked_at": now, "last_error": ""}
    if settings.warmup_enabled:
        values |= {
            "warmup_state": WarmupState.WARMING,
            "warmup_stage": 0,
            "warmup_reviewed_at": now,
        }
    conn.execute(update(t.sender_domain).where(sdc.id == row.id).values(**values))
    return _row(conn, tenant_id, row.domain)


def listing(engine: Engine, tenant_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(t.sender_domain).where(sdc.tenant_id == tenant_id).order_by(sdc.domain)
            )
        )


def verify(
    engine: Engine, settings: Settings, tenant_id: int, domain: str, now: datetime
) -> tuple[Any, bool]:
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
        dkim_ok = all(
            sd.dkim_published(txt_records(sd.dkim_name(sel, name), settings), key)
            for sel, key in (
                (m["dkim_selector"], m["dkim_public_key"]),
                (m["dkim2_selector"], m["dkim2_public_key"]),
            )
            if sel
        )
    except DnsError:
        dkim_ok = False
    values: dict[str, Any] = {"checked_at": now}
    if found:
        values |= {"verified_at": m["verified_at"] or now, "last_error": ""}
        if m["verified_at"] is None and settings.warmup_enabled:  # a new domain: its ramp
            values |= {
                "warmup_state": WarmupState.WARMING,
                "warmup_stage": 0,
                "warmup_reviewed_at": now,
            }
    else:
        values["last_error"] = f"no TXT record {sd.txt_value(m['token'])!r} at {sd.txt_name(name)}"
    with engine.begin() as conn:
        conn.execute(update(t.sender_domain).where(sdc.id == m["id"]).values(**values))
        return _row(conn, tenant_id, name), dkim_ok


def verified(conn: Connection, tenant_id: int) -> list[str]:
    return list(
        conn.scalars(
            select(sdc.domain).where(sdc.tenant_id == tenant_id, sdc.verified_at.is_not(None))
        )
    )


def signing_keys(conn: Connection, tenant_id: int, from_email: str) -> list[DkimKey]:
    """The DKIM keys (one, or two when dual) of the verified domain that covers
    ``from_email``; none when no verified domain does."""
    rows = {
        r.domain: r
        for r in conn.execute(
            select(
                sdc.domain,
                sdc.dkim_selector,
                sdc.dkim_algorithm,
                sdc.dkim_private_key,
                sdc.dkim2_selector,
                sdc.dkim2_algorithm,
                sdc.dkim2_private_key,
            ).where(sdc.tenant_id == tenant_id, sdc.verified_at.is_not(None))
        )
    }
    domain = sd.covering(from_email.rpartition("@")[2], rows)
    if domain is None:
        return []
    r = rows[domain]
    keys = [DkimKey(r.domain, r.dkim_selector, r.dkim_algorithm, r.dkim_private_key.encode())]
    if r.dkim2_selector:
        keys.append(
            DkimKey(r.domain, r.dkim2_selector, r.dkim2_algorithm, r.dkim2_private_key.encode())
        )
    return keys
