"""DSN fields read from any text when MIME parsing found no ``message/delivery-status``.

A report whose boundary in the header does not match the body's, a status part declared
``text/plain``, or a DSN forwarded inside a text/plain mail (quoted with ``>``) still
carries readable ``Final-Recipient:`` / ``Action:`` / ``Status:`` / ``Diagnostic-Code:``
lines (RFC 3464 section 2.3). This reads them line by line, tolerant of quoting and
folding. Pure; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postgate.core.bounce_reasons import BounceReason, reason

FIELD = re.compile(
    r"^[ \t>]*(Final-Recipient|Original-Recipient|Action|Status|Diagnostic-Code)[ \t]*:[ \t]*"
    r"([^\n]*(?:\n[ \t>]*[ \t]+(?![ \t>]*[A-Za-z-]+:)[^\n]+)*)",
    re.MULTILINE | re.IGNORECASE,
)
STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class Fields:
    recipients: tuple[str, ...]
    action: str  # failed | delayed
    status: str
    diagnostic: str
    reason: BounceReason


def read(text: str) -> Fields | None:
    """Per-recipient field groups found in ``text``; None when none failed or delayed."""
    groups: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for m in FIELD.finditer(text[:200_000]):
        name = m.group(1).lower()
        value = " ".join(re.sub(r"^[ \t>]+", "", line) for line in m.group(2).split("\n"))
        value = " ".join(value.split())
        if (name in current and name in ("final-recipient", "action", "status")) or (
            name == "original-recipient" and "final-recipient" in current
        ):
            groups.append(current)
            current = {}
        current.setdefault(name, value)
    groups.append(current)
    failed: list[str] = []
    delayed: list[str] = []
    status = diagnostic = ""
    for group in groups:
        action = group.get("action", "").strip().lower()
        if action not in ("failed", "delayed"):
            continue
        address = _recipient(group)
        if not address:
            continue
        (failed if action == "failed" else delayed).append(address)
        if not status and (s := STATUS.search(group.get("status", ""))):
            status = s.group(1)
        diagnostic = diagnostic or group.get("diagnostic-code", "")
    if not failed and not delayed:
        return None
    text_said = diagnostic.split(";", 1)[1] if ";" in diagnostic[:12] else diagnostic
    return Fields(
        tuple(failed or delayed),
        "failed" if failed else "delayed",
        status,
        diagnostic[:500],
        reason(status, text_said.strip()),
    )


def _recipient(group: dict[str, str]) -> str:
    for name in ("original-recipient", "final-recipient"):
        kind, _, address = group.get(name, "").partition(";")
        address = address.strip().strip("<>")
        if kind.strip().lower() == "rfc822" and "@" in address:
            return address
    return ""
