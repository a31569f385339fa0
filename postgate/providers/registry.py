"""Providers by name, loaded lazily; third parties add theirs through an entry point.

A provider is a factory ``(settings, feedback) -> provider`` (an email provider:
``(settings) -> provider``, chosen by ``EMAIL_PROVIDER``) published in the
``postgate.providers`` entry-point group, e.g. in the third party's pyproject::

    [project.entry-points."postgate.providers"]
    acme-sms = "acme_postgate.gateway:AcmeGateway"

postgate's own providers are registered the same way, in its pyproject (installing the
package, ``pip install -e .`` included, writes the entry points). Nothing is imported
until a provider is first asked for by name.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

GROUP = "postgate.providers"


class UnknownProvider(LookupError):
    pass


def available() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


@cache
def factory(name: str) -> Any:
    """The factory registered as ``name``; raises :class:`UnknownProvider`."""
    for ep in entry_points(group=GROUP, name=name):
        return ep.load()
    raise UnknownProvider(f"no provider named {name!r}; available: {', '.join(available())}")
