"""The message ids postgate's own code and templates ask for, extracted with Babel."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

import postgate

ROOT = Path(postgate.__file__).parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "plural": (1, 2)}
METHODS = [
    ("**/pages/templates/**.html", "jinja2"),
    ("**/core/templates/**.txt", "jinja2"),
    ("**.py", "python"),
]
OPTIONS = {
    "**/pages/templates/**.html": {"extensions": "jinja2.ext.i18n"},
    "**/core/templates/**.txt": {"extensions": "jinja2.ext.i18n"},
}


def extracted() -> dict[str | tuple[str, str], list[str]]:
    """message id (a tuple for plurals) -> where it is asked for."""
    found: dict[str | tuple[str, str], list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), METHODS, keywords=KEYWORDS, options_map=OPTIONS, comment_tags=()
    ):
        if filename.startswith("migrations"):
            continue
        key = message if isinstance(message, str) else tuple(message)[:2]
        found.setdefault(key, []).append(f"{filename}:{lineno}")  # type: ignore[arg-type]
    return found
