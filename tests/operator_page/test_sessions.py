"""The operator page over real HTTP: only operator keys log in, the session cookie is
HttpOnly and SameSite=Strict, forms need the CSRF token and this site's Origin, logout
and key revocation end the session, and the kill switch forms act like the api."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from postgate.core.clock import utcnow
from postgate.http.auth import create_key, hash_key
from postgate.operator_page import sessions
from postgate.store import tables as t
from tests.operator_page.background import seed_history
from tests.support import World


def login(http: httpx.Client, key: str) -> httpx.Response:
    return http.post(
        "/operator/login", data={"key": key}, headers={"Origin": str(http.base_url).rstrip("/")}
    )


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def test_only_operator_keys_log_in(world: World, api: str) -> None:
    engine = world.ctx.engine
    tenant_key = create_key(engine, "tenant", "crm", world.tenant.slug)
    with httpx.Client(base_url=api, timeout=10) as http:
        first = http.get("/operator")
        assert first.status_code == 303 and first.headers["location"] == "/operator/login"
        assert http.get("/operator/panels").status_code == 401
        refused = login(http, tenant_key)
        assert refused.status_code == 403 and "tenant keys cannot" in refused.text
        assert sessions.COOKIE not in refused.cookies
        assert login(http, "pg_not-a-key").status_code == 401
        assert http.get("/operator/login").status_code == 200
        # a bearer operator key is not a browser session
        ops_key = create_key(engine, "operator", "alice")
        assert (
            http.get("/operator", headers={"Authorization": f"Bearer {ops_key}"}).status_code == 303
        )
        forged = http.post(
            "/operator/login", data={"key": ops_key}, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403 and sessions.COOKIE not in forged.cookies

        reply = login(http, ops_key)
        assert reply.status_code == 303 and reply.headers["location"] == "/operator"
        cookie = reply.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/operator" in cookie
        token = reply.cookies[sessions.COOKIE]
        with engine.connect() as conn:  # only the hash is stored
            stored = conn.scalar(select(t.operator_session.c.token_hash))
        assert stored != token and len(token) >= 43
        with engine.begin() as conn:  # tenant-controlled text is escaped
            conn.execute(
                update(t.tenant)
                .where(t.tenant.c.id == world.tenant_id)
                .values(name="<script>alert(1)</script>")
            )
        page = http.get("/operator")
        assert page.status_code == 200 and world.tenant.slug in page.text and "alice" in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "<script>alert" not in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert http.get("/operator/static/page.js").status_code == 200
        panels = http.get("/operator/panels")
        assert panels.status_code == 200 and f'data-tenant="{world.tenant.slug}"' in panels.text

        csrf = csrf_of(page.text)
        assert (
            http.post(
                "/operator/logout", data={"csrf": "0" * 64}, headers={"Origin": api}
            ).status_code
            == 403
        )
        out = http.post("/operator/logout", data={"csrf": csrf}, headers={"Origin": api})
        assert out.status_code == 303 and out.headers["location"] == "/operator/login"
        http.cookies.set(sessions.COOKIE, token, path="/operator")  # a stolen old cookie
        assert http.get("/operator").status_code == 303
        assert http.get("/operator/panels").status_code == 401


def test_a_revoked_key_or_an_expired_session_ends_the_login(world: World, api: str) -> None:
    engine = world.ctx.engine
    key = create_key(engine, "operator", "bob")
    with httpx.Client(base_url=api, timeout=10) as http:
        assert login(http, key).status_code == 303
        assert http.get("/operator").status_code == 200
        with engine.begin() as conn:
            conn.execute(
                update(t.api_key)
                .where(t.api_key.c.key_hash == hash_key(key))
                .values(revoked_at=utcnow())
            )
        assert http.get("/operator").status_code == 303
    key = create_key(engine, "operator", "carol")
    token = sessions.start(engine, key, timedelta(seconds=60), utcnow() - timedelta(seconds=61))
    assert sessions.principal(engine, token, utcnow()) is None
    live = sessions.start(engine, key, timedelta(seconds=60), utcnow())
    assert sessions.principal(engine, live, utcnow()).name == "carol"  # type: ignore[union-attr]


def test_kill_switch_forms_need_csrf_origin_reason_and_confirmation(world: World, api: str) -> None:
    engine, slug = world.ctx.engine, world.tenant.slug
    with httpx.Client(base_url=api, timeout=10) as http:
        login(http, create_key(engine, "operator", "dave"))
        csrf = csrf_of(http.get("/operator").text)
        stop = f"/operator/tenants/{slug}/stop"
        good = {"scope": "bulk_email", "reason": "complaint spike", "confirm": "yes", "csrf": csrf}
        origin = {"Origin": api}
        assert http.post(stop, data={**good, "csrf": ""}, headers=origin).status_code == 403
        assert (
            http.post(stop, data=good, headers={"Origin": "http://evil.example"}).status_code == 403
        )
        assert http.post(stop, data=good).status_code == 403  # no Origin, no Referer
        assert http.post(stop, data={**good, "reason": "  "}, headers=origin).status_code == 422
        assert http.post(stop, data={**good, "confirm": ""}, headers=origin).status_code == 422
        assert (
            http.post(stop, data={**good, "scope": "everything"}, headers=origin).status_code == 422
        )
        assert (
            http.post("/operator/tenants/nope/stop", data=good, headers=origin).status_code == 404
        )
        with engine.connect() as conn:
            assert (
                conn.scalar(
                    select(t.sending_block.c.id).where(
                        t.sending_block.c.tenant_id == world.tenant_id
                    )
                )
                is None
            )

        done = http.post(stop, data=good, headers=origin)
        assert done.status_code == 303
        page = http.get(done.headers["location"])
        assert "Sending stopped" in page.text
        row = page.text.split(f'data-tenant="{slug}"', 1)[1].split("</tr>", 1)[0]
        assert "bulk disabled" in row and "complaint spike" in row and "(dave)" in row
        with engine.connect() as conn:
            status = conn.scalar(select(t.tenant.c.status).where(t.tenant.c.slug == slug))
        assert status == "bulk_disabled"

        resume = f"/operator/tenants/{slug}/resume"
        assert (
            http.post(
                resume,
                data={"scope": "bulk_sms", "reason": "nothing to clear", "csrf": csrf},
                headers=origin,
            ).status_code
            == 404
        )
        back = http.post(
            resume,
            data={"scope": "bulk_email", "reason": "list cleaned", "csrf": csrf},
            headers=origin,
        )
        assert back.status_code == 303
        audit = http.get("/operator").text.split("Audit log", 1)[1]
        assert "list cleaned" in audit and "sending_block.clear" in audit
    with engine.connect() as conn:
        status = conn.scalar(select(t.tenant.c.status).where(t.tenant.c.slug == slug))
        actions = list(
            conn.scalars(
                select(t.audit_log.c.action)
                .where(t.audit_log.c.tenant_id == world.tenant_id)
                .order_by(t.audit_log.c.id)
            )
        )
    assert status == "active"
    assert actions == ["sending_block.operator", "sending_block.clear"]


def test_cancel_held_cancels_exactly_what_the_operator_was_shown(world: World, api: str) -> None:
    seed_history(world, delivered=6, complaints=0, hard_bounces=0)
    d = t.delivery.c
    with world.ctx.engine.begin() as conn:  # the tenant was stopped with five in hand
        ids = list(conn.scalars(select(d.id).where(d.tenant_id == world.tenant_id).order_by(d.id)))
        conn.execute(
            update(t.delivery)
            .where(d.id.in_(ids[:5]))
            .values(
                state="held", reason="tenant_disabled", updated_at=utcnow() - timedelta(minutes=1)
            )
        )
    slug, engine = world.tenant.slug, world.ctx.engine
    url = f"/operator/tenants/{slug}/cancel-held"
    with httpx.Client(base_url=api, timeout=10) as http:
        login(http, create_key(engine, "operator", "erin"))
        page = http.get("/operator").text
        assert f'data-tenant="{slug}" data-held="5"' in page
        shown = re.search(r'data-held-at="([^"]+)"', page)
        assert shown
        form = {
            "reason": "bought list",
            "confirm": "yes",
            "csrf": csrf_of(page),
            "held": "5",
            "held_at": shown.group(1),
        }
        origin = {"Origin": api}
        assert http.post(url, data={**form, "csrf": ""}, headers=origin).status_code == 403
        assert http.post(url, data={**form, "confirm": ""}, headers=origin).status_code == 422
        stale = http.post(url, data={**form, "held": "4"}, headers=origin)
        assert stale.status_code == 409 and "5 deliveries are held now, not 4" in stale.text
        with engine.begin() as conn:  # meanwhile one is released and another one held
            conn.execute(update(t.delivery).where(d.id == ids[0]).values(state="queued"))
            conn.execute(
                update(t.delivery)
                .where(d.id == ids[5])
                .values(state="held", reason="tenant_disabled", updated_at=utcnow())
            )
        swapped = http.post(url, data=form, headers=origin)  # still five, not the same five
        assert swapped.status_code == 409 and "4 deliveries are held now" in swapped.text
        with engine.connect() as conn:
            assert (
                conn.execute(
                    select(d.id).where(d.tenant_id == world.tenant_id, d.state == "cancelled")
                ).first()
                is None
            )
        page = http.get("/operator").text  # look again
        shown = re.search(r'data-held-at="([^"]+)"', page)
        assert shown
        done = http.post(url, data={**form, "held_at": shown.group(1)}, headers=origin)
        assert done.status_code == 303
        assert "Held deliveries cancelled" in http.get(done.headers["location"]).text
    with engine.connect() as conn:
        states = dict(
            conn.execute(select(d.id, d.state).where(d.tenant_id == world.tenant_id)).all()
        )
    assert states == {ids[0]: "queued"} | {i: "cancelled" for i in ids[1:]}
