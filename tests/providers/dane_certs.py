"""Certificates for the DANE tests: self-signed server certificates (DANE-EE), a CA of the
test's own and server certificates it issues (DANE-TA), TLS contexts that present them
with their chain, and TLSA record data computed from them."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.UTC)
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


class Issued:
    def __init__(self, key: Any, cert: x509.Certificate, chain: tuple[x509.Certificate, ...]):
        self.key, self.cert, self.chain = key, cert, chain

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(DER)

    @property
    def spki(self) -> bytes:
        return self.cert.public_key().public_bytes(
            DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def context(self, tmp: Path) -> ssl.SSLContext:
        """A server context presenting this certificate and its chain (no root trust)."""
        stem = tmp / f"c{self.cert.serial_number}"
        certs = b"".join(c.public_bytes(PEM) for c in (self.cert, *self.chain))
        stem.with_suffix(".crt").write_bytes(certs)
        stem.with_suffix(".key").write_bytes(
            self.key.private_bytes(
                PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        return context


def issue(
    *names: str,
    issuer: Issued | None = None,
    ca: bool = False,
    rsa_key: bool = False,
    hours: float = 1,
) -> Issued:
    """A certificate for ``names`` (subjectAltName), self-signed or by ``issuer``."""
    key: Any = (
        rsa.generate_private_key(65537, 2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=2))
        .not_valid_after(NOW + dt.timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    chain = (issuer.cert, *issuer.chain) if issuer else ()
    return Issued(key, cert, chain)


def tlsa_data(issued: Issued, selector: int, mtype: int) -> bytes:
    selected = issued.der if selector == 0 else issued.spki
    if mtype == 0:
        return selected
    return hashlib.new("sha256" if mtype == 1 else "sha512", selected).digest()
