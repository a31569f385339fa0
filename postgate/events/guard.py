"""Where a tenant's webhook may point: never at the platform's own network.

A URL is refused when its host is, or resolves to, a loopback, private, link-local,
shared, reserved or multicast address, unless the operator allowed that network
(``WEBHOOK_ALLOW_NETWORKS``); plain ``http://`` is accepted only for such an allowed,
internal address. The check runs when the endpoint is registered and again on every
connection (:class:`GuardedResolver`), so a name re-pointed at an internal address after
registration (DNS rebinding) is refused too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """The URL may not be used, and why."""


def networks(spec: str) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip()) for part in spec.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"WEBHOOK_ALLOW_NETWORKS: {exc}") from None


def allowed(address: Address, allow: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in allow)


def public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_address(host: str, address: Address, allow: Sequence[Network]) -> bool:
    """Whether a connection may go to ``address``; True when it is an allowed internal
    one (plain http is then acceptable); raises :class:`Refused` when it may not."""
    if allowed(address, allow):
        return True
    if not public(address):
        raise Refused(f"{host} resolves to {address}, a non-public address")
    return False


def split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable-looking URL, or :class:`Refused`."""
    if len(url) > 2000:
        raise Refused("the URL is longer than 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("the URL must be https://")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username or parts.password:
        raise Refused("credentials in the URL are not accepted: the body is signed instead")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_url(url: str, allow: Sequence[Network]) -> None:
    """Refuse ``url`` unless every address its host has is acceptable (registration)."""
    scheme, host, port = split(url)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[Address] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise Refused(f"{host} does not resolve: {exc.strerror or exc}") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    internal = [check_address(host, a, allow) for a in addresses]
    if scheme == "http" and not all(internal):
        raise Refused("the URL must be https:// (plain http only for an allowed internal host)")


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver with the same refusal: what a name resolves to at connection
    time must pass too (literal IPs are checked by :func:`check_url` before a post)."""

    def __init__(self, allow: Sequence[Network]) -> None:
        self.allow = tuple(allow)
        self.inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        kept = []
        for result in results:
            try:
                check_address(host, ipaddress.ip_address(result["host"]), self.allow)
            except Refused:
                continue
            kept.append(result)
        if not kept:
            raise OSError(f"{host}: every address it resolves to is refused")
        return kept

    async def close(self) -> None:
        await self.inner.close()
