"""Sender domains and DKIM, the pure parts: names, tokens, coverage, keys and signatures."""

from __future__ import annotations

import base64

import dkim
import pytest

from postgate.core import sender_domains as sd
from postgate.core.dkim_signing import ALGORITHMS, DkimError, DkimKey, generate, sign
from postgate.core.rendering import CampaignContent, CompiledCampaign, RecipientData


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Acme.Example.", "acme.example"),
        (" mail.acme.example ", "mail.acme.example"),
        ("bútor.example", "xn--btor-qra.example"),
    ],
)
def test_domains_are_normalised(raw: str, expected: str) -> None:
    assert sd.normalise(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "localhost",
        "-bad.example",
        "a..example",
        "1.2.3.4",
        "x" * 64 + ".example",
        "acme.example/path",
        "ac me.example",
    ],
)
def test_bad_domains_are_refused(raw: str) -> None:
    with pytest.raises(sd.DomainError):
        sd.normalise(raw)


def test_token_must_be_published_exactly() -> None:
    token = sd.new_token()
    assert len(token) >= 32 and token != sd.new_token()
    assert sd.token_published(["v=spf1 -all", f" {sd.txt_value(token)} "], token)
    assert not sd.token_published([sd.txt_value(token + "x"), token], token)
    assert sd.txt_name("acme.example") == "_postgate.acme.example"


def test_a_verified_domain_covers_itself_and_its_subdomains_only() -> None:
    verified = ["acme.example", "news.acme.example", "brand.example"]
    assert sd.covering("news.acme.example", verified) == "news.acme.example"
    assert sd.covering("eu.news.acme.example", verified) == "news.acme.example"
    assert sd.covering("ACME.example", verified) == "acme.example"
    assert sd.covering("notacme.example", verified) is None
    assert sd.covering("acme.example.evil", verified) is None


def test_dkim_record_comparison_ignores_spacing_and_tag_order() -> None:
    _, public = generate("ed25519-sha256")
    p = public.split("p=")[1]
    assert sd.dkim_published([f"k=ed25519;v=DKIM1;  p={p[:10]} {p[10:]}"], public)
    assert not sd.dkim_published(["v=DKIM1; k=ed25519; p=AAAA"], public)


def message(kind: str = "promotional") -> bytes:
    content = CampaignContent(
        9,
        "acme",
        "acme.example",
        kind,
        "Hi {{ name }}",
        "Hello {{ name }}\n",
        "<p>Hello</p>",
        "news@acme.example",
        "Acme",
    )
    camp = CompiledCampaign(content, "secret", "https://pg.example", "bounces.example")
    return camp.render(
        RecipientData(1, "anna@x.example", "Anna Ödön"), "Wed, 25 Nov 2026 10:00:00 +0000"
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_signatures_verify_and_cover_the_required_headers(algorithm: str) -> None:
    private, public = generate(algorithm)
    key = DkimKey("acme.example", "pg202611", algorithm, private.encode())
    signed = sign(message(), key)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"pg202611._domainkey.acme.example."
        return public.encode()

    assert dkim.verify(signed, dnsfunc=dns)
    header = signed.split(b"\r\n\r\n")[0].decode()
    tags = dict(
        part.strip().split("=", 1)
        for part in "".join(header.split("DKIM-Signature:", 1)[1].split("\r\n")[0:8]).split(";")
        if "=" in part
    )
    signed_headers = {h.strip().lower() for h in "".join(tags["h"].split()).split(":")}
    assert {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    } <= signed_headers
    assert tags["a"].strip() == algorithm and tags["d"].strip() == "acme.example"
    tampered = signed.replace(b"Date: Wed, 25 Nov", b"Date: Thu, 26 Nov")
    assert tampered != signed and not dkim.verify(tampered, dnsfunc=dns)
    added = signed.replace(b"\r\n\r\n", b"\r\nFrom: ceo@bank.example\r\n\r\n", 1)
    assert not dkim.verify(added, dnsfunc=dns)


def test_transactional_mail_signs_list_unsubscribe_as_absent() -> None:
    private, public = generate("ed25519-sha256")
    key = DkimKey("acme.example", "s1", "ed25519-sha256", private.encode())
    signed = sign(message("transactional"), key)
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: public.encode())
    added = signed.replace(b"\r\n\r\n", b"\r\nList-Unsubscribe: <https://evil.example>\r\n\r\n", 1)
    assert not dkim.verify(added, dnsfunc=lambda name, timeout=5: public.encode())


def test_keys_are_2048_bit_rsa_or_ed25519_and_bad_input_is_refused() -> None:
    private, public = generate("rsa-sha256")
    assert private.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert len(base64.b64decode(public.split("p=")[1])) > 256  # 2048-bit modulus + DER framing
    with pytest.raises(DkimError):
        generate("rsa-sha1")
    with pytest.raises(DkimError):
        sign(message(), DkimKey("acme.example", "s", "rsa-sha256", b"not a key"))
