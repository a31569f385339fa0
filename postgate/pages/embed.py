"""The embeddable snippet of a form: plain HTML a tenant pastes into its site. It posts
straight to the form's public URL (no script, no CORS needed); the answer, and any error
with what was typed, is the hosted page in the visitor's language."""

from __future__ import annotations

from typing import Any

from postgate.core import i18n
from postgate.pages import render


def snippet(form: Any, public_url: str) -> str:
    locale = i18n.choose(form.locale)
    return (
        render.environment(locale)
        .get_template("embed.html")
        .render(
            form=form,
            action=f"{public_url.rstrip('/')}/f/{form.public_id}",
            channels=list(form.channels),
        )
        .strip()
        + "\n"
    )
