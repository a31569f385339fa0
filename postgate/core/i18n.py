"""Message catalogues and locale choice for everything postgate writes itself.

Each language is one gettext catalogue, ``locales/<code>.po``, read with Babel and
compiled in memory on first use (so a fresh install needs no compile step). The set of
languages is the set of catalogues: adding one is adding a file. English message ids
are the source text; the English catalogue translates them to themselves, so a test can
require every catalogue to have every id.
"""

from __future__ import annotations

import gettext
import io
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages import mofile, pofile
from babel.messages.catalog import Catalog

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT_LOCALE = "en"
DEFAULT_TIME_ZONE = "Europe/Budapest"


@cache
def available() -> tuple[str, ...]:
    """The languages there is a catalogue for, e.g. ('en', 'hu')."""
    return tuple(sorted(p.stem for p in LOCALES_DIR.glob("*.po")))


def catalogue(code: str) -> Catalog:
    with (LOCALES_DIR / f"{code}.po").open("rb") as f:
        return pofile.read_po(f, locale=code)


@cache
def translations(code: str) -> gettext.GNUTranslations:
    """The compiled catalogue of ``code`` (one of :func:`available`)."""
    buffer = io.BytesIO()
    mofile.write_mo(buffer, catalogue(code))
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def supported(code: str | None) -> str | None:
    """``code`` (``hu``, ``hu-HU``, ``en_GB``) as one of the catalogues, or None."""
    if not code:
        return None
    base = code.replace("_", "-").split("-")[0].strip().lower()
    return base if base in available() else None


def from_accept_language(header: str | None) -> str | None:
    """The best catalogue for an ``Accept-Language`` header, or None."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        code = supported(tag)
        if code and q > 0:
            ranked.append((-q, i, code))
    return min(ranked)[2] if ranked else None


def choose(*preferred: str | None, accept_language: str | None = None) -> str:
    """The first of ``preferred`` there is a catalogue for (the form's locale, then the
    tenant's), else the visitor's ``Accept-Language``, else English."""
    for code in preferred:
        found = supported(code)
        if found:
            return found
    return from_accept_language(accept_language) or DEFAULT_LOCALE


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


def date_text(when: datetime, code: str, time_zone: str | None = None) -> str:
    """A day in the locale's long format, in the tenant's time zone."""
    return str(format_date(when.astimezone(zone(time_zone)), "long", locale=Locale.parse(code)))


def datetime_text(when: datetime, code: str, time_zone: str | None = None) -> str:
    """A moment in the locale's format, in the tenant's time zone."""
    return str(format_datetime(when, "medium", tzinfo=zone(time_zone), locale=Locale.parse(code)))


class Words:
    """gettext for one locale, for Python code that writes text (mails, footers)."""

    def __init__(self, code: str) -> None:
        self.code = supported(code) or DEFAULT_LOCALE
        self._t = translations(self.code)

    def __call__(self, message: str, **values: object) -> str:
        text = self._t.gettext(message)
        return tidy(text % values) if values else text

    def plural(self, singular: str, plural: str, n: int, **values: object) -> str:
        return tidy(self._t.ngettext(singular, plural, n) % {"num": n, **values})


_DOUBLED = re.compile(r"(?<!\.)\.\.(?!\.)")


def tidy(text: str) -> str:
    """One full stop where a name ending in one ends a sentence: 'from Acme Kft..'."""
    return _DOUBLED.sub(".", text)


def sentence(text: str) -> str:
    """``text`` ending in one full stop: 'Acme Kft.' stays, 'Acme' becomes 'Acme.'"""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
