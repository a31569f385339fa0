"""The texts postgate mails and texts itself, in the reader's language: the double
opt-in confirmation (as a campaign template the sender fills with the link) and the
unsubscribe footer of promotional mail."""

from __future__ import annotations

from postgate.pages import render

# The confirmation's template variables, filled per delivery from the send batch.
PLACEHOLDERS = {"tenant": "{{ tenant_name }}", "topic": "{{ topic }}",
                "url": "{{ confirm_url }}", "expires": "{{ expires }}"}


def confirmation(channel: str, locale: str) -> tuple[str, str]:
    """(subject, text) of the confirmation mail or SMS, as Jinja templates."""
    if channel == "sms":
        return "", render.text("confirm_sms.txt", locale, **PLACEHOLDERS).strip()
    subject = render.text("confirm_subject.txt", locale, **PLACEHOLDERS).strip()
    return subject, render.text("confirm_mail.txt", locale, **PLACEHOLDERS)


def footer_label(locale: str) -> str:
    _ = render.words(locale)
    return _("Unsubscribe or change your topics")
