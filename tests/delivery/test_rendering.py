"""Rendering: real MIME a mail client parses, filled per recipient, no header injection."""

from __future__ import annotations

import email
import email.policy
from email.header import decode_header, make_header
from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postgate.core.rendering import CampaignContent, CompiledCampaign, RecipientData

HOSTILE = [
    "Eve\r\nBcc: victim@x.example",
    "Eve\nBcc: v@x",
    "Eve\u2028Bcc: v@x",
    "Eve\rBcc: v@x",
    "=?utf-8?q?Eve=0D=0ABcc:_v@x?=",
    "Eve\x85Bcc: v@x",
]


def compiled(
    subject: str = "Hi {{ name }}",
    kind: str = "promotional",
    text: str = "Hello {{ name }}\n",
    html: str = "<p>Hello {{ name }}</p>",
) -> CompiledCampaign:
    content = CampaignContent(
        9, "acme", "acme.example", kind, subject, text, html, "news@acme.example", "Acme Kft."
    )
    return CompiledCampaign(content, "secret", "https://pg.example", "bounces.example")


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_multipart_alternative_with_utf8_parts() -> None:
    data = compiled().render(RecipientData(1, "anna@x.example", "Anna Ödön"), formatdate())
    msg = parse(data)
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.iter_parts()  # type: ignore[misc]
    assert text.get_content().startswith("Hello Anna Ödön")
    assert "Unsubscribe or change your topics: https://pg.example/u/1." in text.get_content()
    assert html.get_content_type() == "text/html" and "Anna Ödön" in html.get_content()
    assert msg["Subject"] == "Hi Anna Ödön"
    assert msg["To"].addresses[0].display_name == "Anna Ödön"
    assert not msg.defects and all(not p.defects for p in msg.iter_parts())
    assert b"\r\n\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_html_personalisation_is_escaped() -> None:
    data = compiled().render(RecipientData(1, "a@x.example", "<script>x</script>"), "d")
    html = list(parse(data).iter_parts())[1]
    assert "<script>" not in html.get_content()  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", HOSTILE)
def test_no_header_injection_through_name_or_subject(name: str) -> None:
    data = compiled(subject="{{ name }} hi").render(RecipientData(1, "a@x.example", name), "d")
    head = data.split(b"\r\n\r\n", 1)[0]
    lines = [line for line in head.split(b"\r\n") if not line.startswith((b" ", b"\t"))]
    assert not any(line.lower().startswith(b"bcc:") for line in lines)
    assert parse(data)["Bcc"] is None


def test_transactional_mail_has_no_unsubscribe_headers() -> None:
    msg = parse(compiled(kind="transactional").render(RecipientData(1, "a@x.example"), "d"))
    assert msg["List-Unsubscribe"] is None
    assert "Unsubscribe" not in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_static_parts_are_encoded_once() -> None:
    camp = compiled(subject="Static", text="Same for all\n", html="")
    assert camp.text is not None and camp.text.cached is not None
    assert camp.subject_header is not None
    msg = parse(camp.render(RecipientData(5, "b@x.example"), "d"))
    assert msg.get_content_type() == "text/plain"


def test_the_sandbox_refuses_unsafe_templates() -> None:
    from jinja2.exceptions import SecurityError

    camp = compiled(text="{{ name.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(SecurityError):
        camp.render(RecipientData(1, "a@x.example", "x"), "d")


def _raw_header(data: bytes, name: bytes) -> str:
    head = data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
    line = next(h for h in head.split(b"\r\n") if h.startswith(name + b": "))
    return line[len(name) + 2 :].decode("ascii")


@given(name=st.text(min_size=1, max_size=120), subject=st.text(min_size=1, max_size=300))
@settings(max_examples=150, deadline=None)
def test_any_name_and_subject_round_trip_through_a_mail_parser(name: str, subject: str) -> None:
    from postgate.core.rendering import header_safe

    camp = compiled(subject="{{ contact.subject }}")
    data = camp.render(RecipientData(1, "a@x.example", name, {"subject": subject}), "d")
    msg = parse(data)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    clean = header_safe(name.encode("utf-8", "replace").decode("utf-8"))
    (to,) = msg["To"].addresses
    assert to.addr_spec == "a@x.example"
    if not clean.isascii():  # RFC 2047: the words decode back to exactly the name
        raw = _raw_header(data, b"To")
        decoded = str(make_header(decode_header(raw)))
        assert decoded == f"{clean} <a@x.example>"
    assert " ".join(msg["Subject"].split()) == " ".join(
        header_safe(subject.encode("utf-8", "replace").decode("utf-8")).split()
    )


def test_one_unsubscribe_footer_in_the_mails_language() -> None:
    own = CampaignContent(
        9,
        "acme",
        "acme.example",
        "promotional",
        "Hírek",
        "Szia!\nLeiratkozás: {{ unsubscribe_url }}\n",
        '<p>Szia!</p><a href="{{ unsubscribe_url }}">Leiratkozás</a>',
        "news@acme.example",
        "Acme Kft.",
        locale="hu",
    )
    text, html = parse(
        CompiledCampaign(own, "secret", "https://pg.example", "b.example").render(
            RecipientData(1, "a@x.example"), formatdate()
        )
    ).iter_parts()  # type: ignore[misc]
    assert text.get_content().count("https://pg.example/u/1.") == 1  # the tenant's link only
    assert html.get_content().count("https://pg.example/u/1.") == 1
    ours = CampaignContent(
        9,
        "acme",
        "acme.example",
        "promotional",
        "Hírek",
        "Szia!\n",
        "<p>Szia!</p>",
        "news@acme.example",
        "Acme Kft.",
        locale="hu",
    )
    text, html = parse(
        CompiledCampaign(ours, "secret", "https://pg.example", "b.example").render(
            RecipientData(1, "a@x.example"), formatdate()
        )
    ).iter_parts()  # type: ignore[misc]
    assert "Leiratkozás vagy a témák módosítása: https://pg.example/u/1." in text.get_content()
    assert "Unsubscribe" not in text.get_content() + html.get_content()
