"""Text a database column can hold (pure): PostgreSQL refuses NUL in text, and no field of
ours wants other control characters. Used by queue messages and api bodies alike."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator


def _text(value: str) -> str:
    if any(
        (ch < " " and ch not in "\t\n\r") or ch == "\x7f" or "\ud800" <= ch <= "\udfff"
        for ch in value
    ):
        raise ValueError(
            "control characters (NUL and the like) and lone surrogates are not allowed"
        )
    return value


JOINERS = "\u200c\u200d"  # ZWNJ (Persian, Indic scripts) and ZWJ (emoji sequences)


def _line(value: str) -> str:
    """One line of visible text: no control characters (C0, C1), line breaks, lone
    surrogates, private use or invisible format characters (bidi overrides, zero-width
    spaces), except the two joiners scripts and emoji need."""
    for ch in value:
        kind = unicodedata.category(ch)
        if kind in ("Cc", "Cs", "Co", "Zl", "Zp") or (kind == "Cf" and ch not in JOINERS):
            raise ValueError(
                "control characters, line breaks and invisible characters are not allowed"
            )
    return value


Text = Annotated[str, AfterValidator(_text)]  # free text: tabs and line breaks allowed
Line = Annotated[str, AfterValidator(_line)]  # one line: names, ids, addresses, reasons
