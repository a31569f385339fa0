"""Which of the addresses a report names can be the recipient it is about (pure).

Never the original's Message-ID (it looks like an address), the sender's own addresses
(the original's From/Sender/Return-Path, the return path the report was sent to), a
pipe or file target of a local delivery (``|/usr/bin/procmail``, ``/var/mail/x``) or a
fragment of JSON or markup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import Message

ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}"
    r"[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+"
)
MESSAGE_ID_IN_TEXT = re.compile(
    r"(?:Message-I[dD]|In-Reply-To|References):[ \t]*"
    r"((?:<[^>\s]+>\s*)+)"
)
QUOTED_SENDER = re.compile(r"^(?:From|Sender|Return-Path):[ \t]*(.+)$", re.MULTILINE)
OWN_HEADERS = ("From", "Sender", "Return-Path", "Reply-To")
REPORT_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


def bare(candidate: str) -> str:
    """An address as reports write it, without ``rfc822;``, brackets, quotes, a dot."""
    text = candidate.strip()
    if ";" in text and text.split(";", 1)[0].strip().lower() in ("rfc822", "smtp", "x400"):
        text = text.split(";", 1)[1]
    return text.strip().strip("<>\"' ").rstrip(".,;:").strip("<>")


def acceptable(address: str) -> bool:
    return bool(address) and address[0] not in '|/\\"{[' and ADDRESS.fullmatch(address) is not None


def ours(msg: Message, text: str, envelope: Iterable[str] = ()) -> set[str]:
    """Addresses that are ours in this report: where it was sent, who sent the quoted
    original (as a MIME part or as header lines in ``text``), and every Message-ID."""
    values = list(envelope) + [str(v) for h in REPORT_HEADERS for v in msg.get_all(h) or []]
    for part in msg.walk():
        for name in ("Message-ID", "In-Reply-To", "References"):
            values += [str(v) for v in part.get_all(name) or []]
        if part is not msg and part.get("Message-ID") is not None:
            values += [str(v) for h in OWN_HEADERS for v in part.get_all(h) or []]
    values += QUOTED_SENDER.findall(text[:200_000])
    values += MESSAGE_ID_IN_TEXT.findall(text[:200_000])
    return {a.lower() for a in ADDRESS.findall("\n".join(values))}


def message_ids_in(text: str) -> set[str]:
    return {
        m for block in MESSAGE_ID_IN_TEXT.findall(text) for m in re.findall(r"<([^<>\s]+)>", block)
    }


def clean(candidates: Iterable[str], exclude: set[str]) -> tuple[str, ...]:
    """The acceptable candidates, in order, once each, none of them in ``exclude``."""
    seen: set[str] = set()
    kept: list[str] = []
    for candidate in candidates:
        address = bare(candidate)
        key = address.lower()
        if key in seen or key in exclude or not acceptable(address):
            continue
        seen.add(key)
        kept.append(address)
    return tuple(kept)
