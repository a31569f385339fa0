"""Content lexicons: editable word lists, folded into fast token lookups (pure).

A lexicon folder holds ``block/<category>.txt`` and ``flag/<category>.txt`` (see
``lexicons/README.txt``). Text and entries go through the same :func:`tokens`, so
case, accents, punctuation between words and simple obfuscation (``fr33``, ``s.e.x``,
``c@sino``) do not matter, and matching is on whole words: "sex" never hits "Essex".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DEFAULT_DIR = Path(__file__).parent / "lexicons"
ACTIONS = ("block", "flag")

_WORD = re.compile(r"(?:[^\W_]|[@$])+")
_LEET = str.maketrans("013457@$", "oieastas")
_MIN_SPELLED = 3  # "s e x", "x.x.x": runs of this many single letters are also read joined


class LexiconError(ValueError):
    """A lexicon file that cannot be read; the text names the file and line."""


def fold(text: str) -> str:
    """Case- and accent-insensitive form: "Kaszinó" -> "kaszino", "Straße" -> "strasse"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _plain(word: str) -> str:
    """Undo digit/symbol look-alikes in words that have letters: "fr33" -> "free"."""
    if word.isalpha() or not any(ch.isalpha() for ch in word):
        return word
    return word.translate(_LEET)


def tokens(text: str) -> list[str]:
    """The words of ``text``, folded and de-obfuscated."""
    return [_plain(w) for w in _WORD.findall(fold(text))]


def spelled_out(words: list[str]) -> list[str]:
    """``words`` with every run of single letters joined: ["s","e","x"] -> ["sex"]."""
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1 and word.isalpha():
            run.append(word)
            continue
        out.extend(["".join(run)] if len(run) >= _MIN_SPELLED else run)
        run = []
        if word:
            out.append(word)
    return out


@dataclass(frozen=True, slots=True)
class Entry:
    action: str
    category: str
    term: str  # as written in the file, for reports


@dataclass
class Lexicon:
    """Exact phrases by their word tuple; ``word*`` entries by (leading words, prefix)."""

    exact: dict[tuple[str, ...], list[Entry]] = field(default_factory=dict)
    prefix: dict[tuple[str, ...], list[Entry]] = field(default_factory=dict)
    exact_lengths: set[int] = field(default_factory=set)
    prefix_shapes: set[tuple[int, int]] = field(default_factory=set)  # (leading words, chars)
    first_words: set[str] = field(default_factory=set)

    def add(self, entry: Entry) -> None:
        wildcard = entry.term.endswith("*")
        words = tokens(entry.term.rstrip("*"))
        if not words:
            raise LexiconError(f"{entry.category}: entry {entry.term!r} has no words")
        if wildcard:
            key = (*words[:-1], words[-1])
            self.prefix.setdefault(key, []).append(entry)
            self.prefix_shapes.add((len(words) - 1, len(words[-1])))
            if len(words) > 1:
                self.first_words.add(words[0])
        else:
            self.exact.setdefault(tuple(words), []).append(entry)
            self.exact_lengths.add(len(words))
            self.first_words.add(words[0])

    def scan(self, words: list[str]) -> Iterator[Entry]:
        """Every entry that occurs in ``words`` (with repeats)."""
        for i, word in enumerate(words):
            if word in self.first_words:
                for n in self.exact_lengths:
                    yield from self.exact.get(tuple(words[i : i + n]), ())
            for lead, chars in self.prefix_shapes:
                if i + lead >= len(words) or (lead and word not in self.first_words):
                    continue
                last = words[i + lead]
                if len(last) >= chars:
                    yield from self.prefix.get((*words[i : i + lead], last[:chars]), ())

    @property
    def size(self) -> int:
        return sum(map(len, self.exact.values())) + sum(map(len, self.prefix.values()))


def parse(lexicon: Lexicon, action: str, category: str, text: str) -> None:
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "*" in line.rstrip("*") or line.endswith("**"):
            raise LexiconError(f"{action}/{category}.txt:{number}: '*' only at the end")
        lexicon.add(Entry(action, category, line))


@lru_cache(maxsize=4)
def load(folder: str = "") -> Lexicon:
    """Read ``block/*.txt`` and ``flag/*.txt`` under ``folder`` (default: the shipped one)."""
    root = Path(folder) if folder else DEFAULT_DIR
    lexicon = Lexicon()
    for action in ACTIONS:
        for path in sorted((root / action).glob("*.txt")):
            parse(lexicon, action, path.stem, path.read_text(encoding="utf-8"))
    if not lexicon.size:
        raise LexiconError(f"no lexicon entries under {root}")
    return lexicon
