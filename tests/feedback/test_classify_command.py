"""``postgate feedback classify`` on a directory, a maildir and an mbox: one JSON line per
mail with its reason, in the order found; the worker processes change nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from postgate.feedback.bounces.classify import run
from postgate.feedback.bounces.sources import locate

CORPUS = Path(__file__).parent.parent / "fixtures" / "bounces"
LABELS = {x["file"]: x for x in json.loads((CORPUS / "labels.json").read_text())}
SECRET = "fixture-secret"


def classify(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "postgate", "feedback", "classify", *args],
        env=os.environ | {"SECRET_KEY": SECRET},
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


def test_a_directory_a_maildir_and_an_mbox(tmp_path: Path) -> None:
    names = sorted(LABELS)[:40]
    plain = tmp_path / "plain"
    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    plain.mkdir()
    with open(tmp_path / "box.mbox", "wb") as mbox:
        for i, name in enumerate(names):
            shutil.copy(CORPUS / name, plain / name)
            shutil.copy(CORPUS / name, maildir / ("new" if i % 2 else "cur") / name)
            body = (CORPUS / name).read_bytes().replace(b"\nFrom ", b"\n>From ")
            mbox.write(b"From MAILER-DAEMON Tue Mar 10 09:14:07 2026\r\n" + body + b"\r\n")
    directory = classify(str(plain))
    assert [Path(str(x["file"])).name for x in directory] == names
    assert [(x["kind"], x["reason"]) for x in directory] == [
        (LABELS[n]["kind"], LABELS[n]["reason"]) for n in names
    ]
    from_maildir = classify(str(maildir))
    assert sorted(Path(str(x["file"])).name for x in from_maildir) == names
    from_mbox = classify(str(tmp_path / "box.mbox"))
    assert [x["file"] for x in from_mbox] == [
        f"{tmp_path / 'box.mbox'}:{i + 1}" for i in range(len(names))
    ]
    assert [(x["kind"], x["reason"], x["recipients"]) for x in from_mbox] == [
        (x["kind"], x["reason"], x["recipients"]) for x in directory
    ]


def test_worker_processes_keep_the_order(tmp_path: Path) -> None:
    files = [str(p) for p in sorted(CORPUS.glob("*.eml"))]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    with open(one, "w") as a, open(two, "w") as b:
        assert run(files, SECRET, a, jobs=1) == run(files, SECRET, b, jobs=2) == len(files)
    assert one.read_text() == two.read_text() and one.read_text().count("\n") == len(files)


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "gone.eml"
    assert [x.name for x in locate([str(missing)])] == [str(missing)]
    lines = classify(str(missing), str(CORPUS / sorted(LABELS)[0]))
    assert [x["kind"] for x in lines] == ["unknown", "bounce"] and "error" in lines[0]
