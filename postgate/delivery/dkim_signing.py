"""DKIM keys and signing (dkimpy), one key per tenant sending domain.

Signatures are relaxed/relaxed and cover From, To, Subject, Date, Message-ID,
MIME-Version, Content-Type, List-Unsubscribe, List-Unsubscribe-Post, Feedback-ID and
Reply-To.
A header listed but absent (List-Unsubscribe on transactional mail) is signed as
absent, so it cannot be added later without breaking the signature; From is signed
twice so a second From cannot be slipped in.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
SIGNED_HEADERS = (
    b"from", b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
    b"content-type", b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id",
    b"reply-to",
)


class DkimError(ValueError):
    """A key or algorithm that cannot sign."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str
    private_key: bytes  # PKCS#1 PEM (rsa) or the base64 seed (ed25519), as dkimpy reads them


def generate(algorithm: str) -> tuple[str, str]:
    """A new key pair: (private key as stored, the TXT record value to publish)."""
    if algorithm == "rsa-sha256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    if algorithm == "ed25519-sha256":
        ed = ed25519.Ed25519PrivateKey.generate()
        seed = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        raw = ed.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
        return (base64.b64encode(seed).decode(),
                f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}")
    raise DkimError(f"unknown DKIM algorithm {algorithm!r}; use one of {ALGORITHMS}")


def signature(message: bytes, key: DkimKey) -> bytes:
    """The ``DKIM-Signature:`` header line (CRLF-terminated) for ``message``."""
    try:
        header = dkim.sign(message, key.selector.encode(), key.domain.encode(), key.private_key,
                           include_headers=list(SIGNED_HEADERS),
                           canonicalize=(b"relaxed", b"relaxed"),
                           signature_algorithm=key.algorithm.encode(), linesep=b"\r\n")
    except dkim.DKIMException as exc:
        raise DkimError(f"cannot sign for {key.domain}: {exc}") from None
    return bytes(header)


def sign(message: bytes, key: DkimKey) -> bytes:
    """``message`` with its DKIM-Signature header prepended."""
    return signature(message, key) + message
