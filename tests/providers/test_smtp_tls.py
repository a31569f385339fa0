"""The SMTP pool against a smarthost that insists on STARTTLS and AUTH (aiosmtpd on a real
socket with a self-signed certificate), and an address that tries to smuggle a command."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from postgate.core.outcome import Outcome
from postgate.providers.smtp import SmtpPool
from postgate.settings import Settings
from postgate.sinks.smtp import SinkHandler, _free_port

MESSAGE = b"From: a@x.example\r\nTo: b@y.example\r\nSubject: hi\r\n\r\nhello\r\n"


def tls_context(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"pg", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smarthost(tmp_path: Path) -> Any:
    handler = SinkHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=_free_port(),
        tls_context=tls_context(tmp_path),
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    yield controller, handler
    controller.stop()


def pool(port: int, **overrides: Any) -> SmtpPool:
    values: dict[str, Any] = {
        "port": port,
        "tls": "starttls",
        "validate_certs": False,
        "user": "pg",
        "password": "s3cret",
        "connections": 1,
        "timeout_s": 5,
    }
    settings = Settings(providers={"smtp": values | overrides})
    return SmtpPool(settings)


async def send(smtp: SmtpPool, rcpt: str) -> Any:
    await smtp.start()
    try:
        return await smtp.send("bounce@x.example", rcpt, MESSAGE)
    finally:
        await smtp.close()


def test_starttls_and_auth(smarthost: Any) -> None:
    controller, handler = smarthost
    result = asyncio.run(send(pool(controller.port), "b@y.example"))
    assert result.outcome is Outcome.SENT
    assert [r.recipients for r in handler.received] == [["b@y.example"]]


def test_wrong_password_is_not_sent(smarthost: Any) -> None:
    controller, handler = smarthost
    result = asyncio.run(send(pool(controller.port, password="nope"), "b@y.example"))
    assert result.outcome is Outcome.DEFERRED and handler.received == []


def test_an_address_cannot_smuggle_smtp_commands(smarthost: Any) -> None:
    controller, handler = smarthost
    result = asyncio.run(send(pool(controller.port), "b@y.example>\r\nRCPT TO:<evil@z.example"))
    assert result.outcome is Outcome.FAILED and handler.received == []
