"""Complaints and unsubscribes that are not RFC 5965 ARF, and provider notifications.

- Amazon SES notifications (``notificationType``, or ``eventType`` from a configuration
  set), bare or inside an SNS envelope (``"Type": "Notification"``, the notification as
  the JSON string ``Message``), as SNS mails them: Bounce, Complaint, DeliveryDelay are
  feedback; Delivery, Send, Open, Click are not. Recipients come from the parsed JSON.
- Microsoft JMRP (Outlook.com / Hotmail junk mail reporting) in its non-ARF form:
  subject "complaint about message from <ip>", the original attached, its recipient in
  ``X-HmXmrOriginalRecipient``.
- Apple Mail's unsubscribe button: a mail carrying ``X-Apple-Unsubscribe``.

Pure; no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses
from typing import Any

from postgate.core.bounce_reasons import BounceReason, is_hard, reason, status_in
from postgate.core.states import FeedbackKind

R = BounceReason
SES_SUBTYPES: dict[str, BounceReason] = {
    "noemail": R.USER_UNKNOWN,
    "suppressed": R.USER_UNKNOWN,
    "onaccountsuppressionlist": R.USER_UNKNOWN,
    "mailboxfull": R.MAILBOX_FULL,
    "messagetoolarge": R.MESSAGE_TOO_BIG,
    "contentrejected": R.POLICY_BLOCK,
    "attachmentrejected": R.POLICY_BLOCK,
}
SES_DELAYS: dict[str, BounceReason] = {
    "mailboxfull": R.MAILBOX_FULL,
    "spamdetected": R.POLICY_BLOCK,
    "ipfailure": R.POLICY_BLOCK,
    "transientcommunicationfailure": R.NETWORK_ERROR,
}
NOT_FEEDBACK = {"delivery", "send", "open", "click", "rendering failure", "subscription", "reject"}
JMRP_SUBJECT = re.compile(r"complaint about message from", re.IGNORECASE)
JMRP_FROM = re.compile(r"@(hotmail|msn|outlook|live)\.com|staff@hotmail", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Signal:
    kind: FeedbackKind  # bounce | complaint | unsubscribe | unknown
    recipients: tuple[str, ...] = ()
    reason: str = ""
    hard: bool | None = None
    status: str = ""
    action: str = ""
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    message_ids: tuple[str, ...] = ()  # the original's, as the notification quotes them


def ses_notification(text: str) -> Signal | None:
    """An SES notification written as JSON (bare or in an SNS envelope), else None."""
    body = text.lstrip()
    if not body.startswith("{") or ("notificationType" not in body and "eventType" not in body):
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(body)  # SNS adds an unsubscribe footer
        if (
            isinstance(data, dict)
            and data.get("Type") == "Notification"
            and isinstance(data.get("Message"), str)
        ):
            data = json.loads(data["Message"])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = str(data.get("notificationType") or data.get("eventType") or "").strip().lower()
    signal = _ses_signal(kind, data)
    mail = _dict(data.get("mail"))
    ids = tuple(
        str(h.get("value", ""))[:300]
        for h in _rows(mail.get("headers"))
        if str(h.get("name", "")).lower() == "message-id"
    )
    return dataclasses.replace(signal, message_ids=ids)


def _ses_signal(kind: str, data: dict[str, Any]) -> Signal:
    if kind == "bounce":
        return _ses_bounce(_dict(data.get("bounce")))
    if kind == "complaint":
        complaint = _dict(data.get("complaint"))
        return Signal(
            FeedbackKind.COMPLAINT,
            _emails(complaint.get("complainedRecipients")),
            extra={
                "feedback_type": str(complaint.get("complaintFeedbackType") or "abuse"),
                "user_agent": str(complaint.get("userAgent") or "Amazon SES"),
            },
        )
    if kind == "deliverydelay":
        delay = _dict(data.get("deliveryDelay"))
        found = SES_DELAYS.get(str(delay.get("delayType", "")).lower(), R.OTHER)
        rows = _rows(delay.get("delayedRecipients"))
        text_said = " ".join(str(r.get("diagnosticCode", "")) for r in rows)
        if text_said.strip():
            found = reason(status_in(text_said), text_said)
        return Signal(
            FeedbackKind.BOUNCE,
            _emails(rows),
            str(found),
            False,
            status_in(text_said),
            "delayed",
            text_said[:500],
        )
    if kind in NOT_FEEDBACK:
        return Signal(
            FeedbackKind.UNKNOWN, detail=f"SES {kind} notification: not a bounce or complaint"
        )
    return Signal(FeedbackKind.UNKNOWN, detail=f"SES notification of unknown type {kind[:40]!r}")


def _ses_bounce(bounce: dict[str, Any]) -> Signal:
    rows = _rows(bounce.get("bouncedRecipients"))
    permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
    subtype = str(bounce.get("bounceSubType", "")).lower()
    diagnostic = next((str(r["diagnosticCode"]) for r in rows if r.get("diagnosticCode")), "")
    status = next((str(r["status"]) for r in rows if r.get("status")), "") or status_in(diagnostic)
    said = diagnostic.split(";", 1)[1] if ";" in diagnostic[:12] else diagnostic
    found = reason(status, said) if said.strip() or status else R.OTHER
    if found is R.OTHER or not said.strip():
        found = SES_SUBTYPES.get(subtype, found)
    action = "failed"
    return Signal(
        FeedbackKind.BOUNCE,
        _emails(rows),
        str(found),
        permanent and is_hard(found, action),
        status_in(status),
        action,
        diagnostic[:500],
        extra={
            "bounce_type": str(bounce.get("bounceType", ""))[:40],
            "bounce_subtype": str(bounce.get("bounceSubType", ""))[:40],
        },
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _rows(value: object) -> list[dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _emails(value: object) -> tuple[str, ...]:
    rows = _rows(value) if isinstance(value, list) else []
    found = [a for _, a in getaddresses([str(r.get("emailAddress", "")) for r in rows])]
    return tuple(a for a in found if a)


def jmrp(msg: Message) -> Signal | None:
    """A Microsoft JMRP complaint in its non-ARF form, else None."""
    if not JMRP_SUBJECT.search(str(msg.get("Subject", ""))):
        return None
    recipients: list[str] = []
    for part in msg.walk():
        for value in part.get_all("X-HmXmrOriginalRecipient") or []:
            recipients += [a for _, a in getaddresses([str(value)]) if a]
    if not recipients:
        for part in msg.walk():
            if part.get_content_type() == "message/rfc822" and part.is_multipart():
                inner = part.get_payload(0)
                if isinstance(inner, Message):
                    recipients += [
                        a for _, a in getaddresses([str(v) for v in inner.get_all("To") or []]) if a
                    ]
    if not recipients and not JMRP_FROM.search(str(msg.get("From", ""))):
        return None
    return Signal(
        FeedbackKind.COMPLAINT,
        tuple(recipients),
        extra={"feedback_type": "abuse", "user_agent": "Microsoft JMRP"},
    )


def apple_unsubscribe(msg: Message) -> Signal | None:
    """Apple Mail's unsubscribe button sends a mail with ``X-Apple-Unsubscribe``."""
    value = msg.get("X-Apple-Unsubscribe")
    if value is None or str(value).strip().lower() in ("false", "no", "0"):
        return None
    sender = tuple(a for _, a in getaddresses([str(v) for v in msg.get_all("From") or []]) if a)
    return Signal(FeedbackKind.UNSUBSCRIBE, sender, extra={"via": "X-Apple-Unsubscribe"})
