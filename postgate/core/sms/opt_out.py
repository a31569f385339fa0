"""Which inbound SMS are opt-out (or opt-back-in) requests. Pure: a text in, a keyword
or None out.

A reply of at most three words counts when it starts with one of the keywords (any
case, accents or not, punctuation ignored): STOP and its usual English companions,
and the Hungarian LEIRATKOZÁS / LEIRATKOZOM. A longer sentence that merely contains
"stop" does not count, as carriers' own STOP handling does. START / UNSTOP and the
Hungarian FELIRATKOZÁS / FELIRATKOZOM, sent from the number itself, take a STOP back.
"""

from __future__ import annotations

import re
import unicodedata

KEYWORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "OPTOUT",
        "LEIRATKOZAS",
        "LEIRATKOZOM",
        "LEIRATKOZNI",
        "TOROL",
        "TOROLJ",
    }
)
RESUME_KEYWORDS = frozenset({"START", "UNSTOP", "FELIRATKOZAS", "FELIRATKOZOM"})
_WORD = re.compile(r"[A-Z]+")


def fold(text: str) -> str:
    """Upper case without accents: 'leiratkozás' -> 'LEIRATKOZAS', 'Ő' -> 'O'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


def keyword(text: str, keywords: frozenset[str] = KEYWORDS) -> str | None:
    """The opt-out keyword ``text`` starts with, or None for any other reply (pass
    ``RESUME_KEYWORDS`` to ask for an opt-back-in instead)."""
    folded = fold(text).strip()
    words = _WORD.findall(folded)
    if not words or len(words) > 3:
        return None
    joined = "".join(words)
    if joined in keywords:
        return joined
    return words[0] if words[0] in keywords else None
