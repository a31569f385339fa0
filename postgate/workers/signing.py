"""DKIM signing off the sender's event loop, on every core: signing processes
(``DKIM_POOL=process``, the default) or threads (``thread``), ``DKIM_WORKERS`` of them (0:
one per core).

OpenSSL releases the GIL while it signs, so threads do sign in parallel; but the
canonicalisation around each signature (~40 µs of Python) runs under the same GIL as the
event loop, and every signature ends in a hand-back of the GIL that the loop pays for.
A signing process (``signing_process.py``) takes all of it away, and the rendering too:
the sender writes a chunk of recipients, the campaign and its keys down a pipe, from the
event loop itself (no thread), and reads the rendered, signed chunk back. A campaign's
spec (its templates) travels to a process with its first chunk there and is compiled
once; later chunks name it by a token. Each key is parsed once. A process imports only
the renderer and the signer (~45 MB).

A signing process that dies (killed, out of memory) is replaced and the chunk it held is
signed again by another: nothing of it was sent yet (a chunk is sent once signed), so
nothing goes out twice. A chunk that fails twice in a row fails its batch, whose rows the
sweeper re-queues once their lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import sys
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from postgate.core.dkim_signing import Signer, sign_chunk
from postgate.core.rendering import CompiledCampaign, RecipientData
from postgate.observability.metrics import DKIM_POOL_RESTARTS, DKIM_SIGN_SECONDS
from postgate.workers.signing_process import HEADER, frame

log = logging.getLogger("postgate.sender")
PoolKind = Literal["process", "thread"]
_LOST = (ConnectionError, asyncio.IncompleteReadError, EOFError)


class _Process:
    """One signing process and its two pipes; one request at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.healthy = True
        self.known: set[int] = set()  # the campaigns (tokens) whose spec it was sent

    @classmethod
    async def start(cls) -> _Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "postgate.workers.signing_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        return cls(proc)

    async def call(self, request: bytes) -> bytes:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.healthy = False  # until its reply is read whole: a cut-off call leaves it unusable
        self.proc.stdin.write(frame(request))
        await self.proc.stdin.drain()
        size = HEADER.unpack(await self.proc.stdout.readexactly(HEADER.size))[0]
        reply = await self.proc.stdout.readexactly(size)
        self.healthy = True
        return reply

    async def stop(self) -> None:
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # it exits at the end of its input
            try:
                await asyncio.wait_for(self.proc.wait(), 2)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


class SigningPool:
    """Signs chunks of messages with a campaign's keys; started on the first chunk."""

    def __init__(self, kind: PoolKind, workers: int = 0) -> None:
        self.kind = kind
        self.workers = workers or os.cpu_count() or 1
        self._threads: ThreadPoolExecutor | None = None
        self._idle: asyncio.Queue[_Process] | None = None
        self._all: list[_Process] = []
        self._starting = asyncio.Lock()
        # a token per compiled campaign: its spec travels once to each process, not per chunk
        self._tokens: weakref.WeakKeyDictionary[CompiledCampaign, int] = weakref.WeakKeyDictionary()
        self._next_token = itertools.count(1)

    async def render_and_sign(
        self,
        compiled: CompiledCampaign,
        signers: tuple[Signer, ...],
        recipients: list[tuple[RecipientData, dict[str, str] | None]],
        date: str,
    ) -> list[bytes]:
        """Each recipient's mail, rendered, with every key's DKIM-Signature prepended, in
        order. Signing processes render it too (what the event loop is spared most); with
        threads the loop renders and the threads sign."""
        if self.kind == "thread":
            datas = [compiled.render(rcpt, date, extra) for rcpt, extra in recipients]
            return await self._in_threads(signers, datas)
        keys = tuple(s.key for s in signers)  # the keys travel, not their parsed OpenSSL keys
        token = self._tokens.get(compiled)
        if token is None:
            token = self._tokens[compiled] = next(self._next_token)

        def request(proc: _Process) -> tuple[Any, ...]:
            spec = None if token in proc.known else compiled.spec()
            proc.known.add(token)
            return ("render", token, spec, keys, recipients, date)

        for _ in range(2):
            proc, (status, value) = await self._call(request)
            if status != "unknown":
                return self._signed(status, value, signers)
            proc.known.discard(token)  # it dropped the campaign: the spec goes again
        raise AssertionError(f"a signing process dropped campaign {token} twice")

    async def _in_threads(self, signers: tuple[Signer, ...], datas: list[bytes]) -> list[bytes]:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="dkim")
        loop = asyncio.get_running_loop()
        signed, seconds = await loop.run_in_executor(self._threads, sign_chunk, signers, datas)
        self._observe(signers, seconds)
        return signed

    def _signed(self, status: str, value: Any, signers: tuple[Signer, ...]) -> list[bytes]:
        if status != "ok":
            raise value  # what rendering raised there, raised here
        signed, seconds = value
        self._observe(signers, seconds)
        return list(signed)

    @staticmethod
    def _observe(signers: tuple[Signer, ...], seconds: list[list[float]]) -> None:
        for signer, took in zip(signers, seconds, strict=True):
            observe = DKIM_SIGN_SECONDS.labels(signer.algorithm).observe
            for value in took:
                observe(value)

    async def _call(
        self, request: Callable[[_Process], tuple[Any, ...]]
    ) -> tuple[_Process, tuple[str, Any]]:
        """``request(process)`` sent to an idle process, and its unpickled reply."""
        idle = await self._started()
        for attempt in (1, 2):
            proc = await idle.get()
            answered = proc
            try:
                data = pickle.dumps(request(proc), protocol=pickle.HIGHEST_PROTOCOL)
                reply = await proc.call(data)
            except _LOST as exc:
                log.warning(
                    "DKIM signing process %s died (%r): starting another", proc.proc.pid, exc
                )
                DKIM_POOL_RESTARTS.inc()
                proc = await self._replace(proc)
                if attempt == 2:
                    raise
                continue
            finally:
                if not proc.healthy:  # cancelled mid-call: its pipe is out of step
                    proc = await self._replace(proc)
                idle.put_nowait(proc)
            return answered, pickle.loads(reply)
        raise AssertionError("unreachable")

    async def _started(self) -> asyncio.Queue[_Process]:
        async with self._starting:
            if self._idle is None:
                self._all = list(
                    await asyncio.gather(*(_Process.start() for _ in range(self.workers)))
                )
                self._idle = asyncio.Queue()
                for proc in self._all:
                    self._idle.put_nowait(proc)
        return self._idle

    async def _replace(self, proc: _Process) -> _Process:
        with contextlib.suppress(ProcessLookupError):
            proc.proc.kill()
        await proc.proc.wait()
        fresh = await _Process.start()
        self._all = [fresh if p is proc else p for p in self._all]
        return fresh

    async def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        await asyncio.gather(*(p.stop() for p in self._all), return_exceptions=True)
        self._all, self._idle = [], None
