"""Every catalogue translates every message the code and templates ask for."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog

from postgate.core import i18n
from tests.pages.messages import extracted


def untranslated(catalogue: Catalog, asked: dict[str | tuple[str, str], list[str]]) -> list[str]:
    missing = []
    for key, where in asked.items():
        msgid = key[0] if isinstance(key, tuple) else key
        message = catalogue.get(msgid)
        strings = (
            ()
            if message is None
            else (message.string if isinstance(message.string, tuple) else (message.string,))
        )
        if (
            message is None
            or not strings
            or not all(strings)
            or message.fuzzy
            or isinstance(key, tuple) != isinstance(message.string, tuple)
        ):
            missing.append(f"{msgid!r} ({where[0]})")
    return missing


def test_there_are_hungarian_and_english_catalogues() -> None:
    assert {"hu", "en"} <= set(i18n.available())


@pytest.mark.parametrize("code", i18n.available())
def test_every_message_id_has_a_translation(code: str) -> None:
    asked = extracted()
    assert len(asked) > 50  # the extraction found the templates and the code
    catalogue = i18n.catalogue(code)
    assert untranslated(catalogue, asked) == []
    plural = catalogue.plural_forms
    assert "nplurals=" in plural


def test_a_missing_translation_is_caught(tmp_path: Path) -> None:
    asked = extracted()
    catalogue = i18n.catalogue("hu")
    first = next(k for k in asked if isinstance(k, str))
    catalogue.delete(first)
    assert untranslated(catalogue, asked) == [f"{first!r} ({asked[first][0]})"]
    catalogue.add(first, "")
    assert len(untranslated(catalogue, asked)) == 1


def test_hungarian_plural_and_format_come_from_the_catalogue() -> None:
    hu, en = i18n.Words("hu"), i18n.Words("en")
    one, many = "You are subscribed to %(num)d topic", "You are subscribed to %(num)d topics"
    assert en.plural(one, many, 1) == "You are subscribed to 1 topic"
    assert en.plural(one, many, 3) == "You are subscribed to 3 topics"
    assert hu.plural(one, many, 3) == "3 témára iratkozott fel"
    assert hu("Almost done") == "Már majdnem kész"


def test_locale_choice_prefers_form_then_tenant_then_browser() -> None:
    assert i18n.choose("hu", "en", accept_language="en") == "hu"
    assert i18n.choose("", "en", accept_language="hu") == "en"
    assert i18n.choose("", "", accept_language="de-DE,hu;q=0.8,en;q=0.5") == "hu"
    assert i18n.choose(None, accept_language="fr, en-GB;q=0.9") == "en"
    assert i18n.choose(None, accept_language="fr") == i18n.DEFAULT_LOCALE
    assert i18n.choose("hu_HU") == "hu"


def test_dates_in_the_locale_and_the_tenants_time_zone() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 8, 4, 23, 30, tzinfo=UTC)  # already the 5th in Budapest
    assert i18n.date_text(when, "hu", "Europe/Budapest") == "2026. augusztus 5."
    assert i18n.date_text(when, "en", "UTC") == "August 4, 2026"
    assert i18n.datetime_text(when, "hu", "Europe/Budapest").startswith("2026. aug. 5. 1:30")
    assert i18n.tidy("from Acme Kft..") == "from Acme Kft." and i18n.tidy("wait...") == "wait..."
