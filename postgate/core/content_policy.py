"""The content policy (pure): forbidden content blocks a campaign, spam-prone topics flag it.

``check(lexicon, subject, text, html)`` returns a :class:`Verdict` naming every matched
lexicon entry by category. Templates are read twice: as written with their tags
blanked out (so a ``{% if %}`` branch is read too) and rendered once with empty
personalisation (so ``p{{ "" }}orn`` or ``{{ "p" ~ "orn" }}`` are read joined up).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from postgate.core.lexicon import Entry, Lexicon, spelled_out, tokens

ALLOW, FLAG, BLOCK = "allow", "flag", "block"
_TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_SKIP = {"script", "style", "head", "title"}
_ATTRS = {"alt", "title"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        self.parts.extend(f" {v} " for k, v in attrs if k in _ATTRS and v)
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self.skipping:
            self.skipping -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    """What a reader sees of ``html`` (and the alt/title texts): tags become spaces."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def without_tags(template: str) -> str:
    return _TAGS.sub(" ", template)


@dataclass(frozen=True)
class Verdict:
    action: str
    matches: dict[str, list[str]] = field(default_factory=dict)  # category -> terms
    categories: dict[str, str] = field(default_factory=dict)  # category -> block | flag

    @property
    def blocked(self) -> bool:
        return self.action == BLOCK

    def summary(self, action: str | None = None) -> str:
        """``"sexual: porn*, xxx; gambling: casino*"`` (only ``action``'s categories if given)."""
        return "; ".join(
            f"{cat}: {', '.join(terms)}"
            for cat, terms in self.matches.items()
            if action is None or self.categories[cat] == action
        )

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action, "matches": self.matches, "categories": self.categories}


def verdict_of(entries: Iterable[Entry]) -> Verdict:
    matches: dict[str, set[str]] = {}
    categories: dict[str, str] = {}
    for entry in entries:
        matches.setdefault(entry.category, set()).add(entry.term)
        categories[entry.category] = entry.action
    action = BLOCK if BLOCK in categories.values() else FLAG if categories else ALLOW
    ordered = sorted(matches, key=lambda c: (categories[c] != BLOCK, c))
    return Verdict(
        action, {c: sorted(matches[c]) for c in ordered}, {c: categories[c] for c in ordered}
    )


def check_texts(lexicon: Lexicon, texts: Iterable[str]) -> Verdict:
    found: list[Entry] = []
    for text in texts:
        words = tokens(text)
        found.extend(lexicon.scan(words))
        joined = spelled_out(words)
        if len(joined) != len(words):
            found.extend(lexicon.scan(joined))
    return verdict_of(found)


def check(
    lexicon: Lexicon, subject: str, text: str, html: str, rendered: Iterable[str] = ()
) -> Verdict:
    """Check a campaign's templates (and, optionally, a sample rendering of them)."""
    sources = [without_tags(subject), without_tags(text), html_text(without_tags(html))]
    rendered = list(rendered)
    if len(rendered) == 3:  # subject, text, html rendered
        rendered[2] = html_text(rendered[2])
    return check_texts(lexicon, [*sources, *rendered])
