"""Amazon SES notifications over SNS, through the real api: SNS messages signed in the test
with a real RSA key (SignatureVersion 1 and 2), whose certificate a local HTTP server
serves; subscription confirmations followed only to allowed hosts; bounces and
complaints about mail the sender really sent applied once by our own Message-ID or
VERP; Delivery notifications ignored; unsigned, forged, foreign-topic and tampered
messages refused with 403 and counted; forged references kept unverified."""

from __future__ import annotations

import base64
import email
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY
from sqlalchemy import or_, select

from postgate.feedback import sns
from postgate.http.sns import CERTIFICATES
from postgate.store import tables as t
from tests.support import World

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"


def keypair(name: str) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Amazon:
    """A local stand-in for SNS's certificate and confirmation endpoints."""

    base: str
    key: rsa.RSAPrivateKey
    files: dict[str, bytes]
    hits: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def sign(self, message: dict[str, Any], version: str = "1", key: Any = None) -> bytes:
        message = {
            "SignatureVersion": version,
            "SigningCertURL": self.url("/SimpleNotificationService-1.pem"),
            **message,
        }
        env = sns.Envelope(
            message["Type"],
            "",
            "",
            "",
            version,
            b"",
            "",
            "",
            {k: str(v) for k, v in message.items()},
        )
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signed = (key or self.key).sign(sns.canonical(env), padding.PKCS1v15(), digest)
        message["Signature"] = base64.b64encode(signed).decode()
        return json.dumps(message).encode()


@pytest.fixture(scope="module")
def amazon() -> Iterator[Amazon]:
    key, pem = keypair("sns.eu-west-1.amazonaws.com")
    files = {"/SimpleNotificationService-1.pem": pem, "/not-a-cert.pem": b"hello"}
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            path = self.path.split("?", 1)[0]
            body = files.get(path, b"<ConfirmSubscriptionResponse/>")
            self.send_response(200 if path in files or path == "/confirm" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Amazon(f"http://127.0.0.1:{server.server_address[1]}", key, files, hits)
    server.shutdown()
    server.server_close()


def configure(world: World) -> None:
    world.ctx.settings.ses_sns_topics = [TOPIC]
    world.ctx.settings.sns_hosts = ["127.0.0.1"]  # the local stand-in, over plain http


def sent(world: World, n: int) -> list[tuple[int, str, str, str]]:
    """A campaign really sent through the sink: (delivery, address, Message-ID, VERP)."""
    for i in range(n):
        world.contact(f"ses{i}")
    world.publish(world.message("ses"))
    world.run(world.finished("ses"))
    by_rcpt = {}
    for mail in world.sink.handler.received:
        parsed = email.message_from_bytes(mail.data)
        by_rcpt[mail.recipients[0]] = (str(parsed["Message-ID"]), mail.envelope_from)
    return [
        (r.id, r.address, *by_rcpt[r.address])
        for r in sorted(world.deliveries("ses"), key=lambda r: r.id)
    ]


def notification(
    kind: str, address: str, message_id: str = "", source: str = "news@acme.example", **extra: Any
) -> dict[str, Any]:
    mail = {
        "timestamp": "2026-12-02T10:00:00.000Z",
        "source": source,
        "messageId": "0102018e0000000c-ses",
        "destination": [address],
        "headers": [{"name": "Message-ID", "value": message_id}] if message_id else [],
        "commonHeaders": {"messageId": message_id} if message_id else {},
    }
    body: dict[str, Any] = {"notificationType": kind, "mail": mail}
    if kind == "Bounce":
        body["bounce"] = {
            "bounceType": extra.get("bounce_type", "Permanent"),
            "bounceSubType": extra.get("subtype", "General"),
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": extra.get("status", "5.1.1"),
                    "diagnosticCode": extra.get("diagnostic", "smtp; 550 5.1.1 user unknown"),
                }
            ],
        }
    elif kind == "Complaint":
        body["complaint"] = {
            "complainedRecipients": [{"emailAddress": address}],
            "complaintFeedbackType": "abuse",
        }
    elif kind == "Delivery":
        body["delivery"] = {"recipients": [address], "smtpResponse": "250 ok"}
    return {
        "Type": "Notification",
        "MessageId": extra.get("sns_id", f"sns-{kind}-{address}"),
        "TopicArn": extra.get("topic", TOPIC),
        "Message": json.dumps(body),
        "Timestamp": "2026-12-02T10:00:01.000Z",
    }


def events(world: World) -> list[tuple[Any, ...]]:
    """SNS events about this world's tenant or its recipients (unverified ones have no
    tenant)."""
    e, d = t.feedback_event.c, t.delivery.c
    mine = select(d.address).where(d.tenant_id == world.tenant_id)
    with world.ctx.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(e.kind, e.hard, e.reason, e.delivery_id, e.source, e.verification)
                .where(
                    e.source == "sns",
                    or_(e.tenant_id == world.tenant_id, e.address.in_(mine)),
                )
                .order_by(e.id)
            )
        ]


def suppressed(world: World) -> dict[str, str]:
    s = t.suppression.c
    with world.ctx.engine.connect() as conn:
        return dict(
            conn.execute(select(s.address, s.reason).where(s.tenant_id == world.tenant_id)).all()
        )


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("postgate_sns_refused_total", {"reason": reason}) or 0.0


def post(http: httpx.Client, body: bytes) -> httpx.Response:
    return http.post(
        "/v1/webhooks/ses", content=body, headers={"Content-Type": "text/plain; charset=UTF-8"}
    )


def test_notifications_are_applied_once_by_our_own_references(
    world: World, api: str, amazon: Amazon
) -> None:
    configure(world)
    rows = sent(world, 5)
    (d0, a0, mid0, _), (d1, a1, mid1, _), (d2, a2, _, verp2), (d3, a3, mid3, _) = rows[:4]
    _, a4, mid4, _ = rows[4]
    fetched = CERTIFICATES.fetches
    with httpx.Client(base_url=api, timeout=10) as http:
        bounce = amazon.sign(notification("Bounce", a0, mid0))
        assert post(http, bounce).json() == {"applied": 1, "duplicate": 0, "ignored": 0}
        assert post(http, bounce).json() == {"applied": 0, "duplicate": 1, "ignored": 0}
        complaint = amazon.sign(notification("Complaint", a1, mid1), version="2")
        assert post(http, complaint).json()["applied"] == 1
        # no Message-ID kept, but the VERP return path SES reports as the source
        by_verp = notification(
            "Bounce",
            a2,
            source=verp2,
            status="5.2.2",
            bounce_type="Transient",
            subtype="MailboxFull",
            diagnostic="smtp; 552 5.2.2 mailbox full",
        )
        assert post(http, amazon.sign(by_verp, version="2")).json()["applied"] == 1
        policy = notification(
            "Bounce",
            a3,
            mid3,
            status="5.7.1",
            bounce_type="Transient",
            subtype="ContentRejected",
            diagnostic="smtp; 554 5.7.1 Message rejected as spam",
        )
        assert post(http, amazon.sign(policy)).json()["applied"] == 1
        delivered = amazon.sign(notification("Delivery", a4, mid4))
        assert post(http, delivered).json() == {"applied": 0, "duplicate": 0, "ignored": 1}
    assert CERTIFICATES.fetches - fetched <= 1  # fetched once (or cached from before)
    assert events(world) == [
        ("bounce", True, "user_unknown", d0, "sns", "signed"),
        ("complaint", None, "", d1, "sns", "signed"),
        ("bounce", False, "mailbox_full", d2, "sns", "signed"),
        ("bounce", False, "policy_block", d3, "sns", "signed"),
    ]
    # the dead address and the complainer are suppressed; a full mailbox and a spam
    # refusal are not dead addresses; the delivered one is untouched
    assert suppressed(world) == {a0: "hard_bounce", a1: "complaint"}


def test_subscriptions_are_confirmed_only_to_allowed_hosts(
    world: World, api: str, amazon: Amazon
) -> None:
    configure(world)
    confirm = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "sub-1",
        "Token": "2336412f37f",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": amazon.url("/confirm?Action=ConfirmSubscription&Token=2336412f37f"),
        "Timestamp": "2026-12-02T10:00:00.000Z",
    }
    elsewhere = {**confirm, "SubscribeURL": "https://attacker.example/confirm?Token=1"}
    before = refused("subscribe_host")
    with httpx.Client(base_url=api, timeout=10) as http:
        reply = post(http, amazon.sign(confirm, version="2"))
        assert reply.status_code == 200 and reply.json() == {"confirmed": True}
        assert any(h.startswith("/confirm?Action=ConfirmSubscription") for h in amazon.hits)
        hits = len(amazon.hits)
        assert post(http, amazon.sign(elsewhere)).status_code == 403
        unsigned = json.loads(amazon.sign(confirm))
        del unsigned["Signature"]
        assert post(http, json.dumps(unsigned).encode()).status_code == 403
    assert refused("subscribe_host") == before + 1
    confirm_hits = [h for h in amazon.hits[hits:] if h.startswith("/confirm")]
    assert confirm_hits == []  # neither the foreign URL nor the unsigned one was followed


def test_unsigned_forged_and_foreign_messages_are_refused_and_counted(
    world: World, api: str, amazon: Amazon
) -> None:
    configure(world)
    [(_, address, message_id, _)] = sent(world, 1)
    genuine = notification("Complaint", address, message_id)
    other_key, _ = keypair("attacker")
    counts = {r: refused(r) for r in ("unsigned", "signature", "topic", "cert_host", "malformed")}
    tampered = json.loads(amazon.sign(genuine))
    tampered["Message"] = tampered["Message"].replace("abuse", "not-spam")
    no_signature = json.loads(amazon.sign(genuine))
    del no_signature["Signature"]
    foreign_cert = json.loads(amazon.sign(genuine))
    foreign_cert["SigningCertURL"] = "https://sns.eu-west-1.amazonaws.com.evil.example/c.pem"
    with httpx.Client(base_url=api, timeout=10) as http:
        cases = {
            "signed by another key": amazon.sign(genuine, key=other_key),
            "tampered after signing": json.dumps(tampered).encode(),
            "no signature": json.dumps(no_signature).encode(),
            "certificate elsewhere": json.dumps(foreign_cert).encode(),
            "another topic": amazon.sign({**genuine, "TopicArn": TOPIC + "-theirs"}),
            "unknown version": amazon.sign(genuine, version="2").replace(
                b'"SignatureVersion": "2"', b'"SignatureVersion": "3"'
            ),
        }
        for name, body in cases.items():
            reply = post(http, body)
            assert reply.status_code == 403, (name, reply.text)
        assert post(http, b"{not json").status_code == 400
        assert post(http, b'{"Type": "Notification"}').status_code == 400
    assert refused("signature") == counts["signature"] + 2
    assert refused("unsigned") == counts["unsigned"] + 2
    assert refused("cert_host") == counts["cert_host"] + 1
    assert refused("topic") == counts["topic"] + 1
    assert refused("malformed") == counts["malformed"] + 2
    assert events(world) == [] and suppressed(world) == {}  # nothing stored, nobody suppressed


def test_a_signed_notification_with_a_forged_reference_stays_unverified(
    world: World, api: str, amazon: Amazon
) -> None:
    configure(world)
    [(_, address, message_id, _)] = sent(world, 1)
    local, domain = message_id.strip("<>").split("@")
    forged = "<" + local[:-4] + ("aaaa" if not local.endswith("aaaa") else "bbbb") + f"@{domain}>"
    before = (
        REGISTRY.get_sample_value(
            "postgate_feedback_unverified_total",
            {"source": "sns", "kind": "bounce", "reason": "no_reference"},
        )
        or 0.0
    )
    with httpx.Client(base_url=api, timeout=10) as http:
        reply = post(http, amazon.sign(notification("Bounce", address, forged)))
        assert reply.json() == {"applied": 1, "duplicate": 0, "ignored": 0}
    assert events(world) == [("bounce", True, "user_unknown", None, "sns", "unverified")]
    assert suppressed(world) == {}
    after = REGISTRY.get_sample_value(
        "postgate_feedback_unverified_total",
        {"source": "sns", "kind": "bounce", "reason": "no_reference"},
    )
    assert after == before + 1


def test_a_certificate_host_that_is_down_asks_sns_to_retry(world: World, api: str) -> None:
    configure(world)
    key, _ = keypair("sns")
    down = Amazon("http://127.0.0.1:9", key, {})  # the discard port: nothing listens
    with httpx.Client(base_url=api, timeout=30) as http:
        reply = post(http, down.sign(notification("Complaint", "x@example.com", "")))
    assert reply.status_code == 503


def test_the_route_is_off_until_topics_are_configured(world: World, api: str) -> None:
    with httpx.Client(base_url=api, timeout=10) as http:
        assert post(http, b"{}").status_code == 404


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
        ("https://sns.us-gov-west-1.amazonaws.com/x.pem", True),
        ("https://sns.cn-north-1.amazonaws.com.cn/x.pem", True),
        ("http://sns.eu-west-1.amazonaws.com/x.pem", False),  # not https
        ("https://sns.s3.amazonaws.com/x.pem", False),  # an S3 bucket named sns
        ("https://sns.my.bucket.s3.amazonaws.com/x.pem", False),
        ("https://sns.eu-west-1.amazonaws.com.evil.example/x.pem", False),
        ("https://sns.eu-west-1.amazonaws.com:8443/x.pem", False),
        ("https://user@sns.eu-west-1.amazonaws.com/x.pem", False),
        ("https://evil.example/sns.eu-west-1.amazonaws.com/x.pem", False),
        ("http://127.0.0.1:8080/x.pem", False),  # loopback only when listed
        ("not a url", False),
        ("https://[::1/x", False),
    ],
)
def test_allowed_hosts(url: str, allowed: bool) -> None:
    assert sns.allowed_url(url, list(sns.DEFAULT_HOSTS)) is allowed
    assert sns.allowed_url("http://127.0.0.1:8080/x.pem", ["127.0.0.1"])
