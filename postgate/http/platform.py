"""Mounting the platform routers, and naming every route's scope in the OpenAPI document.

``tag_scopes`` makes the document say which key each route takes: ``tenant: …``,
``operator: …`` or ``public: …`` (signup forms, confirmation and unsubscribe pages,
signed provider callbacks), and keyed routes name the bearer scheme.
``tests/platform/test_openapi_scopes.py`` checks every tag against what the route
actually accepts.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from postgate.http import (
    contacts as contacts_routes,
)
from postgate.http import (
    events as event_routes,
)
from postgate.http import (
    lists as list_routes,
)
from postgate.http import (
    results as results_routes,
)
from postgate.http import (
    suppressions as suppression_routes,
)
from postgate.http import (
    tenants as operator_routes,
)

PUBLIC = ("/v1/webhooks/", "/v1/sms/")
SECURITY = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "a key from 'postgate keys create' (pg_...)",
    }
}
TAGS = [
    {"name": "me", "description": "any key: who it belongs to and the tenant's sending state"},
    {
        "name": "tenant",
        "description": "tenant keys (postgate keys create --tenant SLUG): "
        "only ever the tenant's own data; other ids answer 404",
    },
    {"name": "operator", "description": "operator keys (postgate keys create --operator)"},
    {
        "name": "public",
        "description": "no key: signup forms, confirmation and unsubscribe "
        "pages, signed provider callbacks",
    },
]


def install(app: FastAPI) -> None:
    for module in (
        results_routes,
        operator_routes,
        list_routes,
        contacts_routes,
        suppression_routes,
        event_routes,
    ):
        app.include_router(module.router)


def scope_of(path: str) -> str:
    """The key a route takes, from where it lives: operator routes are under
    ``/v1/operator``, public ones are the pages and callbacks outside the keyed api."""
    if path == "/v1/me":
        return "me"
    if path.startswith("/v1/operator"):
        return "operator"
    if path.startswith(PUBLIC) or not path.startswith("/v1/"):
        return "public"
    return "tenant"


def tag_scopes(app: FastAPI) -> None:
    """Give the OpenAPI document scope tags and the bearer scheme (see the module doc)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            routes=app.routes,
            description="Tags name the key a route takes: tenant, operator, or none (public).",
            tags=TAGS,
        )
        for path, operations in schema.get("paths", {}).items():
            scope = scope_of(path)
            for operation in operations.values():
                if scope == "me":
                    operation["tags"] = ["me"]
                    names: list[str] = []
                else:
                    names = [str(tag).split(": ", 1)[-1] for tag in operation.get("tags", [])]
                    operation["tags"] = [f"{scope}: {name}" for name in names] or [scope]
                if scope != "public":
                    operation["security"] = [{"bearer": []}]
        schema.setdefault("components", {})["securitySchemes"] = SECURITY
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
