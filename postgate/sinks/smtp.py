"""A local SMTP sink (aiosmtpd) for the demo and the tests: a real server on a real socket.

It records every accepted message and can be told, per recipient, to answer with a
scripted sequence of replies (``"451 4.3.0 try later"``, ``"550 5.1.1 user unknown"``)
or to drop the connection right after the DATA payload arrives.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    data: bytes
    peer: str = ""  # the client's address (which source address it came from)


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    dropped: list[Received] = field(default_factory=list)  # hung up on after DATA
    rcpt_replies: dict[str, deque[str | None]] = field(default_factory=lambda: defaultdict(deque))
    drop_after_data: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    transactions: int = 0
    pipelining: bool = True  # offer PIPELINING (RFC 2920), as Postfix and most MTAs do
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads commands in turn, so it handles a pipeline
            responses.insert(-1, "250-PIPELINING")
        return responses

    def script(self, address: str, *replies: str | None) -> None:
        """Answer RCPT TO ``address`` with these replies in turn (None = accept)."""
        self.rcpt_replies[address.lower()].extend(replies)

    def drop(self, address: str, times: int = 1) -> None:
        """Hang up after DATA for ``address``, ``times`` times (the outcome is unknown)."""
        self.drop_after_data[address.lower()] += times

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            queue = self.rcpt_replies.get(address.lower())
            reply = queue.popleft() if queue else None
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.transactions += 1
            dropped = [a for a in envelope.rcpt_tos if self.drop_after_data.get(a.lower(), 0) > 0]
            for address in dropped:
                self.drop_after_data[address.lower()] -= 1
        if dropped:
            with self.lock:
                self.dropped.append(
                    Received(
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        envelope.original_content or envelope.content,
                    )
                )
            server.transport.close()
            return "451 4.3.0 connection closed"
        with self.lock:
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content or envelope.content,
                    session.peer[0] if session.peer else "",
                )
            )
        return "250 2.0.0 OK queued"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address.lower() in map(str.lower, r.recipients)]


class SmtpSink:
    """Start and stop an aiosmtpd server on 127.0.0.1 in its own thread."""

    def __init__(self, port: int = 0, handler: SinkHandler | None = None) -> None:
        self.handler = handler or SinkHandler()
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=port or _free_port(),
            decode_data=False,
            data_size_limit=10_000_000,
        )

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
