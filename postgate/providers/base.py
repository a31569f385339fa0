"""The provider interface: what the sender needs from any way out."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol

from postgate.core.outcome import SendResult

# the slug of the tenant whose message is being sent: the sender sets it around each
# ``send`` (providers that shape per tenant read it; others need not care)
SENDING_TENANT: ContextVar[str] = ContextVar("sending_tenant", default="")
# the local address the message's connection is made from ("": the system's choice); the
# sender sets it from MX_SOURCES (``workers/source_turns.py``), the MX provider binds to it
SENDING_SOURCE: ContextVar[str] = ContextVar("sending_source", default="")


class EmailProvider(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult: ...
