"""Where mails to classify come from: files, a directory, a maildir or an mbox (no parsing).

Each mail is named by where it was found (``path``, or ``path:N`` for the N-th message of
an mbox, counted from 1) and located by a byte range, so that the mails can be read by
whichever process classifies them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MBOX_FROM = re.compile(rb"^From [^\r\n]*\r?\n", re.MULTILINE)
MBOXRD_QUOTED = re.compile(rb"^>(>*From )", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Located:
    name: str
    path: str
    start: int = 0
    end: int = -1  # -1: to the end of the file

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            if self.end < 0:
                return f.read()
            f.seek(self.start)
            data = f.read(self.end - self.start)
        return MBOXRD_QUOTED.sub(rb"\1", data)  # mboxrd: ">From " lines were escaped


def locate(paths: Iterable[str]) -> Iterator[Located]:
    """Every mail under the given paths, in a stable order."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from _directory(path)
        elif _is_mbox(path):
            yield from _mbox(path)
        else:
            yield Located(name, name)


def _directory(path: Path) -> Iterator[Located]:
    maildir = [path / sub for sub in ("new", "cur") if (path / sub).is_dir()]
    if (maildir and (path / "tmp").is_dir()) or len(maildir) == 2:
        for folder in maildir:
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_file() and not entry.name.startswith("."):
                    yield Located(entry.path, entry.path)
        return
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _directory(Path(entry.path))
        elif entry.is_file():
            if _is_mbox(Path(entry.path)):
                yield from _mbox(Path(entry.path))
            else:
                yield Located(entry.path, entry.path)


def _is_mbox(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(5) == b"From "
    except OSError:
        return False


def _mbox(path: Path) -> Iterator[Located]:
    data = path.read_bytes()
    starts = [m.end() for m in MBOX_FROM.finditer(data)]
    heads = [m.start() for m in MBOX_FROM.finditer(data)]
    for i, start in enumerate(starts):
        end = heads[i + 1] if i + 1 < len(heads) else len(data)
        yield Located(f"{path}:{i + 1}", str(path), start, end)
