"""Fake destination MX hosts for the direct-to-MX tests: aiosmtpd servers on 127.0.0.1
that also count sessions (one EHLO each, two with STARTTLS) and note TLS, plus the local
DNS server (``tests/dns_server.py``) to publish their MX and A records in."""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller

from postgate.settings import Settings
from postgate.sinks.smtp import SinkHandler, _free_port
from tests.dns_server import LocalDns

FROM = "bounce+1@bounces.example"
MESSAGE = b"From: news@shop.example\r\nTo: someone\r\nSubject: hi\r\n\r\nhello\r\n"


@dataclass
class MxHandler(SinkHandler):
    ehlos: int = 0
    quits: int = 0
    tls: list[bool] = field(default_factory=list)  # per accepted message: was it over TLS

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        with self.lock:
            self.ehlos += 1
        return responses

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.quits += 1
        return "221 Bye"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.tls.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)

    def recipients(self) -> list[str]:
        with self.lock:
            return [r for received in self.received for r in received.recipients]


class MxServer:
    def __init__(self, tls_context: ssl.SSLContext | None = None, **smtp_options: Any) -> None:
        self.handler = MxHandler()
        self.port = _free_port()
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            decode_data=False,
            tls_context=tls_context,
            **smtp_options,
        )
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def mx_settings(dns: LocalDns, ports: dict[str, int], **overrides: Any) -> Settings:
    """Settings that resolve through ``dns`` and reach each fake MX host on its port."""
    mx: dict[str, Any] = {"port_overrides": ports, "timeout_s": 5}
    values: dict[str, Any] = {
        "dns_resolver": dns.address,
        "dns_timeout_s": 3,
        "helo_name": "out.postgate.test",
        # each test's own shaping keys, when REDIS_URL shares one Redis between tests
        "queue_prefix": f"t{uuid.uuid4().hex[:12]}",
    }
    return Settings(providers={"mx": mx | overrides}, **values)


def publish(dns: LocalDns, domain: str, *hosts: tuple[int, str]) -> None:
    """MX records for ``domain`` and an A record (127.0.0.1) for each of their hosts."""
    for preference, host in hosts:
        dns.publish_mx(domain, preference, host)
        dns.publish_a(host)
