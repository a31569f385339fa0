"""postgate's own DKIM signer (cryptography/OpenSSL) against dkimpy's verifier: every
algorithm, ASCII and non-ASCII, text-only, html-only and multipart mail, awkward
whitespace; the same body hash dkimpy computes; and a sender whose event loop keeps
ticking while it signs a large batch."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import dkim
import pytest
from prometheus_client import REGISTRY

from postgate.core.dkim_signing import ALGORITHMS, DkimKey, Signer, generate
from postgate.core.rendering import CampaignContent, CompiledCampaign, RecipientData
from postgate.core.template_limits import TemplateLimitError
from postgate.tenants import domains as domain_store
from postgate.workers.main import run_workers
from postgate.workers.signing import SigningPool
from postgate.workers.signing_process import KEEP
from tests.dns_server import LocalDns
from tests.support import World, signing_domain, signing_processes

BODIES = {
    "text": ("Hello {{ name }}\n\nSee you.\n", ""),
    "html": ("", "<p>Hello {{ name }}</p>\n"),
    "multipart": ("Hello {{ name }}\n", "<p>Hello {{ name }}</p>"),
}
PEOPLE = {
    "ascii": ("Anna Smith", "Spring sale"),
    "hungarian": ("Árvíztűrő Tükörfúrógép", "Tavaszi akció, ő és ű"),
}


def key_pair(algorithm: str) -> tuple[DkimKey, str]:
    private, public = generate(algorithm)
    return DkimKey("acme.example", "pg1", algorithm, private.encode()), public


def rendered(kind: str, body: str, person: str) -> bytes:
    text, html = BODIES[body]
    name, subject = PEOPLE[person]
    content = CampaignContent(
        9,
        "acme",
        "acme.example",
        kind,
        subject,
        text,
        html,
        "news@acme.example",
        "Ács Kft.",
        tenant_id=3,
    )
    camp = CompiledCampaign(content, "k" * 32, "https://pg.example", "bounces.example")
    return camp.render(RecipientData(1, "anna@x.example", name), "Wed, 25 Nov 2026 10:00:00 +0000")


def run_until_finished(
    world: World, external_id: str, beside: Callable[[asyncio.Event], Awaitable[None]]
) -> None:
    """Planner, sender and sweeper until the campaign has finished (or two minutes), with
    ``beside(stop)`` running on the same loop."""

    async def go() -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not await asyncio.to_thread(
                world.finished(external_id)
            ):
                await asyncio.sleep(0.1)
            stop.set()

        await run_workers(
            world.ctx, ["planner", "sender", "sweeper"], stop, extra=[beside(stop), watch()]
        )

    asyncio.run(go())


def verifies(message: bytes, public: str) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        return public.encode() if name == b"pg1._domainkey.acme.example." else b""

    return bool(dkim.verify(message, dnsfunc=dns))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("person", sorted(PEOPLE))
@pytest.mark.parametrize("kind", ["promotional", "transactional"])
def test_every_signature_verifies_with_dkimpy(
    algorithm: str, body: str, person: str, kind: str
) -> None:
    key, public = key_pair(algorithm)
    signer = Signer(key)
    message = rendered(kind, body, person)
    signed = signer.sign(message)
    assert verifies(signed, public)
    assert not verifies(signed.replace(b"Hello", b"Hullo", 1), public)
    assert not verifies(signed.replace(b"\r\n\r\n", b"\r\nFrom: x@evil.example\r\n\r\n", 1), public)
    assert all(
        len(line) <= 78
        for line in signed.split(b"\r\n\r\n")[0].split(b"\r\n")
        if line.startswith((b"DKIM", b"\t"))
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"one line",
        b"trailing spaces   \r\n\r\n\r\n",
        b"tabs\t\tand  spaces \t\r\n",
        b"\r\n\r\nleading empty lines\r\n",
        b"a\r\n \r\n\t\r\n",
        b"x" * 5000 + b"\r\n",
    ],
)
def test_awkward_bodies_hash_as_dkimpy_hashes_them(body: bytes) -> None:
    key, public = key_pair("rsa-sha256")
    message = (
        b"From: News <news@acme.example>\r\nTo: anna@x.example\r\n"
        b"Subject:   folded\r\n  subject\t here \r\nDate: Wed, 25 Nov 2026 10:00:00 +0000"
        b"\r\nMessage-ID: <1@acme.example>\r\n\r\n" + body
    )
    ours = Signer(key).sign(message)
    assert verifies(ours, public)
    theirs = dkim.sign(
        message, b"pg1", b"acme.example", key.private_key, canonicalize=(b"relaxed", b"relaxed")
    )

    def bh(signed: bytes) -> bytes:
        match = re.search(rb"bh=([^;]+);", signed.replace(b"\r\n\t", b""))
        assert match
        return match.group(1).strip()

    assert bh(ours) == bh(theirs + message)


def test_a_signer_is_reused_across_messages_and_threads() -> None:
    key, public = key_pair("rsa-sha256")
    signer = Signer(key)
    from concurrent.futures import ThreadPoolExecutor

    messages = [
        rendered("promotional", "multipart", "hungarian").replace(
            b"anna@x.example", f"r{i}@x.example".encode()
        )
        for i in range(40)
    ]
    with ThreadPoolExecutor(4) as pool:
        signed = list(pool.map(signer.sign, messages))
    assert all(verifies(s, public) for s in signed)


def test_a_signing_process_renders_as_the_sender_does_and_raises_what_rendering_raises() -> None:
    """The mail a signing process renders is byte for byte the sender's own rendering, with
    a signature that verifies; a template over its limits raises the same error in the
    sender, and the process goes on serving; a campaign the process has dropped (it keeps
    the last KEEP) is compiled there again from the spec the sender sends once more."""
    key, public = key_pair("rsa-sha256")

    def campaign(text: str) -> CompiledCampaign:
        content = CampaignContent(
            9, "acme", "acme.example", "promotional", "Ősz", text, "", "news@acme.example", "Ács"
        )
        return CompiledCampaign(content, "k" * 32, "https://pg.example", "bounces.example")

    good = campaign("Szia {{ name }}, {{ contact.city }}!\n")
    runaway = campaign("{% for i in range(10**7) %}{{ name }}{% endfor %}")
    people = [
        (RecipientData(i, f"r{i}@x.example", "Árvíz Tűrő", {"city": "Győr"}), None)
        for i in range(1, 4)
    ]
    date = "Wed, 25 Nov 2026 10:00:00 +0000"

    others = [campaign(f"Hallo {{{{ name }}}} #{i}\n") for i in range(KEEP)]

    async def go() -> tuple[list[bytes], list[bytes]]:
        pool = SigningPool("process", 1)
        try:
            first = await pool.render_and_sign(good, (Signer(key),), people, date)
            with pytest.raises(TemplateLimitError):
                await pool.render_and_sign(runaway, (Signer(key),), people, date)
            for i, other in enumerate(others):  # the process keeps KEEP: `good` is dropped
                (mail,) = await pool.render_and_sign(other, (Signer(key),), people[:1], date)
                assert f"#{i}".encode() in mail
            return first, await pool.render_and_sign(good, (Signer(key),), people, date)
        finally:
            await pool.close()

    first, again = asyncio.run(go())
    for signed in (first, again):
        assert len(signed) == 3
        for mail, (rcpt, extra) in zip(signed, people, strict=True):
            assert mail.startswith(b"DKIM-Signature:")
            assert mail.endswith(good.render(rcpt, date, extra)) and verifies(mail, public)


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_the_sender_loop_keeps_ticking_while_it_signs(
    world: World, suite_dns: LocalDns, pool: str
) -> None:
    """A 2,000-recipient RSA-signed campaign, signed in processes or in threads: the event
    loop (leases, pub/sub, the kill switch) is never blocked by signing; dkimpy on the loop
    blocked it ~13 ms a mail."""
    signing_domain(world, suite_dns, "rsa-sha256")
    world.ctx.settings.dkim_pool = pool  # type: ignore[assignment]
    from tests.workers.test_crash import bulk_audience

    bulk_audience(world, 2000)
    world.ctx.settings.batch_size = 500
    world.publish(world.message("signed", kind="transactional"))
    gaps: list[float] = []

    async def tick(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    run_until_finished(world, "signed", tick)
    assert world.campaign_state("signed") == "finished"
    received: list[Any] = [
        r for r in world.sink.handler.received if b"DKIM-Signature:" in r.data[:20]
    ]
    assert len(received) == 2000
    # the loop also runs the planner and the database hand-offs, and with threads it renders
    # each batch's chunks itself, on two cores shared with whatever else runs: generous,
    # but a signer on the loop (a 500-mail batch x 13 ms with dkimpy) could never pass it
    print(f"max loop gap while signing: {max(gaps) * 1000:.0f} ms")
    assert max(gaps) < 1.0, max(gaps)


def test_a_killed_signing_process_costs_no_mail_and_sends_none_twice(
    world: World, suite_dns: LocalDns
) -> None:
    """A signing process SIGKILLed in the middle of a signed campaign: the sender starts its
    signing pool again, signs the chunks that were in the dead pool once more and sends
    every mail exactly once, each signature verifying."""
    row = signing_domain(world, suite_dns, "rsa-sha256")
    from tests.workers.test_crash import bulk_audience

    assert world.ctx.settings.dkim_pool == "process"
    bulk_audience(world, 3000)
    world.ctx.settings.batch_size = 500
    world.publish(world.message("killed", kind="transactional"))
    restarts = REGISTRY.get_sample_value("postgate_dkim_pool_restarts_total") or 0.0
    killed: list[int] = []

    async def kill_one(stop: asyncio.Event) -> None:  # once signed mail flows, one dies
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            world.sink.handler.received and signing_processes()
        ):
            await asyncio.sleep(0.01)
        victim = signing_processes()[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)

    run_until_finished(world, "killed", kill_one)
    assert killed and world.campaign_state("killed") == "finished"
    assert signing_processes() == []  # the sender stopped them all, the new one too
    assert {r.state for r in world.deliveries("killed")} == {"sent"}
    received = [r for r in world.sink.handler.received if b"DKIM-Signature:" in r.data[:20]]
    addresses = [a for r in received for a in r.recipients]
    assert len(addresses) == 3000 and len(set(addresses)) == 3000  # all, and none twice
    assert REGISTRY.get_sample_value("postgate_dkim_pool_restarts_total") == restarts + 1
    _token, record = domain_store.describe(row)["dns"][:2]
    assert all(
        dkim.verify(r.data, dnsfunc=lambda name, timeout=5: record["value"].encode())
        for r in received[::100]
    )


def test_dual_signing_with_ed25519_and_rsa(world: World, suite_dns: LocalDns) -> None:
    """DKIM_DUAL: a domain claimed with both keys gets both signatures (RFC 8463), each
    verifying against its own published record."""
    row = signing_domain(world, suite_dns, "rsa-sha256", dual=True)
    shown = domain_store.describe(row)
    _token, rsa_record, ed_record = shown["dns"]
    assert shown["dkim2"]["algorithm"] == "ed25519-sha256"
    assert "k=rsa" in rsa_record["value"] and "k=ed25519" in ed_record["value"]
    world.contact("dual")
    world.publish(world.message("dual"))
    world.run(world.finished("dual"))
    (mail,) = world.sink.handler.to(f"dual@{world.tenant.domain}")
    records = {r["name"] + ".": r["value"].encode() for r in (rsa_record, ed_record)}

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode(), b"")

    checker = dkim.DKIM(mail.data)
    assert mail.data.count(b"DKIM-Signature:") == 2
    assert checker.verify(idx=0, dnsfunc=dns) and checker.verify(idx=1, dnsfunc=dns)
    algorithms = set(re.findall(rb"a=([a-z0-9-]+);", mail.data.split(b"\r\n\r\n")[0]))
    assert algorithms == {b"rsa-sha256", b"ed25519-sha256"}
