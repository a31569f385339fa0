"""The visitor pages over real HTTP: the hosted form and its snippet, errors for people
and for programs, CORS, the brand api."""

from __future__ import annotations

import httpx

from tests.pages.site import CONSENT_HU, branded
from tests.support import World

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_hosted_form_names_the_tenant_topic_and_consent(world: World, api: str) -> None:
    site = branded(world, api)
    url = site.form["url"].replace("http://127.0.0.1:8000", api)
    hu = httpx.get(url, headers=BROWSER | {"Accept-Language": "hu-HU,hu;q=0.9"})
    assert hu.status_code == 200 and hu.headers["content-language"] == "hu"
    for text in (
        "Acme Kft.",
        "Heti akciók",
        CONSENT_HU,
        'name="website"',
        "Feliratkozom",
        'href="https://acme.example/adatvedelem"',
        "Adatkezelési tájékoztató",
    ):
        assert text in hu.text, text
    assert "Kft.." not in hu.text
    assert "default-src 'none'" in hu.headers["content-security-policy"]
    en = httpx.get(url, headers=BROWSER | {"Accept-Language": "en-GB"})
    assert "Weekly deals" in en.text and "Subscribe" in en.text and CONSENT_HU in en.text
    assert httpx.get(f"{api}/f/nope", headers=BROWSER).status_code == 404
    css = httpx.get(f"{api}/p/pages.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "//" not in css.text.replace("/*", "").replace("*/", "")  # nothing from elsewhere


def test_the_form_answer_carries_a_plain_html_snippet(world: World, api: str) -> None:
    site = branded(world, api, locale="hu")
    form = site.new_form(locale="hu", channels=["email", "sms"])
    snippet = form["embed_html"]
    assert snippet.startswith('<form method="post" action="http://127.0.0.1:8000/f/')
    for text in (
        'name="email"',
        'name="phone"',
        'name="website"',
        CONSENT_HU,
        "E-mail-cím",
        "Mobilszám",
        "Feliratkozom",
    ):
        assert text in snippet, text
    assert "<script" not in snippet
    assert form["locale"] == "hu" and form["allowed_origins"] == []


def test_a_browser_gets_its_error_as_a_page_that_keeps_what_was_typed(
    world: World, api: str
) -> None:
    site = branded(world, api)
    url = f"{api}/f/{site.form['public_id']}"
    r = httpx.post(
        url,
        data={"email": "kovacs.anna@", "name": "Kovács Anna"},
        headers=BROWSER | {"Accept-Language": "hu"},
    )
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "Ez nem érvényes e-mail-cím" in r.text
    assert 'value="kovacs.anna@"' in r.text and 'value="Kovács Anna"' in r.text
    assert 'aria-invalid="true"' in r.text
    api_client = httpx.post(url, data={"email": "kovacs.anna@"})
    assert api_client.status_code == 422
    assert api_client.json()["detail"][0]["msg"].startswith("invalid email")
    as_json = httpx.post(url, json={"email": "x"}, headers=BROWSER)
    assert as_json.status_code == 422 and as_json.headers["content-type"] == "application/json"
    missing = httpx.post(
        f"{api}/f/nope", data={"email": "a@b.example"}, headers=BROWSER | {"Accept-Language": "en"}
    )
    assert missing.status_code == 404 and "There is no such page" in missing.text


def test_cors_answers_allowed_origins_and_refuses_others(world: World, api: str) -> None:
    site = branded(world, api)
    form = site.new_form(allowed_origins=["https://shop.acme.example"])
    assert form["allowed_origins"] == ["https://shop.acme.example"]
    url = f"{api}/f/{form['public_id']}"
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = httpx.options(url, headers=ask | {"Origin": "https://shop.acme.example"})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "https://shop.acme.example"
    assert "POST" in ok.headers["access-control-allow-methods"]
    refused = httpx.options(url, headers=ask | {"Origin": "https://evil.example"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    post = httpx.post(
        url,
        json={"email": f"cors@{world.tenant.domain}"},
        headers={"Origin": "https://shop.acme.example", "Sec-Fetch-Mode": "cors"},
    )
    assert post.status_code == 202
    assert post.headers["access-control-allow-origin"] == "https://shop.acme.example"
    bad = httpx.post(
        url,
        json={"email": f"evil@{world.tenant.domain}"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Mode": "cors"},
    )
    assert bad.status_code == 403 and "access-control-allow-origin" not in bad.headers
    refused_form = httpx.post(
        f"{api}/v1/forms",
        headers=site.auth,
        json={
            "name": "x",
            "topic": "news",
            "list_id": world.mlist.id,
            "consent_text": "x",
            "consent_text_version": "1",
            "allowed_origins": ["javascript:alert(1)"],
        },
    )
    assert refused_form.status_code == 422


def test_the_brand_api_checks_what_it_stores(world: World, api: str) -> None:
    site = branded(world, api)
    got = httpx.get(f"{api}/v1/brand", headers=site.auth).json()
    assert got["display_name"] == "Acme Kft." and got["accent_color"] == "#0b6e4f"
    for field, value in (
        ("accent_color", "red"),
        ("logo_url", "http://acme.example/l.png"),
        ("website_url", "javascript:alert(1)"),
        ("locale", "xx"),
        ("time_zone", "Mars/Olympus"),
    ):
        r = httpx.put(f"{api}/v1/brand", headers=site.auth, json={field: value})
        assert r.status_code == 422, (field, r.text)
    r = httpx.put(
        f"{api}/v1/topics/news", headers=site.auth, json={"labels": {"xx": {"name": "?"}}}
    )
    assert r.status_code == 422


def test_a_scripts_answer_is_in_the_visitors_language(world: World, api: str) -> None:
    site = branded(world, api)
    r = httpx.post(
        f"{api}/f/{site.form['public_id']}",
        json={"email": f"nyelv@{world.tenant.domain}"},
        headers={"Accept-Language": "hu-HU"},
    )
    assert r.status_code == 202
    assert r.json() == {"status": "pending", "message": "Nézze meg a postafiókját."}
