"""The provider interface: what the sender needs from any way out."""

from __future__ import annotations

from typing import Protocol

from postgate.core.outcome import SendResult


class EmailProvider(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult: ...
