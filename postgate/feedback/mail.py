"""Read one mail sent back to the bounce domain and say what it is (pure; no I/O).

In order: a mailto unsubscribe (``unsubscribe+<token>@``), an RFC 5965 ARF complaint,
the non-ARF complaints and provider notifications (``feedback.mail.complaints``: SES/SNS
JSON, Microsoft JMRP, Apple's X-Apple-Unsubscribe), an RFC 3464 DSN
(``message/delivery-status``, RFC 3463 codes), DSN fields read from any text when MIME
parsing found none (``feedback.mail.fallback``), an RFC 3834 auto-reply (out of office is
not a bounce), the per-MTA plain-text bounces (``feedback.mail.text_bounces``), then
flufl.bounce's detectors for what is left. Whatever is left is ``unknown`` and kept for
inspection. Every bounce carries a reason (``feedback.mail.reasons``); hard means a
dead-address reason.
The delivery it refers to comes from a signed reference (``delivery.tokens``): the VERP
return path the report was sent to or quotes, else our signed Message-ID in the quoted
original; old-format references decode as *legacy*. Whether a reference is accepted is
the store's decision (``feedback_store``), not the parser's: a reference proves only
which of our mails the report is about, never more.
"""

from __future__ import annotations

import dataclasses
import email
import re
from email import policy as email_policy
from email.message import Message
from email.utils import getaddresses

from flufl.bounce import all_failures

from postgate.core import tokens
from postgate.core.bounce import ENHANCED
from postgate.core.bounce_reasons import BounceReason, from_text, is_hard, reason, status_in
from postgate.core.states import FeedbackKind
from postgate.feedback.bounces import complaints, fallback, recipients, text_bounces
from postgate.feedback.bounces.autoreply import is_auto_reply
from postgate.feedback.event import Feedback

VERP_ANYWHERE = re.compile(r"\bb\+[0-9.]{1,60}-[0-9a-z]{12,26}@[\w.-]+", re.IGNORECASE)
RAW_POLICY = email_policy.compat32.clone(linesep="\r\n", max_line_length=0)
ENVELOPE_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")


def parse(raw: bytes, keys: tokens.Keys, envelope_rcpts: tuple[str, ...] = ()) -> Feedback:
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # the stdlib parser is lenient; this is a last resort
        return Feedback(FeedbackKind.UNKNOWN, detail=f"unparseable: {exc!r}")
    targets = list(envelope_rcpts) + recipients.ADDRESS.findall(
        "\n".join(str(v) for h in ENVELOPE_HEADERS for v in (msg.get_all(h) or []))
    )
    envelope_ref = _verp(keys, targets)
    for address in targets:
        token = tokens.mailto_token(address)
        if token and (unsub := tokens.unsubscribe_decode(keys, token)):
            return Feedback(FeedbackKind.UNSUBSCRIBE, ref=unsub, recipients=_addresses(msg, "From"))
    try:
        return _classify(msg, raw, keys, envelope_ref, tuple(targets))
    except Exception as exc:  # a malformed MIME tree must not lose the mail
        return Feedback(FeedbackKind.UNKNOWN, ref=envelope_ref, detail=f"unparseable: {exc!r}")


def best_ref(*refs: tokens.Ref | None) -> tokens.Ref | None:
    """The strongest of the references found: current format, then legacy signed, then a
    legacy Message-ID (which carries no MAC)."""
    found = [r for r in refs if r is not None]
    return min(found, key=lambda r: (r.legacy, not r.signed)) if found else None


def _classify(
    msg: Message,
    raw: bytes,
    keys: tokens.Keys,
    envelope_ref: tokens.Ref | None,
    targets: tuple[str, ...] = (),
) -> Feedback:
    report = (
        (msg.get_param("report-type") or "") if msg.get_content_type() == "multipart/report" else ""
    )
    whole = raw.decode("latin-1")
    quoted_verp = _verp(keys, VERP_ANYWHERE.findall(whole))
    ref = best_ref(envelope_ref, quoted_verp, _message_ref(msg, keys, whole))
    ours = recipients.ours(msg, whole, targets)
    if str(report).lower() == "feedback-report" or _part(msg, "message/feedback-report"):
        arf = _arf(msg, ref)
        return dataclasses.replace(arf, recipients=recipients.clean(arf.recipients, ours))
    text = text_bounces.report_text(msg)
    signal = (
        complaints.ses_notification(text)
        or complaints.jmrp(msg)
        or complaints.apple_unsubscribe(msg)
    )
    if signal is not None:
        named = (
            signal.recipients
            if signal.kind == FeedbackKind.UNSUBSCRIBE
            else recipients.clean(signal.recipients, ours)
        )
        quoted = (tokens.message_id_decode(keys, m) for m in signal.message_ids)
        return Feedback(
            FeedbackKind(signal.kind),
            hard=signal.hard,
            recipients=named,
            status=signal.status,
            ref=best_ref(ref, *quoted),
            action=signal.action,
            detail=signal.detail,
            reason=signal.reason,
            extra=dict(signal.extra),
        )
    status_part = _part(msg, "message/delivery-status")
    if status_part is not None:
        dsn = _dsn(status_part, ref, ours, text[:4000])
        if dsn is not None:
            return dsn
    fields = fallback.read(text) or (fallback.read(whole) if "ction:" in whole else None)
    if fields is not None and (failed := recipients.clean(fields.recipients, ours)):
        return Feedback(
            FeedbackKind.BOUNCE,
            hard=is_hard(fields.reason, fields.action),
            recipients=failed,
            status=fields.status,
            ref=ref,
            action=fields.action,
            detail=fields.diagnostic,
            reason=str(fields.reason),
        )
    if _auto_reply(msg):
        return Feedback(FeedbackKind.AUTO_REPLY, ref=ref, recipients=_addresses(msg, "From"))
    bounce = text_bounces.recognise(msg, text)
    if bounce is not None and (failed := recipients.clean(bounce.recipients, ours)):
        first = bounce.reasons.get(failed[0], bounce.reason)
        return Feedback(
            FeedbackKind.BOUNCE,
            hard=is_hard(first, bounce.action),
            recipients=failed,
            status=bounce.status,
            ref=ref,
            action=bounce.action,
            detail=bounce.diagnostic,
            reason=str(first),
            extra={"format": bounce.format},
        )
    temporary, permanent = all_failures(msg)
    failed = recipients.clean(
        sorted(a.decode("utf-8", "replace") for a in (permanent or temporary)), ours
    )
    if failed:
        said = " ".join(text[:4000].split())
        status = status_in(said)
        found = reason(status, said)
        action = "failed" if permanent else "delayed"
        return Feedback(
            FeedbackKind.BOUNCE,
            hard=is_hard(found, action),
            recipients=failed,
            status=status,
            ref=ref,
            action=action,
            detail=said[:500],
            reason=str(found),
        )
    return Feedback(
        FeedbackKind.UNKNOWN,
        ref=ref,
        detail="no DSN, ARF report, auto-reply or known bounce format",
    )


def _dsn(
    part: Message, ref: tokens.Ref | None, ours: set[str] | None = None, human: str = ""
) -> Feedback | None:
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
    named = recipients.clean(failed or delayed, ours or set())
    if not named:
        return None
    status = next((m.group(0) for s in statuses if (m := ENHANCED.search(s))), "")
    diagnostic = next((d for d in diagnostics if d), "")
    said = diagnostic.split(";", 1)[1] if ";" in diagnostic[:12] else diagnostic
    said = said.strip() or next(
        (x for s in statuses if (x := ENHANCED.sub("", s).strip(" ()"))), ""
    )
    found = reason(status, said)
    if found is BounceReason.OTHER and human:  # the report's own words, when the fields say
        found = from_text(human) or found  # nothing recognisable
    action = "failed" if failed else "delayed"
    return Feedback(
        FeedbackKind.BOUNCE,
        hard=is_hard(found, action),
        recipients=named,
        status=status,
        ref=ref,
        action=action,
        detail=diagnostic[:500],
        reason=str(found),
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
    return is_auto_reply(msg)


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


def _message_ref(msg: Message, keys: tokens.Keys, whole: str = "") -> tokens.Ref | None:
    """Our Message-ID in the quoted original (message/rfc822, headers or body text)."""
    found: list[tokens.Ref | None] = []
    for part in msg.walk():
        if part is msg:
            continue
        if value := part.get("Message-ID"):
            found.append(tokens.message_id_decode(keys, str(value)))
    encoded = any(
        str(p.get("Content-Transfer-Encoding", "")).strip().lower()
        in ("base64", "quoted-printable")
        for p in msg.walk()
    )
    text = _text(msg) if encoded or not whole else whole
    for m in re.finditer(r"Message-I[dD]:\s*(<[^>]+>)", text):
        found.append(tokens.message_id_decode(keys, m.group(1)))
    return best_ref(*found)


def _verp(keys: tokens.Keys, addresses: list[str]) -> tokens.Ref | None:
    unique = dict.fromkeys(a.strip() for a in addresses)  # each checked once
    return best_ref(*(tokens.verp_decode(keys, a) for a in unique))


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
