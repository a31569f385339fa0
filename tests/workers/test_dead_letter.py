"""Malformed queue messages go to the dead-letter queue with a reason; the worker goes on."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from postgate.runtime.dead_letters import preview
from postgate.store import tables as t
from tests.support import World


def dead_letters(world: World) -> list[tuple[str, str]]:
    dl = t.dead_letter.c
    with world.ctx.engine.connect() as conn:
        return [
            (r.error, r.body)
            for r in conn.execute(
                select(dl.error, dl.body)
                .where(
                    dl.body.contains(world.tenant.slug)
                    | dl.body.contains("garbage-" + world.tenant.slug)
                )
                .order_by(dl.id)
            )
        ]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m, w: b"{not json garbage-" + w.tenant.slug.encode(), "not JSON"),
        (lambda m, w: json.dumps(m | {"version": "campaign.v9"}), "unknown version"),
        (
            lambda m, w: json.dumps({k: v for k, v in m.items() if k != "topic"}),
            "topic: Field required",
        ),
        (lambda m, w: json.dumps(m | {"tenant": "nope", "x": w.tenant.slug}), "Extra inputs"),
        (
            lambda m, w: json.dumps(m | {"audience": [10**9], "topic": w.tenant.slug}),
            "does not own",
        ),
        (lambda m, w: json.dumps(m | {"channel": "fax"}), "channel"),
        (
            lambda m, w: json.dumps({k: v for k, v in m.items() if k != "from"}),
            "the tenant has no default From",
        ),
        (
            lambda m, w: json.dumps(m | {"from": {"email": "ceo@bank.example"}}),
            "not the tenant's verified domain",
        ),
        (lambda m, w: json.dumps([m]), "JSON object"),
        (
            lambda m, w: json.dumps(
                m | {"content": {"subject": "x" * 10, "text": "y" * 2_000_000}}
            ),
            "payload too large",
        ),
    ],
    ids=[
        "bad-json",
        "version",
        "missing",
        "extra-field",
        "foreign-list",
        "channel",
        "no-from",
        "forged-from",
        "array",
        "huge",
    ],
)
def test_malformed_message_is_dead_lettered_and_the_worker_keeps_going(
    world: World, mutate, expected: str
) -> None:
    world.contact("anna")
    good = world.message("good")
    world.publish(mutate(world.message("bad"), world))
    world.publish(good)
    world.run(world.finished("good"))
    letters = dead_letters(world)
    assert len(letters) == 1, letters
    assert expected in letters[0][0]
    assert len(world.sink.handler.received) == 1
    dead = world.ctx.broker().get("dead")
    assert dead is not None and expected in dead.headers["error"]


def test_unknown_tenant_is_dead_lettered(world: World) -> None:
    msg = world.message("ghost") | {"tenant": "ghost-" + world.tenant.slug}
    world.publish(msg)
    world.run(lambda: len(dead_letters(world)) == 1, workers=("planner",), timeout=10)
    assert "unknown tenant" in dead_letters(world)[0][0]


def test_bad_send_batch_is_dead_lettered(world: World) -> None:
    broker = world.ctx.broker()
    broker.publish("send", {"campaign_id": "x", "ids": [], "tag": world.tenant.slug})
    broker.close()
    world.run(lambda: len(dead_letters(world)) == 1, workers=("sender",), timeout=10)
    assert "bad send batch" in dead_letters(world)[0][0]


def test_a_body_with_nul_bytes_is_recorded_as_base64(world: World) -> None:
    """PostgreSQL's text cannot hold NUL: such a body is kept as base64, and the row is
    written (before, the dead letter reached the queue but not the table)."""
    body = (
        b'{"version": "campaign.v1", "tenant": "'
        + world.tenant.slug.encode()
        + b'"\x00\x00, "x": "\xff\x1b"}'
    )
    world.publish(body)
    stored = preview(body)
    assert stored.startswith("base64:")
    dl = t.dead_letter.c

    def recorded() -> list[tuple[str, str, int]]:
        with world.ctx.engine.connect() as conn:
            return [
                (r.error, r.queue, r.body_bytes)
                for r in conn.execute(
                    select(dl.error, dl.queue, dl.body_bytes).where(dl.body == stored)
                )
            ]

    world.run(lambda: bool(recorded()), workers=("planner",), timeout=15)
    [(error, queue, size)] = recorded()
    assert "not JSON" in error and queue == "campaigns" and size == len(body)
    dead = world.ctx.broker().get("dead")
    assert dead is not None and "not JSON" in dead.headers["error"]
