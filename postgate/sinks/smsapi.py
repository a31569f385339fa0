"""A local stand-in for the SMSAPI gateway (aiohttp), for the benchmark and the tests.

It answers ``POST /sms.do`` the way SMSAPI does (JSON bodies as in its public docs,
including errors that come with HTTP 200), refuses a repeated ``idx`` when
``check_idx=1``, checks the Bearer token, can be scripted per number to answer with
an error, and can call the ``notify_url`` of accepted messages with delivery reports.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

ERROR_BODIES = {
    13: "No correct phone numbers",
    53: "Not unique idx parameter, message with the same idx has been already sent",
    101: "Invalid authorization info",
    103: "Insufficient credits on your account",
    202: "Too many simultaneous requests, message won't be sent",
    201: "System internal error",
}


@dataclass
class Accepted:
    message_id: str
    form: dict[str, str]


@dataclass
class SmsApiState:
    token: str = "test-token"
    accepted: list[Accepted] = field(default_factory=list)
    requests: int = 0
    scripts: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    seen_idx: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, number: str, *errors: int) -> None:
        """Answer messages to ``number`` with these SMSAPI error codes in turn
        (0 = accept; 500 = an HTTP 500 with an HTML body)."""
        self.scripts[number.lstrip("+")].extend(errors)

    def to(self, number: str) -> list[Accepted]:
        with self.lock:
            return [a for a in self.accepted if a.form.get("to") == number.lstrip("+")]


class SmsApiSink:
    def __init__(self, port: int = 0) -> None:
        self.state = SmsApiState()
        self.port = port or _free_port()
        self.ids = itertools.count(secrets.randbits(40))  # unique across runs, like a real gateway
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SmsApiSink:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/sms.do", self._sms_do)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=1024).start()

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def __enter__(self) -> SmsApiSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _sms_do(self, request: web.Request) -> web.Response:
        st = self.state
        form = {k: str(v) for k, v in (await request.post()).items()}
        with st.lock:
            st.requests += 1
        if request.headers.get("Authorization") != f"Bearer {st.token}":
            return _error(101, status=401)
        number, idx = form.get("to", ""), form.get("idx", "")
        with st.lock:
            queue = st.scripts.get(number)
            scripted = queue.popleft() if queue else 0
            if scripted == 0 and form.get("check_idx") == "1" and idx in st.seen_idx:
                scripted = 53
        if scripted == 500:
            return web.Response(status=500, text="<html>Internal Server Error</html>")
        if scripted:
            return _error(scripted)
        message_id = f"{next(self.ids):X}"
        with st.lock:
            st.seen_idx.add(idx)
            st.accepted.append(Accepted(message_id, form))
        item = {
            "id": message_id,
            "points": 0.16,
            "number": number,
            "date_sent": int(time.time()),
            "submitted_number": number,
            "status": "QUEUE",
            "error": None,
            "idx": idx,
            "parts": int(form.get("max_parts", "1")),
        }
        return web.json_response({"count": 1, "list": [item]})

    def report(self, statuses: dict[str, int] | None = None, default: int = 404) -> int:
        """Call each accepted message's notify_url with its report (404 = DELIVERED), as
        SMSAPI does: MsgId, status, idx, donedate, to. Returns the HTTP status."""
        return asyncio.run_coroutine_threadsafe(
            self._report(statuses or {}, default), self.loop
        ).result(30)

    async def _report(self, statuses: dict[str, int], default: int) -> int:
        with self.state.lock:
            accepted = list(self.state.accepted)
        by_url: dict[str, list[Accepted]] = defaultdict(list)
        for a in accepted:
            by_url[a.form.get("notify_url", "")].append(a)
        status = 0
        async with aiohttp.ClientSession() as session:
            for url, batch in by_url.items():
                params = {
                    "MsgId": ",".join(a.message_id for a in batch),
                    "status": ",".join(str(statuses.get(a.form["to"], default)) for a in batch),
                    "idx": ",".join(a.form.get("idx", "") for a in batch),
                    "donedate": ",".join(str(int(time.time())) for _ in batch),
                    "to": ",".join(a.form["to"] for a in batch),
                    "username": "postgate",
                }
                async with session.get(url, params=params) as response:
                    status = response.status
                    assert (await response.text()) == "OK" or status != 200
        return status


def _error(code: int, status: int = 200) -> web.Response:
    body: dict[str, Any] = {"error": code, "message": ERROR_BODIES.get(code, "Error")}
    if code == 13:
        body["invalid_numbers"] = [
            {"number": "", "submitted_number": "", "message": "Invalid phone number"}
        ]
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
