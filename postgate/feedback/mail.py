"""Read one mail sent back to the bounce domain and say what it is (pure; no I/O).

In order: a mailto unsubscribe (``unsubscribe+<token>@``), an RFC 5965 ARF complaint,
an RFC 3464 DSN (``message/delivery-status``, RFC 3463 codes), an RFC 3834 auto-reply
(out of office is not a bounce), then flufl.bounce's detectors for the many
non-standard bounce formats. Whatever is left is ``unknown`` and kept for inspection.
The delivery it refers to comes from a signed reference (``delivery.tokens``): the VERP
return path the report was sent to or quotes, else our signed Message-ID in the quoted
original; old-format references decode as *legacy*. Whether a reference is accepted is
the store's decision (``feedback_store``), not the parser's: a reference proves only
which of our mails the report is about, never more.
"""

from __future__ import annotations

import email
import re
from email import policy as email_policy
from email.message import Message
from email.utils import getaddresses

from flufl.bounce import all_failures

from postgate.core import tokens
from postgate.core.bounce import DEAD_ADDRESS, ENHANCED, POLICY, classify_reply
from postgate.core.states import FeedbackKind
from postgate.feedback.event import Feedback

VERP_ANYWHERE = re.compile(r"\bb\+[0-9.]{1,60}-[0-9a-z]{12,26}@[\w.-]+", re.IGNORECASE)
AUTO_SUBJECT = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|autosvar|vacation|on leave|"
    r"abwesenheit|automatische antwort|r[ée]ponse automatique|absence|"
    r"h[áa]zon k[íi]v[üu]l|automatikus v[áa]lasz|szabads[áa]g",
    re.IGNORECASE,
)
RAW_POLICY = email_policy.compat32.clone(linesep="\r\n", max_line_length=0)
BOUNCE_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)
ENVELOPE_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")


def parse(raw: bytes, keys: tokens.Keys, envelope_rcpts: tuple[str, ...] = ()) -> Feedback:
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # the stdlib parser is lenient; this is a last resort
        return Feedback(FeedbackKind.UNKNOWN, detail=f"unparseable: {exc!r}")
    targets = list(envelope_rcpts) + [
        a
        for _, a in getaddresses([str(v) for h in ENVELOPE_HEADERS for v in (msg.get_all(h) or [])])
    ]
    envelope_ref = _verp(keys, targets)
    for address in targets:
        token = tokens.mailto_token(address)
        if token and (unsub := tokens.unsubscribe_decode(keys, token)):
            return Feedback(FeedbackKind.UNSUBSCRIBE, ref=unsub, recipients=_addresses(msg, "From"))
    try:
        return _classify(msg, raw, keys, envelope_ref)
    except Exception as exc:  # a malformed MIME tree must not lose the mail
        return Feedback(FeedbackKind.UNKNOWN, ref=envelope_ref, detail=f"unparseable: {exc!r}")


def best_ref(*refs: tokens.Ref | None) -> tokens.Ref | None:
    """The strongest of the references found: current format, then legacy signed, then a
    legacy Message-ID (which carries no MAC)."""
    found = [r for r in refs if r is not None]
    return min(found, key=lambda r: (r.legacy, not r.signed)) if found else None


def _classify(
    msg: Message, raw: bytes, keys: tokens.Keys, envelope_ref: tokens.Ref | None
) -> Feedback:
    report = (
        (msg.get_param("report-type") or "") if msg.get_content_type() == "multipart/report" else ""
    )
    quoted_verp = _verp(keys, VERP_ANYWHERE.findall(raw.decode("latin-1")))
    ref = best_ref(envelope_ref, quoted_verp, _message_ref(msg, keys))
    if str(report).lower() == "feedback-report" or _part(msg, "message/feedback-report"):
        return _arf(msg, ref)
    status_part = _part(msg, "message/delivery-status")
    if status_part is not None:
        dsn = _dsn(status_part, ref)
        if dsn is not None:
            return dsn
    if _auto_reply(msg):
        return Feedback(FeedbackKind.AUTO_REPLY, ref=ref, recipients=_addresses(msg, "From"))
    temporary, permanent = all_failures(msg)
    if permanent or temporary:
        text = _text(msg)
        failed = sorted(a.decode("utf-8", "replace") for a in (permanent or temporary))
        status = m.group(0) if (m := ENHANCED.search(text)) else ""
        hard = (
            bool(permanent)
            and not POLICY.search(text)
            and bool(
                (status and classify_reply(550, status).hard)
                or DEAD_ADDRESS.search(text)
                or re.search(r"no mailbox here|not our customer|no such|unknown", text, re.I)
            )
        )
        return Feedback(
            FeedbackKind.BOUNCE,
            hard=hard,
            recipients=tuple(failed),
            status=status,
            ref=ref,
            action="failed" if permanent else "delayed",
        )
    return Feedback(
        FeedbackKind.UNKNOWN,
        ref=ref,
        detail="no DSN, ARF report, auto-reply or known bounce format",
    )


def _dsn(part: Message, ref: tokens.Ref | None) -> Feedback | None:
    """RFC 3464: per-recipient field groups after the per-message group."""
    groups = (
        [g for g in part.get_payload() if isinstance(g, Message)]
        if part.is_multipart()
        else [email.message_from_string(str(part.get_payload()))]
    )
    failed, delayed, statuses, diagnostics = [], [], [], []
    for group in groups[1:] if len(groups) > 1 else groups:
        action = str(group.get("Action", "")).strip().lower()
        address = _dsn_recipient(group)
        if action == "failed":
            failed.append(address)
        elif action == "delayed":
            delayed.append(address)
        else:
            continue
        statuses.append(str(group.get("Status", "")).strip())
        diagnostics.append(" ".join(str(group.get("Diagnostic-Code", "")).split()))
    if not failed and not delayed:
        return None
    status = next((m.group(0) for s in statuses if (m := ENHANCED.search(s))), "")
    diagnostic = next((d for d in diagnostics if d), "")
    hard = False
    if failed:
        code = int(status[0]) * 100 + 50 if status else 550
        hard = classify_reply(code, f"{status} {diagnostic}").hard
    return Feedback(
        FeedbackKind.BOUNCE,
        hard=hard,
        recipients=tuple(failed or delayed),
        status=status,
        ref=ref,
        action="failed" if failed else "delayed",
        detail=diagnostic[:500],
    )


def _dsn_recipient(group: Message) -> str:
    """The original (else final) recipient of RFC 822 type, as flufl.bounce reads it."""
    fallback = ""
    for name in ("Original-Recipient", "Final-Recipient"):
        kind, _, address = str(group.get(name, "")).partition(";")
        address = address.strip().strip("<>")
        if kind.strip().lower() == "rfc822" and "@" in address:
            return address
        fallback = fallback or address
    return fallback


def _arf(msg: Message, ref: tokens.Ref | None) -> Feedback:
    report = _part(msg, "message/feedback-report")
    fields: Message = Message()
    if report is not None:
        inner = report.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            fields = inner[0]
        elif isinstance(inner, str):
            fields = email.message_from_string(inner)
    recipients = [
        a
        for _, a in getaddresses([str(v) for v in (fields.get_all("Original-Rcpt-To") or [])])
        if a
    ]
    original = _part(msg, "message/rfc822") or _part(msg, "text/rfc822-headers")
    if not recipients and original is not None:
        headers = _original_headers(original)
        recipients = [a for _, a in getaddresses([str(v) for v in headers.get_all("To") or []])]
    return Feedback(
        FeedbackKind.COMPLAINT,
        recipients=tuple(recipients),
        ref=ref,
        extra={
            "feedback_type": str(fields.get("Feedback-Type", "abuse")).strip(),
            "user_agent": str(fields.get("User-Agent", "")).strip(),
        },
    )


def _auto_reply(msg: Message) -> bool:
    """RFC 3834 and the headers auto-responders really set; subject wording as the last hint."""
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Auto-Response-Suppress"):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    if BOUNCE_FROM.search(str(msg.get("From", ""))):
        return False
    return auto.startswith("auto-replied") or bool(AUTO_SUBJECT.search(str(msg.get("Subject", ""))))


def _part(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _original_headers(part: Message) -> Message:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    text = part.get_payload(decode=True) or b""
    return email.message_from_bytes(text if isinstance(text, bytes) else str(text).encode())


def _message_ref(msg: Message, keys: tokens.Keys) -> tokens.Ref | None:
    """Our Message-ID in the quoted original (message/rfc822, headers or body text)."""
    found: list[tokens.Ref | None] = []
    for part in msg.walk():
        if part is msg:
            continue
        for name in ("Message-ID", "Message-Id"):
            if value := part.get(name):
                found.append(tokens.message_id_decode(keys, str(value)))
    text = _text(msg)
    for m in re.finditer(r"Message-I[dD]:\s*(<[^>]+>)", text):
        found.append(tokens.message_id_decode(keys, m.group(1)))
    return best_ref(*found)


def _verp(keys: tokens.Keys, addresses: list[str]) -> tokens.Ref | None:
    return best_ref(*(tokens.verp_decode(keys, a.strip()) for a in addresses))


def quoted_original(raw: bytes) -> bytes | None:
    """The quoted original mail (a ``message/rfc822`` part) as bytes, for DKIM checks."""
    try:
        msg = email.message_from_bytes(raw)
        part = _part(msg, "message/rfc822")
        if part is None:
            return None
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes(policy=RAW_POLICY)
    except Exception:  # a garbled report simply has no checkable original
        return None
    return None


def _addresses(msg: Message, header: str) -> tuple[str, ...]:
    return tuple(a for _, a in getaddresses([str(v) for v in msg.get_all(header) or []]) if a)


def _text(msg: Message) -> str:
    chunks = []
    for part in msg.walk():
        if part.get_content_maintype() in ("text", "message") and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                chunks.append(payload.decode("utf-8", "replace"))
    return "\n".join(chunks)[:200_000]
