"""A tenant's webhook endpoint that fails: retries with backoff, then a dead letter and
a pause that the tenant lifts; and URLs that point into the platform are refused."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from postgate.observability.export import registry
from postgate.store import tables as t
from tests.events.receiver import Receiver
from tests.events.test_stream import all_events, key, run_events
from tests.support import World


def counter(name: str, **labels: str) -> float:
    return sum(
        sample.value
        for metric in registry().collect()
        for sample in metric.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def endpoint(api: str, headers: dict[str, str], url: str, **extra: Any) -> dict[str, Any]:
    made = httpx.post(f"{api}/v1/event-endpoints", json={"url": url, **extra}, headers=headers)
    assert made.status_code == 201, made.text
    return dict(made.json())


def sent(world: World, campaign: str, *names: str) -> None:
    for name in names:
        world.contact(name)
    world.publish(world.message(campaign))
    world.run(world.finished(campaign))


@pytest.mark.parametrize(
    "failure",
    [500, ("sleep", 1.5), ("redirect", "http://127.0.0.1:1/elsewhere")],
    ids=["http-500", "timeout", "redirect"],
)
def test_a_failing_endpoint_is_retried_then_dead_lettered_and_paused(
    world: World, api: str, receiver: Receiver, failure: Any
) -> None:
    settings = world.ctx.settings
    settings.webhook_timeout_s = 0.5
    settings.webhook_retry_for_s = 1.0
    headers = key(world)
    made = endpoint(api, headers, receiver.url)
    receiver.answers.extend([failure] * 1000)
    sent(world, "failing", "fay", "gus")
    slug, eid = world.tenant.slug, str(made["id"])
    retried = counter("postgate_webhook_events_total", tenant=slug, endpoint=eid, result="retried")
    url = f"{api}/v1/event-endpoints/{made['id']}"

    run_events(world.ctx, lambda: httpx.get(url, headers=headers).json()["state"] == "paused")
    shown = httpx.get(url, headers=headers).json()
    assert shown["dead_letters"] == 2 and shown["delivered"] == 0, shown
    assert shown["cursor"] == max(ev["seq"] for ev in all_events(api, headers)), shown
    assert "dead-lettered" in shown["paused_reason"]
    assert len(receiver.refused) >= 2  # tried more than once before giving up
    assert (
        counter("postgate_webhook_events_total", tenant=slug, endpoint=eid, result="retried")
        >= retried + 2
    )
    assert counter("postgate_webhook_pauses_total", tenant=slug, endpoint=eid) >= 1
    dead = httpx.get(f"{url}/dead-letters", headers=headers).json()
    assert sorted(d["event_id"] for d in dead) == sorted(
        ev["id"] for ev in all_events(api, headers)
    )
    assert all(d["attempts"] >= 2 for d in dead)
    with world.ctx.engine.connect() as conn:
        audited = conn.scalars(
            select(t.audit_log.c.action).where(t.audit_log.c.tenant_id == world.tenant_id)
        ).all()
        states = set(
            conn.scalars(
                select(t.delivery.c.state).where(t.delivery.c.tenant_id == world.tenant_id)
            )
        )
    assert "webhook_endpoint_paused" in audited
    assert states == {"sent"}  # sending never waited for the endpoint

    # the tenant fixes its end and resumes: later events flow, the dead ones stay dead
    receiver.answers.clear()
    assert httpx.post(f"{url}/resume", headers=headers).json()["state"] == "active"
    sent(world, "after", "hal")
    run_events(world.ctx, lambda: len(receiver.ids()) >= 3)  # the list has three now
    assert {ev["campaign_external_id"] for ev in receiver.events()} == {"after"}


def test_a_flaky_endpoint_gets_every_event_once_in_order(
    world: World, api: str, receiver: Receiver
) -> None:
    headers = key(world)
    endpoint(api, headers, receiver.url)
    receiver.answers.extend([503, 500, 200, 502])
    world.ctx.settings.webhook_batch = 2
    sent(world, "flaky", "ida", "jon", "kim", "lea", "max")
    run_events(world.ctx, lambda: len(receiver.ids()) >= 5)
    posted = receiver.events()
    assert [ev["seq"] for ev in posted] == sorted({ev["seq"] for ev in posted})
    assert len(posted) == 5 and all(len(post.events) <= 2 for post in receiver.posts)


def test_an_endpoint_receives_only_its_types(world: World, api: str, receiver: Receiver) -> None:
    headers = key(world)
    endpoint(api, headers, receiver.url, types=["feedback.bounce"])
    bad = f"nobody@{world.tenant.domain}"
    world.sink.handler.script(bad, "550 5.1.1 no such user")
    world.contact("nobody")
    sent(world, "typed", "ola")
    run_events(world.ctx, lambda: len(receiver.ids()) >= 1)
    time.sleep(0.3)
    assert [(ev["type"], ev["recipient"]) for ev in receiver.events()] == [("feedback.bounce", bad)]
    refused = httpx.post(
        f"{api}/v1/event-endpoints", json={"url": receiver.url, "types": ["x.y"]}, headers=headers
    )
    assert refused.status_code == 422 and "x.y" in refused.text


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.7/hook",
        "http://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://127.0.0.2/hook",  # loopback, outside the one address allowed
        "https://100.64.0.1/hook",  # shared address space
        "https://0.0.0.0/hook",
        "https://[::ffff:127.0.0.2]/hook",  # loopback, written as IPv6
        "ftp://files.example/hook",
        "https://user:pw@127.0.0.1/hook",
        "https:///no-host",
    ],
)
def test_urls_into_the_platform_are_refused(world: World, api: str, url: str) -> None:
    made = httpx.post(f"{api}/v1/event-endpoints", json={"url": url}, headers=key(world))
    assert made.status_code == 422, made.text
    assert "refused" in made.text


def test_loopback_is_refused_unless_the_operator_allows_it(
    world: World, receiver: Receiver
) -> None:
    from postgate.events import guard

    strict = guard.networks("")
    import asyncio

    with pytest.raises(guard.Refused, match="non-public"):
        asyncio.run(guard.check_url(receiver.url, strict))
    with pytest.raises(guard.Refused, match="non-public"):  # a name resolving to loopback
        asyncio.run(guard.check_url(f"https://localhost:{receiver.port}/", strict))
    asyncio.run(guard.check_url(receiver.url, guard.networks("127.0.0.1/32")))
    with pytest.raises(guard.Refused, match="https"):  # public, but plain http
        asyncio.run(guard.check_url("http://8.8.8.8/hook", strict))
    asyncio.run(guard.check_url("https://8.8.8.8/hook", strict))


def test_a_url_changed_to_an_internal_address_is_refused_at_post_time(
    world: World, api: str, receiver: Receiver
) -> None:
    """Registered while allowed; the operator then narrows the allowance: the worker
    refuses to post (it checks again on every connection) and the endpoint retries."""
    headers = key(world)
    made = endpoint(api, headers, receiver.url)
    world.ctx.settings.webhook_allow_networks = ""
    sent(world, "narrowed", "pat")
    url = f"{api}/v1/event-endpoints/{made['id']}"
    run_events(world.ctx, lambda: httpx.get(url, headers=headers).json()["attempts"] >= 1)
    shown = httpx.get(url, headers=headers).json()
    assert "refused" in shown["last_error"] and shown["delivered"] == 0
    assert receiver.posts == [] and receiver.refused == []
