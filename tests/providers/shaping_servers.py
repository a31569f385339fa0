"""For the traffic-shaping tests: an aiosmtpd MX host that counts its open SMTP sessions
(the most ever open at once, from connect to QUIT or hang-up) and stamps each accepted
message with the time it arrived, and a shaping file written for a test."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from postgate.sinks.smtp import _free_port
from tests.providers.mx_servers import MxHandler


@dataclass
class Sessions:
    open: int = 0
    most: int = 0
    total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def opened(self) -> None:
        with self.lock:
            self.open += 1
            self.total += 1
            self.most = max(self.most, self.open)

    def closed(self) -> None:
        with self.lock:
            self.open -= 1


@dataclass
class StampingHandler(MxHandler):
    arrived: list[float] = field(default_factory=list)  # monotonic, per accepted message

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            with self.lock:
                self.arrived.append(time.monotonic())
        return reply

    def most_in(self, window: float) -> int:
        """The most messages that arrived within any ``window`` seconds."""
        with self.lock:
            stamps = sorted(self.arrived)
        return max(
            (sum(1 for t in stamps[i:] if t - s < window) for i, s in enumerate(stamps)),
            default=0,
        )


class CountingSmtp(SMTP):
    def __init__(self, sessions: Sessions, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions = sessions
        self.counted = False

    def connection_made(self, transport: Any) -> None:
        self.sessions.opened()
        self.counted = True
        super().connection_made(transport)

    def _end(self) -> None:
        if self.counted:
            self.counted = False
            self.sessions.closed()

    async def smtp_QUIT(self, arg: str) -> None:
        self._end()  # the session is over once QUIT is read, whenever the socket goes
        await super().smtp_QUIT(arg)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        super().connection_lost(exc)


class CountingController(Controller):
    def __init__(self, sessions: Sessions, *args: Any, **kwargs: Any) -> None:
        self.sessions = sessions
        super().__init__(*args, **kwargs)

    def factory(self) -> SMTP:
        return CountingSmtp(self.sessions, self.handler, **self.SMTP_kwargs)


class CountingMx:
    def __init__(self) -> None:
        self.handler = StampingHandler()
        self.sessions = Sessions()
        self.port = _free_port()
        self.controller = CountingController(
            self.sessions, self.handler, hostname="127.0.0.1", port=self.port, decode_data=False
        )
        self.controller.start()  # which opens one session itself to see the server is up
        deadline = time.monotonic() + 5
        while self.sessions.open and time.monotonic() < deadline:
            time.sleep(0.01)
        self.sessions = self.controller.sessions = Sessions()

    def stop(self) -> None:
        self.controller.stop()


def shaping_file(tmp_path: Path, google: str, extra: str = "", max_wait_s: float = 10) -> Path:
    """A shaping file with a ``google`` group (``*.google.com``) limited by ``google``
    (TOML lines), the default group, and the built-in Gmail rate-limit rule."""
    path = tmp_path / "shaping.toml"
    path.write_text(
        f"max_wait_s = {max_wait_s}\nlease_s = 3\n\n"
        f'[groups.google]\nmx = ["*.google.com", "*.googlemail.com"]\n{google}\n\n'
        "[groups.default]\n\n"
        "[[rules]]\n"
        'name = "gmail-rate-limit"\ngroups = ["google"]\ncode = 421\n'
        "text = '4\\.7\\.28'\naction = \"slow\"\nfactor = 0.5\nminutes = 1\n"
        f"{extra}",
        encoding="utf-8",
    )
    return path
