"""Build a campaign's MIME once, fill it per recipient.

Serialising an ``EmailMessage`` per recipient costs milliseconds; this module
prepares everything that is the same for every recipient (From, Subject when it is
not personalised, MIME structure, encoded static bodies) once per campaign, and per
recipient only renders the personalised parts and joins byte strings.

Tenant templates render in Jinja2's sandbox. Every header value is stripped of line
breaks of any kind, so personalisation can never inject a header.
"""

from __future__ import annotations

import base64
import binascii
import html
import uuid
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formataddr, getaddresses
from typing import Any

from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from postgate.core import tokens
from postgate.core.states import Kind
from postgate.core.template_limits import LimitedEnvironment
from postgate.core.texts import footer_label

# CR, LF and every other character that some parser treats as a line break.
_BREAKS = dict.fromkeys(map(ord, "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), " ")
_CONTROLS = {i: None for i in range(32) if i not in (9,)} | {127: None}

# Sandboxed, with a per-render budget of loop steps, time and output size.
TEXT_ENV = LimitedEnvironment(autoescape=False)
HTML_ENV = LimitedEnvironment(autoescape=True)


def header_safe(value: str) -> str:
    """A header value with no way to start a new header line."""
    if value.isascii() and value.isprintable():  # the common case: nothing to strip
        return value.strip()
    return value.translate(_BREAKS).translate(_CONTROLS).strip()


def _words(text: str) -> str:
    """RFC 2047 base64 encoded-words (at most 45 bytes each, never splitting a character),
    folded onto continuation lines: a few microseconds where ``email.header`` takes ~100."""
    chunks: list[bytes] = []
    current = b""
    for char in text:
        encoded = char.encode("utf-8", "replace")
        if len(current) + len(encoded) > 45:
            chunks.append(current)
            current = b""
        current += encoded
    chunks.append(current)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(c).decode()}?=" for c in chunks)


def _address(name: str, address: str) -> str:
    name = header_safe(name)
    if not name:
        return address
    if name.isascii():
        return formataddr((name, address))
    return f"{_words(name)} <{address}>"


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True).replace(b"\n", b"\r\n")


def _encode_header(name: str, value: str) -> bytes:
    value = header_safe(value)
    if not value.isascii():
        return f"{name}: {_words(value)}\r\n".encode()
    if len(name) + len(value) < 76:
        return f"{name}: {value}\r\n".encode()
    encoded = Header(value, "us-ascii", header_name=name).encode(linesep="\r\n")  # fold
    return f"{name}: {encoded}\r\n".encode()


_ADDRESS_HEADERS = frozenset({"reply-to", "errors-to", "mail-followup-to"})


def _tenant_header(name: str, value: str) -> bytes:
    """A tenant header; in address headers only the display names get encoded."""
    if name.lower() in _ADDRESS_HEADERS and not value.isascii():
        value = ", ".join(
            formataddr((header_safe(n), a), "utf-8") for n, a in getaddresses([value])
        )
    return _encode_header(name, value)


@dataclass(frozen=True, slots=True)
class RecipientData:
    delivery_id: int
    address: str
    name: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CampaignContent:
    campaign_id: int
    tenant_slug: str
    domain: str
    kind: str
    subject: str
    text: str
    html: str
    from_email: str
    from_name: str
    headers: tuple[tuple[str, str], ...] = ()  # the tenant's own, checked by headers.validate
    tenant_id: int = 0  # signed into every reference (return path, Message-ID, unsubscribe)
    locale: str = "en"  # the language of the footer postgate adds


class _Part:
    """One body part: a template, or its encoded bytes when nothing in it varies."""

    def __init__(self, env: SandboxedEnvironment, source: str) -> None:
        self.template = env.from_string(source)
        names = meta.find_undeclared_variables(env.parse(source))
        static = not names
        self.own_unsubscribe = "unsubscribe_url" in names  # the tenant placed the link
        self.cached = _qp(self.template.render()) if static else None

    def encode(self, context: dict[str, Any]) -> bytes:
        return self.cached if self.cached is not None else _qp(self.template.render(context))


class CompiledCampaign:
    def __init__(
        self, content: CampaignContent, secret: str, public_url: str, bounce_domain: str
    ) -> None:
        self.content = content
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.bounce_domain = bounce_domain
        self.promotional = content.kind == Kind.PROMOTIONAL
        self.boundary = f"=_pg_{uuid.uuid4().hex}"
        self.from_header = f"From: {_address(content.from_name, content.from_email)}\r\n".encode()
        subject_vars = meta.find_undeclared_variables(TEXT_ENV.parse(content.subject))
        self.subject_template = TEXT_ENV.from_string(content.subject)
        self.subject_header = (
            None if subject_vars else _encode_header("Subject", self.subject_template.render())
        )
        self.extra_headers = b"".join(_tenant_header(n, v) for n, v in content.headers)
        self.text = _Part(TEXT_ENV, content.text) if content.text.strip() else None
        self.html = _Part(HTML_ENV, content.html) if content.html.strip() else None
        self.footer = footer_label(content.locale)

    def spec(self) -> tuple[CampaignContent, str, str, str]:
        """What compiles this campaign again elsewhere (a signing process):
        ``CompiledCampaign(*spec)``."""
        return (self.content, self.secret, self.public_url, self.bounce_domain)

    def ref(self, delivery_id: int) -> tokens.Ref:
        return tokens.Ref(delivery_id, self.content.campaign_id, self.content.tenant_id)

    def envelope_from(self, delivery_id: int) -> str:
        return tokens.verp_address(self.secret, self.ref(delivery_id), self.bounce_domain)

    def message_id(self, delivery_id: int) -> str:
        return tokens.message_id(self.secret, self.ref(delivery_id), self.content.domain)

    def unsubscribe_urls(self, delivery_id: int) -> tuple[str, str]:
        token = tokens.unsubscribe_token(self.secret, self.ref(delivery_id))
        return (f"{self.public_url}/u/{token}", f"unsubscribe+{token}@{self.bounce_domain}")

    def render(self, rcpt: RecipientData, date: str, extra: dict[str, str] | None = None) -> bytes:
        c = self.content
        https, mailto = self.unsubscribe_urls(rcpt.delivery_id)
        context = {
            **(extra or {}),  # per-delivery values from the send batch; never override these:
            "name": rcpt.name,
            "email": rcpt.address,
            "contact": {"name": rcpt.name, "email": rcpt.address, **rcpt.attributes},
            "unsubscribe_url": https,
        }
        head = [
            self.from_header,
            f"To: {_address(rcpt.name, rcpt.address)}\r\n".encode(),
            self.subject_header or _encode_header("Subject", self.subject_template.render(context)),
            f"Date: {date}\r\nMessage-ID: {self.message_id(rcpt.delivery_id)}\r\n"
            "MIME-Version: 1.0\r\n".encode(),
            self.extra_headers,
        ]
        if self.promotional:
            head.append(
                f"List-Unsubscribe: <{https}>, <mailto:{mailto}>\r\n"
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                f"Feedback-ID: {c.campaign_id}:{c.tenant_slug}:postgate\r\n".encode()
            )
        parts = []
        if self.text is not None:
            body = self.text.encode(context)
            if self.promotional:
                if extra and extra.get("provenance_reminder"):
                    body += _qp(f"\n\n{extra['provenance_reminder']}")
                if not self.text.own_unsubscribe:  # one footer: the tenant's, else ours
                    body += _qp(f"\n\n--\n{self.footer}: {https}\n")
            parts.append((b"text/plain", body))
        if self.html is not None:
            body = self.html.encode(context)
            if self.promotional:
                if extra and extra.get("provenance_reminder"):
                    note = html.escape(extra["provenance_reminder"])
                    body += _qp(f'\n<p style="font-size:12px;color:#666">{note}</p>')
                if not self.html.own_unsubscribe:
                    label = html.escape(self.footer)
                    body += _qp(f'\n<p style="font-size:12px"><a href="{https}">{label}</a></p>\n')
            parts.append((b"text/html", body))
        return b"".join(head) + self._body(parts)

    def _body(self, parts: list[tuple[bytes, bytes]]) -> bytes:
        if len(parts) == 1:
            ctype, body = parts[0]
            return (
                b"Content-Type: " + ctype + b'; charset="utf-8"\r\n'
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body
            )
        b = self.boundary.encode()
        out = [b'Content-Type: multipart/alternative; boundary="' + b + b'"\r\n\r\n']
        for ctype, body in parts:
            out.append(
                b"--" + b + b"\r\nContent-Type: " + ctype + b'; charset="utf-8"\r\n'
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body + b"\r\n"
            )
        out.append(b"--" + b + b"--\r\n")
        return b"".join(out)
