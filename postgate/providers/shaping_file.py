"""The shaping file: TOML (``SHAPING_FILE``; empty: the ``shaping.toml`` shipped beside
this module), validated against ``core.shaping.Shaping``. Anything wrong with it — a file
that cannot be read, bad TOML, an unknown key, a value out of range — is one
:class:`ShapingError` naming the file and every problem, raised when the MX provider
starts, never halfway through a campaign."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from postgate.core.shaping import Shaping

BUILT_IN = Path(__file__).with_name("shaping.toml")


class ShapingError(ValueError):
    pass


def load(path: str = "") -> Shaping:
    """The shaping in ``path`` (the built-in one when empty)."""
    return _load(Path(path) if path else BUILT_IN)


@lru_cache(maxsize=8)
def _load(path: Path) -> Shaping:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ShapingError(f"shaping file {path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ShapingError(f"shaping file {path}: not valid TOML ({exc})") from None
    try:
        return Shaping.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ShapingError(f"shaping file {path}: {problems}") from None
