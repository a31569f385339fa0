"""The visitor pages of signup forms and double opt-in, each naming the tenant, the topic
in words and the consent text that was shown, in the form's, the tenant's or the
visitor's language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection, Engine, select

from postgate.core import i18n
from postgate.core.clock import aware
from postgate.pages import form_check
from postgate.pages.render import locale_for, page, words
from postgate.store import tables as t
from postgate.tenants import brand as brands
from postgate.tenants.brand import Brand, Topic

NOBODY = Brand(0, "")
FIELD_ORDER = ("email", "phone", "name")


@dataclass(frozen=True, slots=True)
class FormView:
    """A form as its page shows it."""

    public_id: str
    name: str
    channels: list[str]
    consent_text: str
    brand: Brand
    topic: Topic
    locale: str


def form_view(conn: Connection, form: Any, locale: str) -> FormView:
    return FormView(
        form.public_id,
        form.name,
        list(form.channels),
        form.consent_text,
        brands.load(conn, form.tenant_id),
        brands.topic(conn, form.tenant_id, form.topic, locale),
        locale,
    )


def form_locale(conn: Connection, request: Request, form: Any) -> str:
    return locale_for(
        request, getattr(form, "locale", ""), brands.load(conn, form.tenant_id).locale
    )


def form_page(
    engine: Engine,
    request: Request,
    form: Any,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    notice: str = "",
) -> HTMLResponse:
    with engine.connect() as conn:
        locale = form_locale(conn, request, form)
        view = form_view(conn, form, locale)
    _ = words(locale)
    fields = [
        f
        for f in FIELD_ORDER
        if f == "name"
        or (f == "email" and "email" in view.channels)
        or (f == "phone" and "sms" in view.channels)
    ]
    title = _("Subscribe: %(topic)s", topic=view.topic.name)
    return page(
        locale,
        "form.html",
        view.brand,
        title,
        status,
        form=view,
        fields=fields,
        values=values or {},
        errors=errors or {},
        notice=notice,
        action=f"/f/{view.public_id}",
    )


def pending_page(
    engine: Engine, request: Request, form: Any, message: str, status: int = 202
) -> HTMLResponse:
    with engine.connect() as conn:
        locale = form_locale(conn, request, form)
        view = form_view(conn, form, locale)
    _ = words(locale)
    if not message:
        message = _("Check your mailbox.") if "email" in view.channels else _("Check your phone.")
    return page(
        locale, "pending.html", view.brand, _("Almost done"), status, form=view, message=message
    )


def _pending_context(conn: Connection, request: Request, row: Any) -> tuple[str, Brand, Topic, str]:
    f = t.signup_form.c
    form = conn.execute(select(f.consent_text, f.locale).where(f.id == row.form_id)).one()
    brand = brands.load(conn, row.tenant_id)
    locale = locale_for(request, form.locale, brand.locale)
    return locale, brand, brands.topic(conn, row.tenant_id, row.topic, locale), form.consent_text


def confirm_page(engine: Engine, request: Request, row: Any) -> HTMLResponse:
    with engine.connect() as conn:
        locale, brand, topic, consent_text = _pending_context(conn, request, row)
    _ = words(locale)
    signed_up = i18n.datetime_text(aware(row.created_at), locale, brand.time_zone)
    return page(
        locale,
        "confirm.html",
        brand,
        _("Confirm your subscription"),
        topic=topic,
        consent_text=consent_text,
        signed_up=signed_up,
        channel=row.channel,
        address=row.address,
    )


def confirmed_page(engine: Engine, request: Request, row: Any, now: datetime) -> HTMLResponse:
    with engine.connect() as conn:
        locale, brand, topic, consent_text = _pending_context(conn, request, row)
    _ = words(locale)
    return page(
        locale,
        "confirmed.html",
        brand,
        _("Subscription confirmed"),
        topic=topic,
        consent_text=consent_text,
        message=row.confirmed_message,
        confirmed=i18n.datetime_text(now, locale, brand.time_zone),
        channel=row.channel,
        address=row.address,
    )


def invalid_link(request: Request, kind: str = "confirm") -> HTMLResponse:
    locale = locale_for(request)
    _ = words(locale)
    return page(locale, "invalid.html", NOBODY, _("Link not valid"), 404, kind=kind)


def error_page(
    request: Request,
    status: int,
    detail: str = "",
    brand: Brand = NOBODY,
    locale: str | None = None,
) -> HTMLResponse:
    """A page for a person that says what went wrong and what to do about it."""
    locale = locale or locale_for(request, brand.locale)
    _ = words(locale)
    explain = {
        404: _(
            "There is no such page. Check the address, or go back to the site that sent you here."
        ),
        413: _("What you sent is too long. Shorten it and try again."),
        415: _(
            "Your browser sent the form in a way we cannot read. Try again from the form itself."
        ),
        429: _("Too many signups came from here just now. Wait a few minutes and try again."),
        503: _("We cannot take your signup right now. Try again in a few minutes."),
    }
    message = explain.get(status) or _(
        "Something in what you sent could not be read. Go back, check it and try again."
    )
    return page(
        locale,
        "error.html",
        brand,
        _("Something went wrong"),
        status,
        message=message,
        detail=detail,
    )


def signup_locale(engine: Engine, request: Request, form: Any) -> str:
    """The language of a signup's confirmation: the form's, the tenant's, the visitor's."""
    with engine.connect() as conn:
        return form_locale(conn, request, form)


def form_error(
    engine: Engine, request: Request, form: Any | None, fields: dict[str, str], exc: HTTPException
) -> HTMLResponse:
    """The form again, with what was typed and what to fix; a page saying what went wrong
    when there is no form to show."""
    if form is None:
        return error_page(request, exc.status_code, str(exc.detail))
    with engine.connect() as conn:
        locale = form_locale(conn, request, form)
    settings = request.app.state.settings
    values = {k: v for k, v in fields.items() if k in FIELD_ORDER and len(v) <= 1000}
    if exc.status_code == 422:
        errors = form_check.problems(
            list(form.channels), fields, settings.signup_sms_regions, words(locale)
        )
        if errors:
            return form_page(engine, request, form, values, errors, 422)
    return form_page(
        engine,
        request,
        form,
        values,
        status=exc.status_code,
        notice=_notice(exc.status_code, locale),
    )


def _notice(status: int, locale: str) -> str:
    _ = words(locale)
    return {
        403: _("This form cannot be sent from that site. Open the form on its own page."),
        413: _("What you sent is too long. Shorten it and try again."),
        422: _("Something you typed cannot be used. Check each field and try again."),
        429: _("Too many signups came from here just now. Wait a few minutes and try again."),
        503: _("We cannot take your signup right now. Try again in a few minutes."),
    }.get(status, _("Something in what you sent could not be read. Check it and try again."))
