"""The texts postgate mails and texts itself, in the reader's language: the double
opt-in confirmation (as a campaign template the sender fills with the link) and the
unsubscribe footer of promotional mail."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from postgate.core import i18n

TEMPLATES = Path(__file__).parent / "templates"

# The confirmation's template variables, filled per delivery from the send batch.
PLACEHOLDERS = {
    "tenant": "{{ tenant_name }}",
    "topic": "{{ topic }}",
    "url": "{{ confirm_url }}",
    "expires": "{{ expires }}",
}


@cache
def environment(locale: str) -> Environment:
    """Plain-text templates (mails, SMS) with ``locale``'s catalogue installed."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=False,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(  # type: ignore[attr-defined]
        i18n.translations(locale), newstyle=True
    )
    env.filters["sentence"] = i18n.sentence
    env.globals["locale"] = locale
    return env


def text(template: str, locale: str, **context: Any) -> str:
    """A plain-text template (a mail, an SMS) in ``locale``."""
    return environment(locale).get_template(template).render(**context)


def confirmation(channel: str, locale: str) -> tuple[str, str]:
    """(subject, text) of the confirmation mail or SMS, as Jinja templates."""
    if channel == "sms":
        return "", text("confirm_sms.txt", locale, **PLACEHOLDERS).strip()
    subject = text("confirm_subject.txt", locale, **PLACEHOLDERS).strip()
    return subject, text("confirm_mail.txt", locale, **PLACEHOLDERS)


def footer_label(locale: str) -> str:
    _ = i18n.Words(locale)
    return _("Unsubscribe or change your topics")
