"""A DKIM signing process: ``python -m postgate.workers.signing_process``, started by the
sender's signing pool (``workers/signing.py``), never by hand.

It reads requests from stdin and writes replies to stdout, one at a time, each a 4-byte
big-endian length and a pickle: a request is ``(keys, messages)``, a reply ``("ok",
(signed messages, seconds per key per message))`` or ``("error", text)``. The pipes are
private to the sender that started it. Each key is parsed on its first request and kept.
It exits at the end of its input: when the sender closes the pipe, or dies.
"""

from __future__ import annotations

import pickle
import struct
import sys
from typing import BinaryIO

from postgate.core.dkim_signing import DkimError, sign_chunk

HEADER = struct.Struct("!I")


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
        keys, datas = pickle.loads(body)
        try:
            reply: tuple[str, object] = ("ok", sign_chunk(tuple(keys), list(datas)))
        except DkimError as exc:
            reply = ("error", str(exc))
        replies.write(frame(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)))
        replies.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
