"""Api authentication: bearer keys with a role, stored hashed.

``require_tenant`` gives a route the caller's tenant (and nothing else: every query a
tenant route makes is scoped by it); ``require_operator`` admits platform operators.
A tenant key never passes ``require_operator``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine, insert, select

from postgate.core.clock import utcnow
from postgate.store import tables as t
from postgate.tenants import slugs as tenants

KEY_PREFIX = "pg_"


@dataclass(frozen=True, slots=True)
class Principal:
    role: str  # tenant | operator
    name: str
    tenant_id: int | None = None
    tenant_slug: str | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, role: str, name: str, tenant_slug: str | None = None) -> str:
    """Make a key (256 random bits) and return it; only its hash is kept."""
    if role not in ("tenant", "operator"):
        raise ValueError("role must be tenant or operator")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        tenant_id = None
        if role == "tenant":
            tenant_id = tenants.id_of(conn, tenant_slug or "")
            if tenant_id is None:
                raise ValueError(f"unknown tenant {tenant_slug!r}")
        conn.execute(
            insert(t.api_key).values(
                tenant_id=tenant_id,
                role=role,
                name=name,
                key_hash=hash_key(key),
                created_at=utcnow(),
            )
        )
    return key


def lookup(engine: Engine, key: str) -> Principal | None:
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    k, tn = t.api_key.c, t.tenant.c
    with engine.connect() as conn:
        row = conn.execute(
            select(k.role, k.name, k.tenant_id, tn.slug)
            .outerjoin(t.tenant, tn.id == k.tenant_id)
            .where(k.key_hash == hash_key(key), k.revoked_at.is_(None))
        ).first()
    return Principal(row[0], row[1], row[2], row[3]) if row else None


def authenticated(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise HTTPException(401, "missing bearer key", headers={"WWW-Authenticate": "Bearer"})
    principal = lookup(request.app.state.engine, key.strip())
    if principal is None:
        raise HTTPException(401, "invalid key", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require_tenant(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    if principal.role != "tenant" or principal.tenant_id is None:
        raise HTTPException(403, "a tenant key is required")
    return principal


def require_operator(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    if principal.role != "operator":
        raise HTTPException(403, "an operator key is required")
    return principal


TenantUser = Annotated[Principal, Depends(require_tenant)]
Operator = Annotated[Principal, Depends(require_operator)]
