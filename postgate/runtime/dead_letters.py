"""How a dead letter's body is kept in the ``dead_letter`` table and shown again.

A dead-lettered message can hold any bytes, but the ``body`` column is text, and
PostgreSQL's text cannot hold NUL. :func:`preview` keeps a body that is clean UTF-8 as
it is and stores anything else as ``base64:`` and the base64 of its first
:data:`PREVIEW_BYTES` bytes, so the row is always written; :func:`shown` turns a stored
body back into something a terminal can print. The full message stays on the
``<prefix>.dead`` queue either way.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

PREVIEW_BYTES = 65_536
BASE64 = "base64:"

# C0 controls but tab, LF and CR; DEL; C1 controls
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def preview(body: bytes, limit: int = PREVIEW_BYTES) -> str:
    """The first ``limit`` bytes of ``body`` as text when they are UTF-8 without control
    characters other than tab, CR and LF; otherwise ``"base64:"`` and their base64."""
    head = bytes(body[:limit])
    try:
        # not final: a multi-byte character cut by the limit is dropped, not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=len(body) <= limit)
    except UnicodeDecodeError:
        text = None
    if text is not None and not _CONTROL.search(text) and not text.startswith(BASE64):
        return text
    return BASE64 + base64.b64encode(head).decode("ascii")


def is_base64(stored: str) -> bool:
    return stored.startswith(BASE64)


def raw(stored: str) -> bytes:
    """The bytes a stored preview was made from."""
    if is_base64(stored):
        try:
            return base64.b64decode(stored[len(BASE64) :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return stored.encode("utf-8", "surrogatepass")


def shown(stored: str, chars: int = 200) -> tuple[str, str]:
    """``(encoding, printable)`` for a stored body: ``"utf-8"`` and its first ``chars``
    characters, or ``"base64"`` and its first ``chars`` bytes as text where they are
    UTF-8, every other byte and every control character but tab, CR and LF written
    ``\\xNN``, and a backslash doubled so that the escapes are unambiguous."""
    if not is_base64(stored):
        return "utf-8", stored[:chars]
    text = raw(stored)[:chars].decode("utf-8", "surrogateescape")
    return "base64", "".join(_escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8, kept by surrogateescape
        return f"\\x{ord(ch) - 0xDC00:02x}"
    if _CONTROL.match(ch):
        return f"\\x{ord(ch):02x}"
    return ch
