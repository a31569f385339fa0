"""Auto-replies and out-of-office mail (RFC 3834), which are not bounces (pure).

The headers auto-responders really set first; the subject wording, in the languages our
tenants' recipients write in, only as the last hint, and never for a mail whose subject
or sender says it is a delivery report.
"""

from __future__ import annotations

import re
from email.header import decode_header
from email.message import Message

AUTO_SUBJECT = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|autosvar|autoresponder|vacation|"
    r"on leave|away from (the )?office|abwesenheit|automatische antwort|nicht im b[üu]ro|"
    r"r[ée]ponse automatique|absence|absent|h[áa]zon k[íi]v[üu]l|automatikus v[áa]lasz|"
    r"szabads[áa]g|respuesta autom[áa]tica|fuera de la oficina|ausente|risposta automatica|"
    r"fuori (sede|ufficio)|assente|automatisch antwoord|afwezig|odpowied[źz] automatyczna|"
    r"automatyczna odpowied[źz]|nieobecno[śs][ćc]|resposta autom[áa]tica|fora do escrit[óo]rio|"
    r"automatick[áa] odpov[ěe][ďd]|nep[řr][íi]tomnost|автоответ|автоматический ответ|"
    r"отпуск|不在|自動応答|自動返信|自动回复|frånvaro|frav[æa]r|poissa",
    re.IGNORECASE,
)
BOUNCE_FROM = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|failed|has failed|"
    r"problem)|returned mail|failure notice|mail delivery failed|non-?delivery|"
    r"nondeliverable|delivery report|mail system error|could not be delivered",
    re.IGNORECASE,
)


def header_text(msg: Message, name: str) -> str:
    """A header's text: RFC 2047 words decoded, raw 8-bit bytes read as UTF-8."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        chunks = decode_header(value)
    except (ValueError, LookupError, UnicodeError, TypeError):
        return str(value)
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            codec = charset if charset and charset != "unknown-8bit" else "utf-8"
            try:
                out.append(chunk.decode(codec, "replace"))
            except LookupError:
                out.append(chunk.decode("utf-8", "replace"))
        else:
            out.append(chunk)
    return " ".join(out)


def is_auto_reply(msg: Message) -> bool:
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Auto-Response-Suppress"):
        return not BOUNCE_SUBJECT.search(header_text(msg, "Subject"))
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    if BOUNCE_FROM.search(str(msg.get("From", ""))) or BOUNCE_SUBJECT.search(
        header_text(msg, "Subject")
    ):
        return False
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    subject = header_text(msg, "Subject")
    return auto.startswith("auto-replied") or bool(AUTO_SUBJECT.search(subject))
