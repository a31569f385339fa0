"""A DKIM signing process: ``python -m postgate.workers.signing_process``, started by the
sender's signing pool (``workers/signing.py``), never by hand. It renders the mail it signs.

It reads requests from stdin and writes replies to stdout, one at a time, each a 4-byte
big-endian length and a pickle. A request is ``("render", campaign, keys, recipients,
date)``: the campaign's spec (content, secret, public URL, bounce domain; compiled on its
first chunk and kept), the keys (each parsed once and kept) and per recipient its
``RecipientData`` and per-delivery values; or ``("sign", keys, messages)`` for messages
rendered already. A reply is ``("ok", (signed messages, seconds per key per message))``,
or ``("raise", exception)`` with what rendering raised (a template over its limits, say),
for the sender to raise as if it had rendered the mail itself. The pipes are private to
the sender that started it; it exits at the end of its input (the sender closed the pipe,
or died).
"""

from __future__ import annotations

import pickle
import struct
import sys
from typing import Any, BinaryIO

from postgate.core.dkim_signing import DkimError, sign_chunk
from postgate.core.rendering import CompiledCampaign

HEADER = struct.Struct("!I")
_CAMPAIGNS: dict[tuple[Any, ...], CompiledCampaign] = {}  # each compiled once


def _compiled(spec: tuple[Any, ...]) -> CompiledCampaign:
    compiled = _CAMPAIGNS.get(spec)
    if compiled is None:
        if len(_CAMPAIGNS) >= 64:  # campaigns come and go
            _CAMPAIGNS.clear()
        compiled = _CAMPAIGNS[spec] = CompiledCampaign(*spec)
    return compiled


def handle(request: tuple[Any, ...]) -> tuple[list[bytes], list[list[float]]]:
    if request[0] == "render":
        _, spec, keys, recipients, date = request
        compiled = _compiled(spec)
        datas = [compiled.render(rcpt, date, extra) for rcpt, extra in recipients]
        return sign_chunk(tuple(keys), datas)
    _, keys, datas = request
    return sign_chunk(tuple(keys), list(datas))


def _raised(exc: Exception) -> tuple[str, object]:
    try:
        pickle.dumps(exc)
    except Exception:  # an exception that cannot travel: its text does
        return ("raise", DkimError(f"{type(exc).__name__}: {exc}"))
    return ("raise", exc)


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    while (head := _read(requests, HEADER.size)) is not None:
        body = _read(requests, HEADER.unpack(head)[0])
        if body is None:
            return
        try:
            reply: tuple[str, object] = ("ok", handle(pickle.loads(body)))
        except Exception as exc:
            reply = _raised(exc)
        replies.write(frame(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)))
        replies.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
