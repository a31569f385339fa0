"""MTA-STS in direct-to-MX delivery over real sockets: a local HTTPS server publishes the
policies (its certificate issued by the test's own CA), the local DNS server the
``_mta-sts`` records, MX and A records, and aiosmtpd servers stand in for the MX hosts,
one with a certificate from that CA and one with a self-signed (untrusted) one."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from postgate.core import mta_sts
from postgate.core.outcome import Outcome, SendResult
from postgate.providers.mx import MxProvider
from tests.dns_server import LocalDns
from tests.providers.mx_servers import FROM, MESSAGE, MxServer, mx_settings, publish
from tests.providers.test_smtp_tls import tls_context as self_signed

NOW = dt.datetime.now(dt.UTC)


class Ca:
    """A certificate authority of the test's own, trusted through ``MTA_STS_CA_FILE``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "postgate test CA")])
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.file = tmp / "ca.pem"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(minutes=1))
            .not_valid_after(NOW + dt.timedelta(hours=1))
        )

    def server_context(self, *names: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = (
            self._builder(subject, key.public_key())
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = self.tmp / names[0]
        stem.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        stem.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        return context


class PolicyServer:
    """HTTPS on 127.0.0.1 answering ``/.well-known/mta-sts.txt`` per Host header."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.policies: dict[str, str] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").removeprefix("mta-sts.")
                outer.requests.append(host)
                body = outer.policies.get(host)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


DOMAINS = ("strict.example", "trial.example", "fine.example", "elsewhere.example")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ca = Ca(tmp_path)
    dns = LocalDns()
    policies = PolicyServer(ca.server_context(*(f"mta-sts.{d}" for d in DOMAINS)))
    good = MxServer(tls_context=ca.server_context("mx.fine.example", "mx.elsewhere.example"))
    bad = MxServer(tls_context=self_signed(tmp_path))  # valid for nobody we trust
    ports = {"mx.fine.example": good.port, "mx.elsewhere.example": good.port}
    for domain in ("strict.example", "trial.example"):
        publish(dns, domain, (10, f"mx.{domain}"))
        ports[f"mx.{domain}"] = bad.port
    publish(dns, "fine.example", (10, "mx.fine.example"))
    publish(dns, "elsewhere.example", (10, "mx.elsewhere.example"))
    settings = mx_settings(dns, ports).with_provider(
        "mta_sts", ca_file=str(ca.file), policy_address=f"127.0.0.1:{policies.port}"
    )
    try:
        yield {"dns": dns, "policies": policies, "good": good, "bad": bad, "settings": settings}
    finally:
        good.stop()
        bad.stop()
        policies.close()
        dns.close()


def policy(mode: str, *mx: str, max_age: int = 86400) -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


def sts_count(mode: str, event: str) -> float:
    sample = REGISTRY.get_sample_value("postgate_mta_sts_total", {"mode": mode, "event": event})
    return sample or 0.0


def deliver(settings: Any, *recipients: str) -> list[SendResult]:
    provider = MxProvider(settings)

    async def go() -> list[SendResult]:
        await provider.start()
        try:
            return [await provider.send(FROM, r, MESSAGE) for r in recipients]
        finally:
            await provider.close()

    return asyncio.run(go())


def test_enforce_defers_an_untrusted_certificate_and_testing_sends_with_a_report(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    dns, policies, bad = world["dns"], world["policies"], world["bad"]
    for domain, mode in (("strict.example", "enforce"), ("trial.example", "testing")):
        dns.publish(f"_mta-sts.{domain}", "v=STSv1; id=20261202")
        policies.policies[domain] = policy(mode, f"mx.{domain}")
    before_enforce, before_testing = (
        sts_count("enforce", "tls_failed"),
        sts_count("testing", "tls_failed"),
    )

    strict, trial = deliver(world["settings"], "a@strict.example", "b@trial.example")

    assert strict.outcome is Outcome.DEFERRED and strict.code is None
    assert "MTA-STS" in strict.detail and "not sending in clear" in strict.detail
    assert trial.outcome is Outcome.SENT
    assert bad.handler.recipients() == ["b@trial.example"]  # nothing for strict.example
    assert bad.handler.tls == [True]  # testing: opportunistic TLS, as without a policy
    assert sts_count("enforce", "tls_failed") == before_enforce + 1
    assert sts_count("testing", "tls_failed") == before_testing + 1
    assert "MTA-STS testing: MX mx.trial.example has no valid TLS" in caplog.text
    assert sorted(policies.requests) == ["strict.example", "trial.example"]


def test_enforce_sends_over_checked_tls_to_a_named_mx_only(world: dict[str, Any]) -> None:
    dns, policies, good = world["dns"], world["policies"], world["good"]
    dns.publish("_mta-sts.fine.example", "v=STSv1; id=1")
    policies.policies["fine.example"] = policy("enforce", "*.fine.example")
    dns.publish("_mta-sts.elsewhere.example", "v=STSv1; id=1")
    policies.policies["elsewhere.example"] = policy("enforce", "mx.other.example")

    fine, again, elsewhere = deliver(
        world["settings"], "a@fine.example", "b@fine.example", "c@elsewhere.example"
    )

    assert fine.outcome is again.outcome is Outcome.SENT
    assert good.handler.recipients() == ["a@fine.example", "b@fine.example"]
    assert good.handler.tls == [True, True] and good.handler.ehlos == 2  # one checked session
    assert elsewhere.outcome is Outcome.DEFERRED and "in its policy" in elsewhere.detail
    assert policies.requests.count("fine.example") == 1  # cached by id and max_age


def test_no_record_or_an_unfetchable_policy_delivers_as_before(world: dict[str, Any]) -> None:
    dns, policies, bad = world["dns"], world["policies"], world["bad"]
    dns.publish("_mta-sts.trial.example", "v=STSv1; id=7")  # but the policy server has none

    no_record, no_policy = deliver(world["settings"], "a@strict.example", "b@trial.example")

    assert no_record.outcome is no_policy.outcome is Outcome.SENT
    assert sorted(bad.handler.recipients()) == ["a@strict.example", "b@trial.example"]
    assert policies.requests == ["trial.example"]


def test_policy_files_parse_and_patterns_match() -> None:
    parsed = mta_sts.parse(policy("enforce", "mx1.example.com", "*.example.net"), "abc")
    assert parsed == mta_sts.Policy("enforce", ("mx1.example.com", "*.example.net"), 86400, "abc")
    assert mta_sts.matches("MX1.example.com.", parsed.mx)
    assert mta_sts.matches("a.example.net", parsed.mx)
    assert not mta_sts.matches("a.b.example.net", parsed.mx)  # one label only
    assert not mta_sts.matches("example.net", parsed.mx)
    assert mta_sts.txt_id(["v=STSv1; id=20261202"]) == "20261202"
    assert mta_sts.txt_id(["v=STSv1; id=1", "v=STSv1; id=2"]) is None
    assert mta_sts.txt_id(["v=spf1 -all"]) is None
    for bad, why in [
        ("mode: enforce\nmx: a\nmax_age: 1", "version"),
        (policy("strict", "a"), "mode"),
        (policy("enforce", "a", max_age=10**9), "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 60\n", "no mx"),
        ("version: STSv1\njunk\n", "key: value"),
    ]:
        with pytest.raises(mta_sts.PolicyError, match=why):
            mta_sts.parse(bad)


def test_an_mx_without_starttls_is_deferred_under_enforce(world: dict[str, Any]) -> None:
    dns, policies = world["dns"], world["policies"]
    plain = MxServer()  # offers no STARTTLS at all
    try:
        for domain, mode in (("strict.example", "enforce"), ("trial.example", "testing")):
            dns.publish(f"_mta-sts.{domain}", "v=STSv1; id=3")
            policies.policies[domain] = policy(mode, f"mx.{domain}")
        ports = {"mx.strict.example": plain.port, "mx.trial.example": plain.port}
        settings = world["settings"].with_provider("mx", port_overrides=ports)

        strict, trial = deliver(settings, "a@strict.example", "b@trial.example")

        assert strict.outcome is Outcome.DEFERRED and "no STARTTLS offered" in strict.detail
        assert trial.outcome is Outcome.SENT
        assert plain.handler.recipients() == ["b@trial.example"] and plain.handler.tls == [False]
    finally:
        plain.stop()
