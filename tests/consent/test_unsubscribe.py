"""One-click unsubscribe (RFC 8058) over real HTTP, taking effect before the next send."""

from __future__ import annotations

import email
import email.policy
import re

import httpx
from sqlalchemy import func, select

from postgate.core import tokens
from postgate.store import tables as t
from tests.support import World


def unsubscribe_url(world: World, address: str, api: str) -> str:
    raw = world.sink.handler.to(address)[-1].data
    mail = email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[arg-type]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.search(r"<https?://[^/]+(/u/[^>]+)>", str(mail["List-Unsubscribe"]))
    assert match, mail["List-Unsubscribe"]
    return api + match.group(1)


def counts(world: World, address: str) -> tuple[int, int]:
    with world.ctx.engine.connect() as conn:
        s = conn.scalar(
            select(func.count())
            .select_from(t.suppression)
            .where(t.suppression.c.tenant_id == world.tenant_id, t.suppression.c.address == address)
        )
        f = conn.scalar(
            select(func.count())
            .select_from(t.feedback_event)
            .where(
                t.feedback_event.c.tenant_id == world.tenant_id,
                t.feedback_event.c.kind == "unsubscribe",
                t.feedback_event.c.address == address,
            )
        )
    return int(s or 0), int(f or 0)


def test_one_click_unsubscribe_blocks_the_next_campaign(world: World, api: str) -> None:
    world.contact("anna")
    world.contact("bela")
    anna = f"anna@{world.tenant.domain}"
    world.publish(world.message("first"))
    world.run(world.finished("first"))
    url = unsubscribe_url(world, anna, api)

    page = httpx.get(url)
    assert page.status_code == 200 and 'method="post"' in page.text and anna in page.text
    assert counts(world, anna) == (0, 0)  # GET changes nothing
    for _ in range(2):  # no cookies, idempotent
        r = httpx.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
    multipart = httpx.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert multipart.status_code == 200  # RFC 8058 prefers multipart/form-data
    assert counts(world, anna) == (1, 1)
    with world.ctx.engine.connect() as conn:
        reason, detail = conn.execute(
            select(t.suppression.c.reason, t.suppression.c.detail).where(
                t.suppression.c.address == anna
            )
        ).one()
    assert reason == "unsubscribe" and detail.startswith("one_click")

    world.publish(world.message("second"))
    world.run(world.finished("second"))
    states = {r.address.split("@")[0]: (r.state, r.reason) for r in world.deliveries("second")}
    assert states == {"anna": ("blocked", "suppressed"), "bela": ("sent", None)}
    assert len(world.sink.handler.to(anna)) == 1


def test_unsubscribe_between_planning_and_sending_still_wins(world: World, api: str) -> None:
    world.contact("cecil")
    cecil = f"cecil@{world.tenant.domain}"
    world.publish(world.message("warmup"))
    world.run(world.finished("warmup"))
    url = unsubscribe_url(world, cecil, api)

    world.publish(world.message("planned"))
    world.run(lambda: len(world.deliveries("planned")) == 1, workers=("planner",))
    assert world.deliveries("planned")[0].state == "queued"
    assert httpx.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    world.run(world.finished("planned"))
    row = world.deliveries("planned")[0]
    assert (row.state, row.reason) == ("blocked", "suppressed")
    assert len(world.sink.handler.to(cecil)) == 1


def test_forged_or_unknown_tokens_are_refused(world: World, api: str) -> None:
    secret = world.ctx.settings.secret_key
    forged = tokens.unsubscribe_token("another-secret", tokens.Ref(1, 1, world.tenant_id))
    assert (
        httpx.post(f"{api}/u/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    )
    unknown = tokens.Ref(10**12, 1, world.tenant_id)
    assert httpx.get(f"{api}/u/{tokens.unsubscribe_token(secret, unknown)}").status_code == 404
    assert httpx.get(f"{api}/u/garbage").status_code == 404


def test_mailto_unsubscribe_address_applies_once(world: World) -> None:
    from postgate.core.clock import utcnow
    from postgate.feedback import unsubscribe

    world.contact("dora")
    dora = f"dora@{world.tenant.domain}"
    world.publish(world.message("m"))
    world.run(world.finished("m"))
    raw = world.sink.handler.to(dora)[0].data
    mail = email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[arg-type]
    match = re.search(r"<mailto:([^>]+)>", str(mail["List-Unsubscribe"]))
    assert match
    token = tokens.mailto_token(match.group(1).upper())
    assert token is not None
    secret = world.ctx.settings.secret_key
    for _ in range(2):
        who = unsubscribe.apply(world.ctx.engine, secret, token, "mailto", utcnow())
        assert who is not None and who.address == dora
    assert counts(world, dora) == (1, 1)
    assert tokens.mailto_token("someone@example.com") is None
    assert tokens.mailto_token("unsubscribe+1.abc@x") is None


def test_tokens_with_unicode_digits_are_not_ours(world: World, api: str) -> None:
    """'³' and '٣' are digits to str.isdigit but not to int(): a link made of them is
    simply unknown, never a server error."""
    secret = world.ctx.settings.secret_key
    for head in ("³", "٣", "1²", "١٢٣"):
        assert tokens.unsubscribe_decode(secret, f"{head}.{'0' * 32}") is None
        for method in ("GET", "POST"):
            r = httpx.request(method, f"{api}/u/{head}")
            assert r.status_code == 404, (method, head, r.text)
