"""GSM 03.38 or UCS-2: how an SMS text is encoded, how many parts it takes, what is sent.

Pure functions. A text that fits the GSM 7-bit default alphabet (with its extension
table, whose characters cost two septets: an escape and the character) is sent as
GSM-7: 160 septets in one part, 153 per part when concatenated (the user data header
takes the rest). Anything else is UCS-2: 70 UTF-16 code units, 67 per part. A part
never ends inside an escape sequence or between the two halves of a surrogate pair.

Policy ``transliterate`` maps Hungarian letters that GSM-7 lacks (á, í, ó, ő, ú, ű)
and typographic punctuation to their closest GSM-7 character before choosing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# The default alphabet, index = septet value (0x1B, the escape, is not a character).
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
ESCAPE = 0x1B
_SEPTET = {ch: i for i, ch in enumerate(BASIC) if i != ESCAPE}

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

TRANSLITERATION = str.maketrans(
    {
        "á": "a",
        "í": "i",
        "ó": "o",
        "ő": "ö",
        "ú": "u",
        "ű": "ü",
        "Á": "A",
        "Í": "I",
        "Ó": "O",
        "Ő": "Ö",
        "Ú": "U",
        "Ű": "Ü",
        "\u201e": '"',
        "\u201c": '"',
        "\u201d": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\t": " ",
    }
)


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


class Policy(StrEnum):
    UNICODE = "unicode"  # keep the text; UCS-2 when it needs it
    TRANSLITERATE = "transliterate"  # map Hungarian to GSM-7 first


class SmsTooLong(ValueError):
    """The text needs more parts than the campaign allows."""


@dataclass(frozen=True, slots=True)
class EncodedSms:
    encoding: Encoding
    text: str  # the text as it will be sent
    parts: tuple[str, ...]  # the text of each part, in order

    @property
    def segments(self) -> int:
        return len(self.parts)

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def units(self) -> int:
        """Septets (GSM-7) or UTF-16 code units (UCS-2) the text takes."""
        return sum(unit_cost(ch, self.encoding) for ch in self.text)

    def summary(self) -> dict[str, object]:
        return {
            "encoding": self.encoding.value,
            "segments": self.segments,
            "chars": self.chars,
            "units": self.units,
            "text": self.text,
        }


def is_gsm7(text: str) -> bool:
    return all(ch in _SEPTET or ch in EXTENSION for ch in text)


def unit_cost(ch: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return 2 if ch in EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def split(text: str, encoding: Encoding) -> tuple[str, ...]:
    """Cut ``text`` into parts; a character's units always stay in one part."""
    single, per_part = (
        (GSM7_SINGLE, GSM7_PART) if encoding is Encoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
    )
    costs = [unit_cost(ch, encoding) for ch in text]
    if sum(costs) <= single:
        return (text,)
    parts: list[str] = []
    start = used = 0
    for i, cost in enumerate(costs):
        if used + cost > per_part:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return tuple(parts)


def encode(text: str, policy: Policy = Policy.UNICODE, max_parts: int | None = None) -> EncodedSms:
    """Choose the encoding and the parts of ``text`` under ``policy``."""
    if policy is Policy.TRANSLITERATE:
        text = text.translate(TRANSLITERATION)
    encoding = Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2
    parts = split(text, encoding)
    if max_parts is not None and len(parts) > max_parts:
        raise SmsTooLong(
            f"text needs {len(parts)} {encoding.value} parts; at most {max_parts} allowed"
        )
    return EncodedSms(encoding, text, parts)


def to_bytes(part: str, encoding: Encoding) -> bytes:
    """The octets of one part: unpacked GSM-7 septets (escape + code for the extension
    table) or big-endian UTF-16 (surrogate pairs kept whole)."""
    if encoding is Encoding.UCS2:
        return part.encode("utf-16-be")
    out = bytearray()
    for ch in part:
        if ch in EXTENSION:
            out += bytes((ESCAPE, EXTENSION[ch]))
        else:
            out.append(_SEPTET[ch])
    return bytes(out)


def from_bytes(data: bytes, encoding: Encoding) -> str:
    """Decode octets produced by :func:`to_bytes` (and by gateways for MO messages)."""
    if encoding is Encoding.UCS2:
        return data.decode("utf-16-be", errors="replace")
    reverse = {v: k for k, v in EXTENSION.items()}
    out, escaped = [], False
    for octet in data:
        if escaped:
            out.append(reverse.get(octet, " "))
            escaped = False
        elif octet == ESCAPE:
            escaped = True
        else:
            out.append(BASIC[octet & 0x7F])
    return "".join(out)
