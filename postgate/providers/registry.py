"""Providers by name, loaded lazily; third parties add theirs through an entry point.

A provider is a factory ``(settings, feedback) -> provider`` (an email provider:
``(settings) -> provider``, chosen by ``EMAIL_PROVIDER``) published in the
``postgate.providers`` entry-point group, e.g. in the third party's pyproject::

    [project.entry-points."postgate.providers"]
    acme-sms = "acme_postgate.gateway:AcmeGateway"

The built-in ones are listed here too, so a source checkout works without installing.
Nothing is imported until a provider is first asked for by name.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

GROUP = "postgate.providers"
BUILTIN = {
    "smtp": "postgate.providers.smtp:SmtpPool",
    "mx": "postgate.providers.mx:MxProvider",
    "smpp": "postgate.providers.smpp:SmppGateway",
    "smsapi": "postgate.providers.smsapi:SmsApiGateway",
}


class UnknownProvider(LookupError):
    pass


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def available() -> list[str]:
    return sorted({*BUILTIN, *(ep.name for ep in entry_points(group=GROUP))})


@cache
def factory(name: str) -> Any:
    """The factory registered as ``name``; raises :class:`UnknownProvider`."""
    for ep in entry_points(group=GROUP, name=name):
        return ep.load()
    if name in BUILTIN:
        return _resolve(BUILTIN[name])
    raise UnknownProvider(f"no provider named {name!r}; available: {', '.join(available())}")
