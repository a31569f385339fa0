"""DANE for SMTP (RFC 7672), the pure parts: which TLSA records an SMTP client may use, and
whether the certificate chain a server presented matches them.

Usable records (section 3.1): certificate usage 3 (DANE-EE) and 2 (DANE-TA); usages 0 and
1 (PKIX-TA, PKIX-EE) are unusable for SMTP. Selector 0 (the whole certificate) or 1 (its
SubjectPublicKeyInfo), matching type 0 (exact), 1 (SHA-256) or 2 (SHA-512); anything else
is unusable.

- DANE-EE: the server's own (leaf) certificate matches; no name, expiry or chain checks
  (section 3.1.1).
- DANE-TA: a certificate of the presented chain matches and the leaf chains up to it, is
  within its validity period and is valid (subjectAltName) for the MX host name or the
  destination domain (sections 3.1.2, 3.2.2). The trust anchor must be in the chain the
  server sends, as section 3.1.2 asks of servers; a bare public key in a ``2 1 0`` record
  with the certificate left out does not match.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509 import verification

DANE_TA, DANE_EE = 2, 3
SELECTORS = (0, 1)  # full certificate, SubjectPublicKeyInfo
DIGESTS = {0: None, 1: "sha256", 2: "sha512"}


@dataclass(frozen=True, slots=True)
class Tlsa:
    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        return (
            self.usage in (DANE_TA, DANE_EE)
            and self.selector in SELECTORS
            and self.mtype in DIGESTS
        )


class Mismatch(ValueError):
    """The presented chain matches none of the usable TLSA records; the text says why."""


def usable(records: Iterable[Tlsa]) -> tuple[Tlsa, ...]:
    return tuple(r for r in records if r.usable)


def _tlv(der: bytes, pos: int) -> tuple[int, int]:
    """The content start and end of the DER element at ``pos``."""
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("DER element runs past the end")
    return pos, pos + length


def spki(cert_der: bytes) -> bytes:
    """The certificate's SubjectPublicKeyInfo exactly as encoded in it (the seventh field
    of tbsCertificate, counting the optional ``[0]`` version)."""
    tbs_start, _ = _tlv(cert_der, 0)
    pos, end = _tlv(cert_der, tbs_start)
    if cert_der[pos] == 0xA0:  # version
        pos = _tlv(cert_der, pos)[1]
    for _ in range(5):  # serialNumber, signature, issuer, validity, subject
        pos = _tlv(cert_der, pos)[1]
    if pos >= end or cert_der[pos] != 0x30:
        raise ValueError("no SubjectPublicKeyInfo where it belongs")
    return cert_der[pos : _tlv(cert_der, pos)[1]]


def matches(record: Tlsa, cert_der: bytes) -> bool:
    """Does the certificate (DER) match the record's selector and matching type?"""
    if not record.usable:
        return False
    try:
        selected = cert_der if record.selector == 0 else spki(cert_der)
    except (ValueError, IndexError):
        return False
    digest = DIGESTS[record.mtype]
    value = selected if digest is None else hashlib.new(digest, selected).digest()
    return value == record.data


def authenticate(
    records: Iterable[Tlsa],
    chain: Sequence[bytes],
    names: Sequence[str],
    now: dt.datetime,
) -> str:
    """``"DANE-EE"`` or ``"DANE-TA"``: how the chain (DER, leaf first) matched; else
    :class:`Mismatch`. ``names`` are the reference identifiers for DANE-TA (the MX host,
    then the destination domain)."""
    found = usable(records)
    if not chain:
        raise Mismatch("the server presented no certificate")
    if any(r.usage == DANE_EE and matches(r, chain[0]) for r in found):
        return "DANE-EE"
    anchors = [der for der in chain if any(r.usage == DANE_TA and matches(r, der) for r in found)]
    if not anchors:
        raise Mismatch("no certificate of the chain matches a TLSA record")
    for anchor in anchors:
        if _chains_to(chain, anchor, names, now):
            return "DANE-TA"
    raise Mismatch(
        "the certificate does not chain to the TLSA trust anchor, has expired or is not "
        f"valid for {' or '.join(names)}"
    )


def _chains_to(
    chain: Sequence[bytes], anchor: bytes, names: Sequence[str], now: dt.datetime
) -> bool:
    try:
        leaf, *rest = (x509.load_der_x509_certificate(der) for der in chain)
        trusted = x509.load_der_x509_certificate(anchor)
    except ValueError:
        return False
    # a private CA need not follow the Web PKI profile: only what chaining needs
    ca_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, verification.Criticality.AGNOSTIC, None
    )
    ee_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
    )
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store([trusted]))
        .time(now)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
    )
    for name in names:
        try:
            builder.build_server_verifier(x509.DNSName(name)).verify(leaf, rest)
        except (verification.VerificationError, ValueError):
            continue
        return True
    return False
