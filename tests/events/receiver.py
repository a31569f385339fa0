"""A CRM's webhook receiver: a real HTTP server on 127.0.0.1 in a thread that records
every post and answers as a test scripts it (a status, a delay, a redirect)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from postgate.feedback.webhook import verify


@dataclass
class Post:
    headers: dict[str, str]
    body: bytes

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(json.loads(self.body)["events"])

    def signed_by(self, secret: str) -> bool:
        return verify(
            secret,
            self.headers.get("x-postgate-timestamp", ""),
            self.headers.get("x-postgate-signature", ""),
            self.body,
            time.time(),
        )


@dataclass
class Receiver:
    """``answers``: what the next posts get, in turn — an int status, ``("sleep", s)``
    or ``("redirect", url)``; when empty, 200."""

    posts: list[Post] = field(default_factory=list)  # taken (answered 2xx)
    refused: list[Post] = field(default_factory=list)  # answered otherwise
    answers: deque[Any] = field(default_factory=deque)
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/postgate"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [ev for post in self.posts for ev in post.events]

    def ids(self) -> set[str]:
        return {ev["id"] for ev in self.events()}


def serve() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            post = Post({k.lower(): v for k, v in self.headers.items()}, body)
            with receiver.lock:
                answer = receiver.answers.popleft() if receiver.answers else 200
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            if isinstance(answer, tuple) and answer[0] == "sleep":  # longer than the client waits
                with receiver.lock:
                    receiver.refused.append(post)
                time.sleep(answer[1])
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                return
            if isinstance(answer, tuple) and answer[0] == "redirect":
                with receiver.lock:
                    receiver.refused.append(post)
                self.send_response(302)
                self.send_header("Location", answer[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with receiver.lock:
                (receiver.posts if 200 <= answer < 300 else receiver.refused).append(post)
            self.send_response(answer)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
