"""Verify our own DKIM signature on the original mail a report quotes.

An ARF complaint or a DSN often carries the mail it is about (``message/rfc822``). When
that copy holds a DKIM-Signature of one of the tenant's sending domains, it is verified
against the public key stored for that domain and selector (no DNS look-up: we know our
keys), and the verdict is kept on the feedback event: ``pass``, ``fail``, or empty when
there is nothing to check. It is evidence for the operator, not a gate: receivers often
rewrite what they quote, which breaks a signature without making the report false.
"""

from __future__ import annotations

import email
import re

import dkim
from sqlalchemy import Connection, select

from postgate.feedback.mail import quoted_original
from postgate.store import tables as t

SIGNATURE_TAG = re.compile(rb"\b([ds])=\s*([^;\s]+)")


def quoted(conn: Connection, tenant_id: int, raw: bytes) -> str:
    original = quoted_original(raw)
    if original is None:
        return ""
    signatures = email.message_from_bytes(original).get_all("DKIM-Signature") or []
    sd = t.sender_domain.c
    keys = {
        (r.domain.lower(), r.dkim_selector): r.dkim_public_key
        for r in conn.execute(
            select(sd.domain, sd.dkim_selector, sd.dkim_public_key).where(sd.tenant_id == tenant_id)
        )
    }
    for index, signature in enumerate(signatures):
        tags = {
            k.decode(): v.decode()
            for k, v in SIGNATURE_TAG.findall(str(signature).encode("utf-8", "replace"))
        }
        domain, selector = tags.get("d", "").lower(), tags.get("s", "")
        if not any(d == domain for d, _ in keys):
            continue  # another party's signature (the receiver's, a forwarder's)
        record = keys.get((domain, selector))
        if record is None:
            return "fail"  # our tenant's domain, but no key of ours
        return (
            "pass"
            if _verify(original, index, f"{selector}._domainkey.{domain}", record)
            else "fail"
        )
    return ""


def _verify(original: bytes, index: int, name: str, record: str) -> bool:
    def dns(query: bytes, timeout: int = 5) -> bytes:
        return record.encode() if query.decode().lower().rstrip(".") == name else b""

    try:
        return bool(dkim.DKIM(original).verify(idx=index, dnsfunc=dns))
    except Exception:  # a garbled signature is a failed one
        return False
