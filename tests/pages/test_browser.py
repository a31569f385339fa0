"""The visitor pages in a real browser (Debian's headless Chromium through Playwright)
against the real api and real workers, in Hungarian and English, at 1280 and 360 px:
every page names the tenant, the topic in words and the consent text, fits a phone
without scrolling sideways, and logs no console error; a form error keeps what was typed;
the hosted form signs a visitor up end to end; a script's post is let through from an
allowed origin and refused from another; the preference centre's change is a consent
record and the next campaign's gate follows it. Each page's screenshot is written to
docs/screenshots/."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from postgate.store import tables as t
from tests.consent.test_signup_forms import mails_to
from tests.consent.test_unsubscribe import unsubscribe_url
from tests.operator_page.background import workers_running
from tests.operator_page.test_browser import ARGS, CHROMIUM
from tests.pages.site import CONSENT_HU, TOPICS, Site, branded
from tests.support import World

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)

WORDS = {
    "hu": {
        "accept": "hu-HU",
        "email": "E-mail-cím",
        "name": "Név",
        "subscribe": "Feliratkozom",
        "bad_email": "Ez nem érvényes e-mail-cím",
        "pending": "Már majdnem kész",
        "confirm": "Megerősítem",
        "confirmed": "Feliratkozás megerősítve",
        "leave": "Leiratkozás: Heti akciók",
        "left": "Nem kap több üzenetet",
        "leave_all": "Leiratkozás mindenről",
        "unsubscribed": "Leiratkozott",
        "invalid": "A link nem érvényes",
    },
    "en": {
        "accept": "en-GB",
        "email": "Email address",
        "name": "Name",
        "subscribe": "Subscribe",
        "bad_email": "This is not a valid email address",
        "pending": "Almost done",
        "confirm": "Confirm",
        "confirmed": "Subscription confirmed",
        "leave": "Leave Weekly deals",
        "left": "You will get no more messages",
        "leave_all": "Unsubscribe from everything",
        "unsubscribed": "Unsubscribed",
        "invalid": "Link not valid",
    },
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Visit:
    """One visitor's browser: a language and a width, watching the console."""

    page: Page
    locale: str
    width: int
    problems: list[tuple[str, str]] = field(default_factory=list)
    expected_errors: set[str] = field(default_factory=set)  # pages answered 4xx on purpose

    def look(self, name: str, *texts: str) -> None:
        """The page shows ``texts``, fits its width, and gets its screenshot."""
        body = self.page.locator("body")
        for text in texts:
            expect(body).to_contain_text(text)
        expect(self.page.locator("html")).to_have_attribute("lang", self.locale)
        assert "Kft.." not in body.inner_text()
        wide = self.page.evaluate("document.documentElement.scrollWidth")
        assert wide <= self.page.evaluate("window.innerWidth"), f"{name} scrolls sideways"
        font = self.page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert font >= 16  # readable on a phone without zooming
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(
            path=str(SHOTS / f"{name}-{self.locale}-{self.width}.png"), full_page=True
        )

    def clean(self) -> list[tuple[str, str]]:
        return [
            (text, url)
            for text, url in self.problems
            if not (
                text.startswith("Failed to load resource: the server responded with a status of 4")
                and url in self.expected_errors
            )
        ]


def visit(browser: Browser, locale: str, width: int) -> Visit:
    context = browser.new_context(
        locale=WORDS[locale]["accept"], viewport={"width": width, "height": 800}
    )
    page = context.new_page()
    seen = Visit(page, locale, width)
    page.on("pageerror", lambda exc: seen.problems.append((str(exc), page.url)))
    page.on(
        "console",
        lambda m: (
            seen.problems.append((m.text, m.location.get("url", ""))) if m.type == "error" else None
        ),
    )
    return seen


def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Wait (while the workers run in their thread) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def consent_rows(world: World) -> list[tuple[str, str, str, str | None]]:
    c = t.consent.c
    with world.ctx.engine.connect() as conn:
        return [
            (r.topic, r.status, r.source, r.signup_user_agent)
            for r in conn.execute(
                select(c.topic, c.status, c.source, c.signup_user_agent)
                .where(c.tenant_id == world.tenant_id)
                .order_by(c.id)
            )
        ]


def walk_through(site: Site, api: str, seen: Visit, check_gate: bool) -> None:
    """Sign up on the hosted form, confirm, get a campaign, leave its topic, leave all."""
    world, w, page = site.world, WORDS[seen.locale], seen.page
    topic = TOPICS["news"][seen.locale]["name"]
    brand = ("Acme Kft.", topic, CONSENT_HU)
    address = f"vendeg.{seen.locale}.{seen.width}@example.com"  # the same in every run
    form_url = f"{api}/f/{site.form['public_id']}"

    page.goto(form_url)
    seen.look("form", *brand, TOPICS["news"][seen.locale]["description"])
    page.get_by_label(w["email"]).fill("vendeg@")
    page.get_by_label(w["name"]).fill("Vendég Virág")
    seen.expected_errors.add(form_url)
    page.get_by_role("button", name=w["subscribe"]).click()
    expect(page.get_by_role("alert")).to_contain_text(w["bad_email"])
    expect(page.get_by_label(w["email"])).to_have_value("vendeg@")  # what was typed stays
    expect(page.get_by_label(w["name"])).to_have_value("Vendég Virág")
    seen.look("form-error", *brand)
    page.get_by_label(w["email"]).fill(address)
    page.get_by_role("button", name=w["subscribe"]).click()
    expect(page.locator("h1")).to_have_text(w["pending"])
    seen.look("pending", *brand)

    until(lambda: len(mails_to(world, address)) >= 1)
    (mail,) = mails_to(world, address)
    assert topic in str(mail["Subject"])
    token = re.search(r"/c/([A-Za-z0-9_-]{40,})", mail.get_content())
    assert token
    page.goto(f"{api}/c/{token.group(1)}")
    seen.look("confirm", *brand, address)
    page.get_by_role("button", name=w["confirm"]).click()
    expect(page.locator("h1")).to_have_text(w["confirmed"])
    seen.look("confirmed", *brand)
    assert consent_rows(world)[-1][:3] == ("news", "confirmed", "signup_form")

    name = f"deals-{seen.locale}-{seen.width}"
    world.publish(world.message(name, topic="news"))
    until(world.finished(name))
    assert [r.state for r in world.deliveries(name)] == ["sent"]
    page.goto(unsubscribe_url(world, address, api))
    seen.look("preferences", *brand, address)
    page.get_by_role("button", name=w["leave"]).click()
    expect(page.get_by_role("status")).to_contain_text(w["left"])
    seen.look("preferences-left", *brand)
    topic_, status, source, agent = consent_rows(world)[-1]
    assert (topic_, status, source) == ("news", "withdrawn", "preference_centre")
    assert agent and "Chrome" in agent  # the proof names the browser that made the change
    if check_gate:
        world.publish(world.message(f"{name}-after", topic="news"))
        until(world.finished(f"{name}-after"))
        assert [(r.state, r.reason) for r in world.deliveries(f"{name}-after")] == [
            ("blocked", "consent_withdrawn")
        ]
    page.get_by_role("button", name=w["leave_all"]).click()
    expect(page.locator("h1")).to_have_text(w["unsubscribed"])
    seen.look("unsubscribed", *brand)

    bad = f"{api}/c/{'x' * 43}"
    seen.expected_errors.add(bad)
    page.goto(bad)
    seen.look("invalid-link", w["invalid"])


@pytest.mark.parametrize("width", [1280, 360])
@pytest.mark.parametrize("locale", ["hu", "en"])
def test_visitor_pages_in_both_languages_on_desktop_and_phone(
    world: World, api: str, browser: Browser, locale: str, width: int
) -> None:
    site = branded(world, api)
    seen = visit(browser, locale, width)
    try:
        with workers_running(world):
            walk_through(site, api, seen, check_gate=width == 1280)
    finally:
        seen.page.context.close()
    assert seen.clean() == []


class Shop(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><html lang=en><title>shop</title><p>shop</p></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def shops() -> Iterator[tuple[str, str]]:
    """Two tenant sites on their own origins: one the form allows, one it does not."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Shop) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in servers)  # type: ignore[misc]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


FETCH = """async ([url, email]) => {
  try {
    const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                body: JSON.stringify({email})});
    return {status: r.status, body: await r.json()};
  } catch (e) { return {error: String(e)}; }
}"""


def test_a_script_posts_from_an_allowed_origin_and_not_from_another(
    world: World, api: str, browser: Browser, shops: tuple[str, str]
) -> None:
    allowed, other = shops
    site = branded(world, api)
    form = site.new_form(allowed_origins=[allowed])
    url = f"{api}/f/{form['public_id']}"
    seen = visit(browser, "en", 1280)
    try:
        seen.page.goto(allowed)
        ok = seen.page.evaluate(FETCH, [url, f"script@{world.tenant.domain}"])
        assert ok == {
            "status": 202,
            "body": {"status": "pending", "message": "Check your mailbox."},
        }
        seen.page.goto(other)
        refused = seen.page.evaluate(FETCH, [url, f"other@{world.tenant.domain}"])
        assert "Failed to fetch" in refused.get("error", ""), refused
    finally:
        seen.page.context.close()
    assert [
        text for text, _ in seen.problems if "CORS policy" not in text and "ERR_FAILED" not in text
    ] == []
    assert any("CORS policy" in text for text, _ in seen.problems)  # the browser refused it
    c, k = t.consent.c, t.pending_signup.c
    with world.ctx.engine.connect() as conn:
        typed = set(conn.scalars(select(k.address).where(k.tenant_id == world.tenant_id)))
        assert conn.scalar(select(c.id).where(c.tenant_id == world.tenant_id)) is None
    assert typed == {f"script@{world.tenant.domain}"}  # the refused one never got through
