"""A DKIM signing process: ``python -m postgate.workers.signing_process``, started by the
sender's signing pool (``workers/signing.py``), never by hand. It renders the mail it signs.

It reads requests from stdin and writes replies to stdout, one at a time, each a 4-byte
big-endian length and a pickle. A request is ``("render", token, spec, keys, recipients,
date)``: the sender's token for a campaign and, on the campaign's first chunk to this
process, its spec (content, secret, public URL, bounce domain), compiled then and kept
under the token (the last ``KEEP`` campaigns); the keys (each parsed once and kept); per
recipient its ``RecipientData`` and per-delivery values. A reply is ``("ok", (signed
messages, seconds per key per message))``; ``("unknown", token)`` for a campaign no
longer kept (the sender sends the spec again); or ``("raise", exception)`` with what
rendering raised (a template over its limits, say), for the sender to raise as if it had
rendered the mail itself. The pipes are private to the sender that started it; it exits
at the end of its input (the sender closed the pipe, or died).
"""

from __future__ import annotations

import pickle
import struct
import sys
from typing import Any, BinaryIO

from postgate.core.dkim_signing import DkimError, sign_chunk
from postgate.core.rendering import CompiledCampaign

HEADER = struct.Struct("!I")
KEEP = 64  # campaigns kept compiled; past that the oldest is dropped
_CAMPAIGNS: dict[int, CompiledCampaign] = {}  # by the sender's token, oldest first


class UnknownCampaign(Exception):
    """A chunk named a campaign this process does not hold (any more): send its spec."""


def handle(request: tuple[Any, ...]) -> tuple[list[bytes], list[list[float]]]:
    if request[0] == "render":
        _, token, spec, keys, recipients, date = request
        if spec is not None:  # the campaign's first chunk here
            _CAMPAIGNS[token] = CompiledCampaign(*spec)
            while len(_CAMPAIGNS) > KEEP:
                del _CAMPAIGNS[next(iter(_CAMPAIGNS))]
        compiled = _CAMPAIGNS.get(token)
        if compiled is None:
            raise UnknownCampaign(token)
        datas = [compiled.render(rcpt, date, extra) for rcpt, extra in recipients]
        return sign_chunk(tuple(keys), datas)
    raise ValueError(f"unknown request {request[0]!r}")


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
        except UnknownCampaign as exc:
            reply = ("unknown", exc.args[0])
        except Exception as exc:
            reply = _raised(exc)
        replies.write(frame(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)))
        replies.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
