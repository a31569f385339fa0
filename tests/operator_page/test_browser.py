"""The operator page in a real browser (Debian's headless Chromium, driven by Playwright)
against the real api, real workers and a real SMTP sink: log in with an operator key, see
a tenant's rates against the thresholds and the breaker's verdict, stop a running
campaign's tenant with the kill switch (reason and confirmation required), see the
campaign stop (rows held, the sink receives nothing more), re-enable it and log out; and
cancel a stopped tenant's held deliveries for good."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import func, select

from postgate.http.auth import create_key
from postgate.settings import Settings
from postgate.sinks.smtp import SmtpSink
from postgate.store import tables as t
from tests.operator_page.background import seed_history, workers_running
from tests.support import World
from tests.workers.switching import TimedHandler, bulk_audience

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(handler=TimedHandler(delay=0.05)) as server:
        yield server


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"operator_refresh_s": 0.5, "breaker_min_volume": 100})


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def held(world: World) -> int:
    d = t.delivery.c
    with world.ctx.engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count()).where(d.tenant_id == world.tenant_id, d.state == "held")
            )
            or 0
        )


def test_operator_stops_a_running_campaign_from_the_page(
    world: World, api: str, page: Page, tmp_path: Path
) -> None:
    handler: TimedHandler = world.sink.handler  # type: ignore[assignment]
    noisy = World.create(world.ctx, world.sink)
    seed_history(noisy, delivered=400, complaints=2, hard_bounces=8)
    bulk_audience(world, 800)
    slug = world.tenant.slug
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda m: (
            problems.append(f"{m.text} {m.location.get('url')}")
            if m.type == "error" and not m.location.get("url", "").endswith("/login")
            else None
        ),
    )

    world.publish(world.message("spring"))
    with workers_running(world):
        page.goto(f"{api}/operator")
        expect(page).to_have_url(f"{api}/operator/login")
        page.fill("#key", create_key(world.ctx.engine, "tenant", "crm", slug))
        page.click("button[type=submit]")
        expect(page.get_by_role("alert")).to_contain_text("tenant keys cannot")
        page.fill("#key", create_key(world.ctx.engine, "operator", "erika"))
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{api}/operator")
        expect(page.locator("header .who")).to_have_text("erika")

        campaign = page.locator("tr[data-campaign]", has_text="spring")
        expect(campaign.locator('[data-cell="sent"]')).not_to_have_text("0", timeout=20_000)
        row = page.locator(f'tr[data-tenant="{slug}"]')
        expect(row.locator('[data-cell="state"]')).to_contain_text("active")
        row.get_by_role("button", name="Stop…").click()
        dialog = page.locator("#stop-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.locator("h2")).to_have_text(f"Stop sending for {slug}")
        dialog.get_by_role("button", name="Stop sending").click()  # no reason: refused
        expect(dialog).to_be_visible()
        dialog.locator("textarea[name=reason]").fill("complaint spike from a bought list")
        dialog.get_by_role("button", name="Stop sending").click()  # not confirmed: refused
        expect(dialog).to_be_visible()
        dialog.get_by_label("I confirm").check()
        dialog.get_by_role("button", name="Stop sending").click()
        expect(page.get_by_role("status")).to_contain_text(f"Sending stopped: {slug}")
        stopped_at = time.time()

        expect(row.locator('[data-cell="state"]')).to_contain_text("bulk disabled")
        expect(row.locator('[data-cell="state"]')).to_contain_text(
            "bulk_email by operator (erika): complaint spike from a bought list"
        )
        expect(campaign.locator('[data-cell="held"]')).not_to_have_text("0", timeout=10_000)
        time.sleep(1.5)
        starts = handler.starts_for(world.tenant.domain)
        assert max(starts) - stopped_at < 1.0, "the sink kept receiving after the stop"
        assert 0 < len(starts) < 800
        assert held(world) > 0
        expect(campaign.locator('[data-cell="held"]')).to_have_text(str(held(world)))
        expect(campaign.locator('[data-cell="sent"]')).to_have_text(str(len(starts)))
        audit = page.locator("table.audit tbody tr").first
        expect(audit).to_contain_text("sending_block.operator")
        expect(audit).to_contain_text("complaint spike from a bought list")

        noisy_row = page.locator(f'tr[data-tenant="{noisy.tenant.slug}"]')
        expect(noisy_row.locator('[data-cell="sent"]')).to_have_text("400")
        expect(noisy_row.locator('[data-cell="bounce"]')).to_contain_text("2.00 %")
        complaints = noisy_row.locator('[data-cell="complaints"]')
        expect(complaints).to_contain_text("5.00")
        expect(complaints).to_have_class("num rate over")
        expect(noisy_row.locator('[data-cell="state"]')).to_contain_text(
            "circuit breaker: complaint_rate", timeout=10_000
        )
        page.screenshot(path=str(tmp_path / "operator.png"), full_page=True)

        row.get_by_role("button", name="Re-enable bulk email…").click()
        resume = page.locator("#resume-dialog")
        resume.locator("textarea[name=reason]").fill("list cleaned, tenant warned")
        resume.get_by_role("button", name="Re-enable").click()
        expect(page.get_by_role("status")).to_contain_text(f"Sending re-enabled: {slug}")
        expect(row.locator('[data-cell="state"]')).to_contain_text("active")
        expect(campaign).to_have_count(0, timeout=60_000)  # finished: no longer in flight
        expect(page.locator("table.audit tbody tr").first).to_contain_text(
            "list cleaned, tenant warned"
        )
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(f"{api}/operator/login")
    assert world.campaign_state("spring") == "finished"
    assert (
        len({a for r in handler.received for a in r.recipients if a.endswith(world.tenant.domain)})
        == 800
    )
    assert problems == []
    print(f"\nscreenshot: {tmp_path / 'operator.png'}")


def open_rows(world: World, external_id: str) -> int:
    return sum(1 for r in world.deliveries(external_id) if r.state in ("queued", "sending"))


def test_operator_cancels_a_stopped_tenants_held_deliveries(
    world: World, api: str, page: Page
) -> None:
    handler: TimedHandler = world.sink.handler  # type: ignore[assignment]
    bulk_audience(world, 400)
    slug = world.tenant.slug
    ops = create_key(world.ctx.engine, "operator", "erika")
    world.publish(world.message("doomed"))
    with workers_running(world):
        page.goto(f"{api}/operator/login")
        page.fill("#key", ops)
        page.click("button[type=submit]")
        campaign = page.locator("tr[data-campaign]", has_text="doomed")
        expect(campaign.locator('[data-cell="sent"]')).not_to_have_text("0", timeout=20_000)
        stopped = httpx.post(
            f"{api}/v1/operator/tenants/{slug}/sending-blocks",
            json={"scope": "bulk_email", "reason": "bought list"},
            headers={"Authorization": f"Bearer {ops}"},
        )
        assert stopped.status_code == 201
        deadline = time.monotonic() + 30  # every row not yet sent ends up held
        while open_rows(world, "doomed") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_rows(world, "doomed") == 0
        waiting = held(world)
        assert waiting > 0
        row = page.locator(f'tr[data-tenant="{slug}"]')
        expect(row.locator('[data-cell="state"]')).to_contain_text(
            f"{waiting} deliveries held", timeout=10_000
        )

        row.get_by_role("button", name="Cancel held…").click()
        dialog = page.locator("#cancel-dialog")
        expect(dialog.locator("h2")).to_have_text(f"Cancel held deliveries of {slug}")
        expect(dialog).to_contain_text(f"{waiting} deliveries are held")
        submit = dialog.get_by_role("button", name="Cancel held deliveries")
        submit.click()  # no reason: refused
        expect(dialog).to_be_visible()
        dialog.locator("textarea[name=reason]").fill("the list was bought")
        submit.click()  # not confirmed: refused
        expect(dialog).to_be_visible()
        dialog.get_by_label("I confirm").check()
        submit.click()
        expect(page.get_by_role("status")).to_contain_text(
            f"Held deliveries cancelled: {slug}, {waiting} deliveries"
        )
        expect(row.get_by_role("button", name="Cancel held…")).to_have_count(0)
        expect(page.locator("table.audit tbody tr").first).to_contain_text("held.cancel")
        expect(page.locator("table.audit tbody tr").first).to_contain_text("the list was bought")
        expect(campaign).to_have_count(0, timeout=30_000)  # finished: nothing left to send
    assert world.campaign_state("doomed") == "finished"
    states = Counter(r.state for r in world.deliveries("doomed"))
    assert states == {"sent": 400 - waiting, "cancelled": waiting}
    assert {r.reason for r in world.deliveries("doomed") if r.state == "cancelled"} == {
        "operator_cancelled"
    }
    mailed = [a for r in handler.received for a in r.recipients if a.endswith(world.tenant.domain)]
    assert len(mailed) == len(set(mailed)) == 400 - waiting
