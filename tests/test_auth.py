"""Bearer keys over real HTTP: tenants see only themselves, only operators pass operator routes."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from postgate.http.auth import create_key, hash_key
from postgate.store import tables as t
from tests.support import World


def test_keys_and_roles(world: World, api: str) -> None:
    tenant_key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    operator_key = create_key(world.ctx.engine, "operator", "ops")
    with httpx.Client(base_url=api) as http:
        assert http.get("/v1/me").status_code == 401
        assert http.get("/v1/me", headers={"Authorization": "Bearer pg_wrong"}).status_code == 401
        me = http.get("/v1/me", headers={"Authorization": f"Bearer {tenant_key}"})
        assert me.json() | {"profile": None, "sending": None} == {
            "role": "tenant",
            "name": "crm",
            "tenant": world.tenant.slug,
            "profile": None,
            "sending": None,
        }
        assert me.json()["sending"]["status"] == "active"
        denied = http.get("/v1/operator/tenants", headers={"Authorization": f"Bearer {tenant_key}"})
        assert denied.status_code == 403
        listed = http.get(
            "/v1/operator/tenants", headers={"Authorization": f"Bearer {operator_key}"}
        )
        assert listed.status_code == 200
        assert world.tenant.slug in [row["slug"] for row in listed.json()]
    with world.ctx.engine.connect() as conn:
        stored = list(conn.scalars(select(t.api_key.c.key_hash)))
    assert hash_key(tenant_key) in stored and tenant_key not in stored
