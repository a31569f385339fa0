"""The operator page's routes: login, the page, its live panels and the kill switch forms.

- ``GET  /operator``                         the page (a login redirect without a session)
- ``GET  /operator/panels``                  the live part, polled by the page's script
- ``GET|POST /operator/login``, ``POST /operator/logout``
- ``POST /operator/tenants/{slug}/cancel-held``  cancel a tenant's held deliveries
- ``POST /operator/tenants/{slug}/stop``     a sending block: scope, reason, confirmation
- ``POST /operator/tenants/{slug}/resume``   clear a scope's blocks, with a reason

Stopping and resuming go through the kill switch's own handlers
(:mod:`postgate.http.kill_switch`), so they commit, audit, announce on pub/sub and
requeue held rows exactly as the api does.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from postgate.core.clock import utcnow
from postgate.http import kill_switch
from postgate.http.auth import Principal
from postgate.http.ratelimit import Limiter, limiter_for
from postgate.operator_page import overview, sessions

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["hms"] = lambda at: at.strftime("%H:%M:%S") if at else ""
templates.env.filters["when"] = lambda at: at.strftime("%Y-%m-%d %H:%M:%S") if at else ""
router = APIRouter(prefix=sessions.PATH, include_in_schema=False)
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
LOGIN_LIMIT, LOGIN_WINDOW_S = 20, 600.0
NOTICES = {
    "stopped": "Sending stopped",
    "resumed": "Sending re-enabled",
    "cancelled": "Held deliveries cancelled",
}
DONE = {"stop": "stopped", "resume": "resumed", "cancel": "cancelled"}
UNCONFIRMED = {
    "stop": "Tick the confirmation to stop sending.",
    "cancel": "Tick the confirmation to cancel held deliveries.",
}
INVALID = {
    "stop": "A scope and a reason of at least 3 characters are required.",
    "resume": "A scope and a reason of at least 3 characters are required.",
    "cancel": "A reason of at least 3 characters is required.",
}


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(HEADERS)
    return response


def _session(request: Request) -> tuple[Principal | None, str | None]:
    token = request.cookies.get(sessions.COOKIE)
    return sessions.principal(request.app.state.engine, token, utcnow()), token


def _to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})


def _page(
    request: Request,
    operator: Principal,
    token: str,
    status: int = 200,
    error: str = "",
    notice: str = "",
) -> HTMLResponse:
    app = request.app.state
    blocks = kill_switch.list_blocks(request, operator, active=True)
    view = overview.read(app.engine, app.settings, blocks, utcnow())
    return _render(
        request,
        "page.html",
        status,
        view=view,
        operator=operator,
        error=error,
        notice=notice,
        csrf=sessions.csrf_token(app.settings.secret_key, token),
        refresh_ms=int(app.settings.operator_refresh_s * 1000),
    )


@router.get("")
def page(request: Request, done: str = "", tenant: str = "", scope: str = "") -> Response:
    operator, token = _session(request)
    if operator is None or token is None:
        return _to(f"{sessions.PATH}/login")
    notice = f"{NOTICES[done]}: {tenant}, {scope}" if done in NOTICES else ""
    return _page(request, operator, token, notice=notice)


@router.get("/panels")
def panels(request: Request) -> Response:
    operator, _ = _session(request)
    if operator is None:
        raise HTTPException(401, "log in again")
    app = request.app.state
    blocks = kill_switch.list_blocks(request, operator, active=True)
    view = overview.read(app.engine, app.settings, blocks, utcnow())
    return _render(request, "panels.html", view=view)


@router.get("/login")
def login_form(request: Request) -> Response:
    if _session(request)[0] is not None:
        return _to(sessions.PATH)
    return _render(request, "login.html")


def _limiter(request: Request) -> Limiter:
    app = request.app.state
    if not hasattr(app, "operator_login_limiter"):
        app.operator_login_limiter = limiter_for(app.settings.redis_url, app.settings.queue_prefix)
    limiter: Limiter = app.operator_login_limiter
    return limiter


@router.post("/login")
def login(request: Request, key: Annotated[str, Form(max_length=500)]) -> Response:
    settings = request.app.state.settings
    if not sessions.same_origin(request):
        return _render(request, "login.html", 403, error="This form must be sent from the page.")
    client = request.client.host if request.client else "unknown"
    if not _limiter(request).allow(f"operator-login:{client}", LOGIN_LIMIT, LOGIN_WINDOW_S):
        return _render(request, "login.html", 429, error="Too many attempts; wait a few minutes.")
    try:
        token = sessions.start(
            request.app.state.engine,
            key,
            timedelta(seconds=settings.operator_session_ttl_s),
            utcnow(),
        )
    except sessions.Refused as exc:
        return _render(request, "login.html", exc.status, error=str(exc))
    response = _to(sessions.PATH)
    response.set_cookie(
        sessions.COOKIE,
        token,
        max_age=int(settings.operator_session_ttl_s),
        path=sessions.PATH,
        httponly=True,
        samesite="strict",
        secure=sessions.secure_cookie(request, settings.public_url),
    )
    return response


def _checked(request: Request, csrf: str) -> tuple[Principal, str] | Response:
    """The operator of a form post that passes the session, Origin and CSRF checks."""
    operator, token = _session(request)
    if operator is None or token is None:
        return _to(f"{sessions.PATH}/login")
    secret = request.app.state.settings.secret_key
    if not sessions.same_origin(request) or not sessions.csrf_ok(secret, token, csrf):
        return _page(
            request,
            operator,
            token,
            403,
            error="The form expired or did not come from this page; try again.",
        )
    return operator, token


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    checked = _checked(request, csrf)
    if isinstance(checked, Response):
        return checked
    sessions.end(request.app.state.engine, checked[1], utcnow())
    response = _to(f"{sessions.PATH}/login")
    response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
    return response


def _change(
    request: Request, slug: str, action: str, csrf: str, confirmed: bool, **fields: Any
) -> Response:
    """One kill switch form: the session and its CSRF token, the confirmation tick, then
    the kill switch api's own handler, whose refusals come back as the page's error."""
    checked = _checked(request, csrf)
    if isinstance(checked, Response):
        return checked
    operator, token = checked
    if not confirmed:
        return _page(request, operator, token, 422, error=UNCONFIRMED[action])
    try:
        if action == "cancel":
            done = kill_switch.cancel_held(
                request, operator, slug, kill_switch.CancelRequest(**fields)
            )
            scope = f"{done['cancelled']} deliveries"
        else:
            body = kill_switch.BlockRequest(**fields)
            scope = body.scope
            change = kill_switch.set_block if action == "stop" else kill_switch.clear_block
            change(request, operator, slug, body)
    except ValidationError:
        return _page(request, operator, token, 422, error=INVALID[action])
    except HTTPException as exc:
        return _page(request, operator, token, exc.status_code, error=str(exc.detail))
    return _to(
        f"{sessions.PATH}?" + urlencode({"done": DONE[action], "tenant": slug, "scope": scope})
    )


@router.post("/tenants/{slug}/stop")
def stop(
    request: Request,
    slug: str,
    scope: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    return _change(
        request, slug, "stop", csrf, confirm == "yes", scope=scope, reason=reason.strip()
    )


@router.post("/tenants/{slug}/resume")
def resume(
    request: Request,
    slug: str,
    scope: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    return _change(request, slug, "resume", csrf, True, scope=scope, reason=reason.strip())


@router.post("/tenants/{slug}/cancel-held")
def cancel_held(
    request: Request,
    slug: str,
    reason: Annotated[str, Form(max_length=2000)] = "",
    held: Annotated[int, Form(ge=0)] = 0,
    held_at: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Cancel a stopped tenant's held deliveries for good (they are never sent): exactly
    the ``held`` the operator was shown at ``held_at``, else nothing and the page says
    why."""
    return _change(
        request,
        slug,
        "cancel",
        csrf,
        confirm == "yes",
        reason=reason.strip(),
        expected=held,
        held_before=held_at or None,
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(
        f"{sessions.PATH}/static", StaticFiles(directory=HERE / "static"), name="operator-static"
    )
