"""``postgate feedback classify``: one JSON line per mail, for files, directories, maildirs
and mboxes, in the order found; large sets are shared among worker processes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import islice, repeat
from multiprocessing import get_context
from typing import TextIO

from postgate.core.tokens import Keys
from postgate.feedback.bounces.sources import Located, locate
from postgate.feedback.event import Feedback
from postgate.feedback.mail import parse

BATCH = 200
PARALLEL_FROM = 2 * BATCH  # fewer mails than this are read in this process


def line(name: str, fb: Feedback) -> str:
    ref = fb.ref
    return json.dumps(
        {
            "file": name,
            "kind": fb.kind,
            "reason": fb.reason,
            "hard": fb.hard,
            "recipients": list(fb.recipients),
            "status": fb.status,
            "action": fb.action,
            "delivery": ref.delivery_id if ref else None,
            "reference": None
            if ref is None
            else {
                "delivery": ref.delivery_id,
                "campaign": ref.campaign_id,
                "tenant": ref.tenant_id,
                "format": "legacy" if ref.legacy else "signed",
                "mac": ref.signed,
            },
            "detail": fb.detail,
            **fb.extra,
        },
        ensure_ascii=False,
    )


def classify_batch(batch: Sequence[Located], keys: Keys) -> str:
    out = []
    for mail in batch:
        try:
            raw = mail.read()
        except OSError as exc:
            out.append(
                json.dumps(
                    {
                        "file": mail.name,
                        "kind": "unknown",
                        "reason": "",
                        "error": f"unreadable: {exc.strerror or exc}",
                    }
                )
            )
            continue
        out.append(line(mail.name, parse(raw, keys)))
    return "".join(x + "\n" for x in out)


def _batches(mails: Iterable[Located]) -> Iterator[list[Located]]:
    it = iter(mails)
    while batch := list(islice(it, BATCH)):
        yield batch


def _idle_cpus() -> int:
    """Workers for the CPUs not already busy (a loaded machine gains nothing from more)."""
    cpus = min(os.cpu_count() or 1, 4)
    try:
        busy = int(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, cpus - busy) if busy < cpus else 1


def run(paths: Sequence[str], keys: Keys, out: TextIO, jobs: int = 0) -> int:
    """Classify every mail under ``paths``; returns how many were read."""
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)  # its detectors' tracebacks
    mails = list(locate(paths))
    jobs = jobs or _idle_cpus()
    if jobs <= 1 or len(mails) < PARALLEL_FROM:
        for batch in _batches(mails):
            out.write(classify_batch(batch, keys))
        return len(mails)
    keys = tuple([keys]) if isinstance(keys, str) else tuple(keys)
    with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as pool:
        for text in pool.map(classify_batch, _batches(mails), repeat(keys)):
            out.write(text)
    return len(mails)
