"""Throughput of ``postgate feedback classify`` in one call, start-up included.

    python bench/classify.py [--mails 5000] [--jobs 0] [--as dir|mbox]

The labelled corpus (tests/fixtures/bounces) is repeated into a temporary directory (or
one mbox) until it holds ``--mails`` mails; the command is run once on it and timed from
process start to exit. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "bounces"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mails", type=int, default=5000)
    p.add_argument("--jobs", type=int, default=0)
    p.add_argument("--as", dest="shape", choices=["dir", "mbox"], default="dir")
    args = p.parse_args()
    mails = [f.read_bytes() for f in sorted(CORPUS.glob("*.eml"))]
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / ("mails" if args.shape == "dir" else "mails.mbox")
        if args.shape == "dir":
            target.mkdir()
            for i in range(args.mails):
                (target / f"{i:06d}.eml").write_bytes(mails[i % len(mails)])
        else:
            with open(target, "wb") as f:
                for i in range(args.mails):
                    body = mails[i % len(mails)].replace(b"\r\nFrom ", b"\r\n>From ")
                    f.write(b"From MAILER-DAEMON Tue Mar 10 09:14:07 2026\r\n" + body + b"\r\n")
        started = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "postgate",
                "feedback",
                "classify",
                "--jobs",
                str(args.jobs),
                str(target),
            ],
            capture_output=True,
            check=True,
            env=os.environ | {"SECRET_KEY": "fixture-secret"},
        )
        took = time.perf_counter() - started
    lines = out.stdout.count(b"\n")
    print(
        json.dumps(
            {
                "mails": lines,
                "seconds": round(took, 2),
                "mails_per_s": round(lines / took),
                "shape": args.shape,
                "jobs": args.jobs or "auto",
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
