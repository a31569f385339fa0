"""Amazon SNS deliveries of SES notifications, parsed and checked (no network here).

SNS posts a JSON envelope: ``Type`` (``Notification``, ``SubscriptionConfirmation``,
``UnsubscribeConfirmation``), ``MessageId``, ``TopicArn``, ``Message``, ``Timestamp``,
``SignatureVersion`` (1: SHA1withRSA, 2: SHA256withRSA), ``Signature`` (base64) and
``SigningCertURL``; a confirmation adds ``Token`` and ``SubscribeURL``. The signature
covers the canonical string of the documented fields: each ``name\\nvalue\\n`` in this
order, ``Subject`` only when present —

- Notification: Message, MessageId, Subject, Timestamp, TopicArn, Type
- (Un)SubscriptionConfirmation: Message, MessageId, SubscribeURL, Timestamp, Token,
  TopicArn, Type

URLs we fetch (the signing certificate, the confirmation) must name an allowed host:
patterns in which ``{region}`` stands for an AWS region name (``sns.{region}.amazonaws.com``
by default — not ``sns.*``, which an S3 bucket named ``sns`` would match), over https;
plain http only to a loopback host listed explicitly (a local test server).

A Notification's ``Message`` is the SES JSON (``notificationType`` or ``eventType``):
Bounce and Complaint (and DeliveryDelay) become feedback through the SES parser of
``feedback.bounces.complaints``; Delivery, Send, Open, Click carry no signal and are
ignored. The delivery is found from our own references in ``mail.headers`` and
``mail.commonHeaders`` (the Message-ID, the VERP return path), exactly as for mailed
feedback: a forged or missing reference leaves the event unverified.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from postgate.core import tokens
from postgate.core.states import FeedbackKind
from postgate.feedback.bounces import complaints
from postgate.feedback.event import Feedback
from postgate.feedback.mail import best_ref

TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
REGION = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
DEFAULT_HOSTS = ("sns.{region}.amazonaws.com", "sns.{region}.amazonaws.com.cn")


class SnsError(ValueError):
    """Why an SNS request is refused; ``reason`` is the bounded metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Envelope:
    type: str
    message_id: str
    topic_arn: str
    message: str
    version: str
    signature: bytes
    cert_url: str
    subscribe_url: str
    fields: dict[str, str]  # every string field, for the canonical string


def envelope(body: bytes) -> Envelope:
    """The SNS envelope of ``body``; :class:`SnsError` when it is not one (``malformed``)
    or carries no usable signature (``unsigned``)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SnsError("malformed", "the body is not JSON") from None
    if not isinstance(data, dict) or data.get("Type") not in TYPES:
        raise SnsError("malformed", f"expected an SNS message with Type one of {list(TYPES)}")
    fields = {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
    for name in ("MessageId", "TopicArn", "Message", "Timestamp"):
        if name not in fields:
            raise SnsError("malformed", f"the SNS message has no {name}")
    version, signed, cert_url = (
        fields.get("SignatureVersion", ""),
        fields.get("Signature", ""),
        fields.get("SigningCertURL", ""),
    )
    if not signed or not cert_url or version not in HASHES:
        raise SnsError("unsigned", "no Signature, SigningCertURL or known SignatureVersion")
    try:
        signature = base64.b64decode(signed, validate=True)
    except (binascii.Error, ValueError):
        raise SnsError("unsigned", "the Signature is not base64") from None
    if data["Type"] != "Notification" and not fields.get("SubscribeURL"):
        raise SnsError("malformed", "a confirmation without SubscribeURL")
    return Envelope(
        str(data["Type"]),
        fields["MessageId"],
        fields["TopicArn"],
        fields["Message"],
        version,
        signature,
        cert_url,
        fields.get("SubscribeURL", ""),
        fields,
    )


def canonical(env: Envelope) -> bytes:
    """The string SNS signs: the type's fields in order, each name and value a line."""
    names = NOTIFICATION_FIELDS if env.type == "Notification" else CONFIRMATION_FIELDS
    return "".join(f"{name}\n{env.fields[name]}\n" for name in names if name in env.fields).encode()


def verify(env: Envelope, certificate: x509.Certificate) -> bool:
    """Whether ``certificate``'s RSA key signed ``env`` with its SignatureVersion's hash."""
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(env.signature, canonical(env), padding.PKCS1v15(), HASHES[env.version]())
    except (InvalidSignature, ValueError):
        return False
    return True


def host_patterns(allowed: Iterable[str]) -> list[re.Pattern[str]]:
    return [
        re.compile("^" + re.escape(p.strip().lower()).replace(re.escape("{region}"), REGION) + "$")
        for p in allowed
        if p.strip()
    ]


def allowed_url(url: str, allowed: Sequence[str]) -> bool:
    """https to an allowed host (default port); http only to a listed loopback host."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return False
    if parts.username or parts.password or not host:
        return False
    if not any(p.match(host) for p in host_patterns(allowed)):
        return False
    if parts.scheme == "https":
        return port in (None, 443) or host in LOOPBACK
    return parts.scheme == "http" and host in LOOPBACK


def notification_type(message: str) -> str:
    """The SES notification's type in lower case (bounce, complaint, delivery, ...), or ""."""
    try:
        data = json.loads(message)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    return str(data.get("notificationType") or data.get("eventType") or "").strip().lower()


def ignored(message: str) -> bool:
    """A Delivery, Send, Open, Click...: no signal, nothing to store."""
    return notification_type(message) in complaints.NOT_FEEDBACK


def feedback(message: str, keys: tokens.Keys) -> Feedback:
    """The SES notification in ``message`` as feedback, its delivery named by our own
    references in the original's headers (unverified when there are none)."""
    signal = complaints.ses_notification(message)
    if signal is None:
        return Feedback(FeedbackKind.UNKNOWN, detail="SNS message is not an SES notification")
    refs = _references(message, keys)
    return Feedback(
        FeedbackKind(signal.kind),
        hard=signal.hard,
        recipients=signal.recipients,
        status=signal.status,
        ref=best_ref(*refs),
        action=signal.action,
        detail=signal.detail,
        reason=signal.reason,
        extra={**signal.extra, "channel": "email"},
    )


def _references(message: str, keys: tokens.Keys) -> list[tokens.Ref | None]:
    data = json.loads(message)  # parsed already by ses_notification
    mail = data.get("mail") if isinstance(data, dict) else None
    if not isinstance(mail, dict):
        return []
    ids: list[str] = []
    paths: list[str] = [str(mail.get("source", ""))]
    headers = mail.get("headers")
    for header in headers if isinstance(headers, list) else []:
        if not isinstance(header, dict):
            continue
        name, value = str(header.get("name", "")).lower(), str(header.get("value", ""))[:500]
        if name == "message-id":
            ids.append(value)
        elif name == "return-path":
            paths.append(value)
    common = mail.get("commonHeaders")
    if isinstance(common, dict):
        ids.append(str(common.get("messageId", ""))[:500])
    found: list[tokens.Ref | None] = [tokens.message_id_decode(keys, m) for m in ids if m]
    found += [tokens.verp_decode(keys, p) for p in paths if "@" in p]
    return found
