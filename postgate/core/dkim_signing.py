"""DKIM keys and signing (RFC 6376, RFC 8463), one key per tenant sending domain.

Signatures are relaxed/relaxed and cover From, To, Subject, Date, Message-ID,
MIME-Version, Content-Type, List-Unsubscribe, List-Unsubscribe-Post, Feedback-ID and
Reply-To. A header listed but absent (List-Unsubscribe on transactional mail) is signed as
absent, so it cannot be added later without breaking the signature; From is signed
twice so a second From cannot be slipped in.

A :class:`Signer` parses its key once (per campaign, not per message) and signs with
``cryptography``, i.e. OpenSSL: about 0.4 ms per RSA-2048 signature on one core, against
~13 ms for dkimpy's pure-Python RSA, and ``cryptography`` releases the GIL while it signs,
so signing in a thread pool uses every core. Canonicalisation is a few regular-expression
passes over bytes. dkimpy stays the verifier in the tests and for quoted originals
(``delivery.dkim_check``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
SIGNED_HEADERS = (
    b"from",
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",
    b"reply-to",
)
_WSP = re.compile(rb"[ \t]+")
_WSP_EOL = re.compile(rb" \r\n")
_FOLD = re.compile(rb"\r\n(?=[ \t])")
_FIELD_START = re.compile(rb"\r\n(?![ \t])")


class DkimError(ValueError):
    """A key or algorithm that cannot sign."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str
    private_key: bytes  # PKCS#1 PEM (rsa) or the base64 seed (ed25519), as stored


def generate(algorithm: str) -> tuple[str, str]:
    """A new key pair: (private key as stored, the TXT record value to publish)."""
    if algorithm == "rsa-sha256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    if algorithm == "ed25519-sha256":
        ed = ed25519.Ed25519PrivateKey.generate()
        seed = ed.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        raw = ed.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return (
            base64.b64encode(seed).decode(),
            f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}",
        )
    raise DkimError(f"unknown DKIM algorithm {algorithm!r}; use one of {ALGORITHMS}")


def body_hash(body: bytes) -> bytes:
    """base64 SHA-256 of the relaxed canonical body (RFC 6376 3.4.4)."""
    canonical = _WSP_EOL.sub(b"\r\n", _WSP.sub(b" ", body)).rstrip(b" \r\n")
    digest = hashlib.sha256(canonical + b"\r\n" if canonical else b"").digest()
    return base64.b64encode(digest)


def _relaxed(field: bytes) -> bytes:
    """One header field (name, colon, value; folded or not) in relaxed form with CRLF."""
    name, _, value = field.partition(b":")
    value = _WSP.sub(b" ", _FOLD.sub(b"", value)).strip(b" \r\n")
    return name.strip().lower() + b":" + value + b"\r\n"


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, the whole field) for each header field, in order."""
    fields = []
    for field in _FIELD_START.split(head):
        if field:
            fields.append((field.split(b":", 1)[0].strip().lower(), field))
    return fields


def _selected(fields: list[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> bytes:
    """The fields ``h=`` names, each the last one not yet used (RFC 6376 5.4.2); a name
    with no field left signs as the null string."""
    used: set[int] = set()
    out = []
    for name in names:
        for i in range(len(fields) - 1, -1, -1):
            if i not in used and fields[i][0] == name:
                used.add(i)
                out.append(_relaxed(fields[i][1]))
                break
    return b"".join(out)


def _fold_names(names: tuple[bytes, ...], width: int = 64) -> bytes:
    """The ``h=`` list, folded after a colon where a line would grow past ``width``."""
    lines, line = [], b""
    for name in names:
        if line and len(line) + len(name) + 1 > width:
            lines.append(line)
            line = b""
        line += (b":" if line or lines else b"") + name
    return b"\r\n\t ".join([*lines, line])


class Signer:
    """One tenant key, parsed once, that signs any number of messages (thread-safe)."""

    def __init__(self, key: DkimKey, headers: tuple[bytes, ...] = SIGNED_HEADERS) -> None:
        self.key, self.headers = key, headers
        try:
            if key.algorithm == "rsa-sha256":
                loaded = serialization.load_pem_private_key(key.private_key, password=None)
                if not isinstance(loaded, rsa.RSAPrivateKey):
                    raise DkimError("not an RSA key")
                self._rsa: rsa.RSAPrivateKey | None = loaded
                self._ed: ed25519.Ed25519PrivateKey | None = None
            elif key.algorithm == "ed25519-sha256":
                self._rsa = None
                self._ed = ed25519.Ed25519PrivateKey.from_private_bytes(
                    base64.b64decode(key.private_key, validate=True)
                )
            else:
                raise DkimError(f"unknown DKIM algorithm {key.algorithm!r}")
        except (ValueError, TypeError) as exc:
            raise DkimError(f"cannot sign for {key.domain}: {exc}") from None
        self._tags = (
            (
                f"v=1; a={key.algorithm}; c=relaxed/relaxed;\r\n\td={key.domain}; "
                f"s={key.selector};\r\n\th="
            ).encode()
            + _fold_names(headers)
            + b";"
        )

    @property
    def algorithm(self) -> str:
        return self.key.algorithm

    def signature(self, message: bytes, now: float | None = None) -> bytes:
        """The ``DKIM-Signature:`` header field (CRLF-terminated) for ``message``."""
        head, sep, body = message.partition(b"\r\n\r\n")
        if not sep:
            head, body = message.rstrip(b"\r\n"), b""
        stamp = int(time.time() if now is None else now)
        value = b" " + self._tags + b"\r\n\tt=%d; bh=" % stamp + body_hash(body) + b";\r\n\tb="
        signed = _selected(_fields(head), self.headers) + _relaxed(
            b"DKIM-Signature:" + value
        ).rstrip(b"\r\n")
        if self._rsa is not None:
            raw = self._rsa.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            assert self._ed is not None
            raw = self._ed.sign(hashlib.sha256(signed).digest())  # RFC 8463: sign the hash
        b = base64.b64encode(raw)
        folded = b"\r\n\t ".join(b[i : i + 64] for i in range(0, len(b), 64))
        return b"DKIM-Signature:" + value + folded + b"\r\n"

    def sign(self, message: bytes) -> bytes:
        """``message`` with its DKIM-Signature field prepended."""
        return self.signature(message) + message


def sign(message: bytes, key: DkimKey | Signer) -> bytes:
    """``message`` with its DKIM-Signature header prepended (a :class:`Signer` parses the
    key once; pass one when signing many messages)."""
    return (key if isinstance(key, Signer) else Signer(key)).sign(message)


_SIGNERS: dict[DkimKey, Signer] = {}  # in a signing process: each key parsed once


def sign_chunk(
    keys: tuple[DkimKey | Signer, ...], datas: list[bytes]
) -> tuple[list[bytes], list[list[float]]]:
    """Each message with a signature by every key prepended, and the seconds each key took
    for each message (for the caller's metrics). Run in a signing process or thread: a
    :class:`DkimKey` is parsed on its first chunk and kept, a :class:`Signer` used as is."""
    signers = []
    for key in keys:
        if isinstance(key, Signer):
            signers.append(key)
            continue
        signer = _SIGNERS.get(key)
        if signer is None:
            if len(_SIGNERS) >= 256:  # campaigns come and go; their keys need not stay
                _SIGNERS.clear()
            signer = _SIGNERS[key] = Signer(key)
        signers.append(signer)
    seconds: list[list[float]] = [[] for _ in signers]
    signed = []
    for data in datas:
        headers = []
        for signer, took in zip(signers, seconds, strict=True):
            started = time.perf_counter()
            headers.append(signer.signature(data))
            took.append(time.perf_counter() - started)
        signed.append(b"".join(headers) + data)
    return signed, seconds
