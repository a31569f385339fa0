"""postgate's pipelining SMTP client over real sockets: aiosmtpd (with and without
PIPELINING), a scripted server that answers and hangs up exactly where a test needs it,
and Postfix's smtp-sink when it is installed."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from postgate.core.outcome import Outcome
from postgate.providers.smtp_pipeline import PipelinedSmtp, payload
from postgate.sinks.smtp import SinkHandler, SmtpSink
from tests.local_services import _wait_port as wait_port

MESSAGE = (
    b"From: a@acme.example\r\nTo: b@x.example\r\nSubject: hi\r\n\r\n"
    b".a line that starts with a dot\r\nand a bare\nLF\r\n..two dots\r\n"
)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def session(port: int) -> PipelinedSmtp:
    client = PipelinedSmtp("127.0.0.1", port, "pg.test", timeout=5)
    await client.connect()
    return client


@pytest.mark.parametrize("pipelining", [True, False])
def test_delivers_to_aiosmtpd_with_and_without_pipelining(pipelining: bool) -> None:
    handler = SinkHandler(pipelining=pipelining)
    handler.script("refused@x.example", "550 5.1.1 user unknown")
    handler.script("later@x.example", "451 4.3.0 try later")
    with SmtpSink(handler=handler) as sink:

        async def go() -> list[object]:
            client = await session(sink.port)
            assert client.pipelining is pipelining
            results = [
                await client.transact("b+1@bounce.test", rcpt, MESSAGE)
                for rcpt in ("b@x.example", "refused@x.example", "later@x.example", "c@x.example")
            ]
            await client.quit()
            return results

        sent, refused, later, after = run(go())
    assert [r.outcome for r in (sent, refused, later, after)] == [  # type: ignore[attr-defined]
        Outcome.SENT,
        Outcome.FAILED,
        Outcome.DEFERRED,
        Outcome.SENT,
    ]
    assert (refused.code, later.code) == (550, 451)  # type: ignore[attr-defined]
    assert "user unknown" in refused.detail  # type: ignore[attr-defined]
    got = {r.recipients[0]: r.data for r in handler.received}
    assert set(got) == {"b@x.example", "c@x.example"}  # the session went on after refusals
    # dots and line endings arrive exactly as written (aiosmtpd undoes the dot-stuffing)
    assert got["b@x.example"] == MESSAGE.replace(b"bare\nLF", b"bare\r\nLF")


def test_payload_is_dot_stuffed_and_terminated() -> None:
    assert payload(b".x\r\ny") == b"..x\r\ny\r\n.\r\n"
    assert payload(b"a\nb\r\n") == b"a\r\nb\r\n.\r\n"


class Scripted:
    """A raw SMTP server on 127.0.0.1: EHLO offers PIPELINING; each transaction's replies
    come from ``script`` (None: hang up there); it records every chunk read."""

    def __init__(self, script: list[list[str | None]]) -> None:
        self.script = script
        self.chunks: list[bytes] = []
        self.payloads = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        try:
            line = await reader.readline()  # EHLO
            writer.write(b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            while self.script:
                replies = self.script.pop(0)
                got = b""
                while got.count(b"\r\n") < 3:  # MAIL, RCPT, DATA arrive together
                    chunk = await reader.read(4096)
                    if not chunk:
                        return
                    self.chunks.append(chunk)
                    got += chunk
                for reply in replies[:3]:
                    if reply is None:
                        writer.close()
                        return
                    writer.write(reply.encode() + b"\r\n")
                if replies[2] and replies[2].startswith("354"):
                    body = await reader.readuntil(b"\r\n.\r\n")
                    self.payloads += 1
                    self.chunks.append(body)
                    if replies[3] is None:
                        writer.close()
                        return
                    writer.write(replies[3].encode() + b"\r\n")
                else:
                    line = await reader.readline()  # RSET
                    writer.write(b"250 reset\r\n")
                del line
        except (ConnectionError, asyncio.IncompleteReadError):
            return


def with_server(script: list[list[str | None]], body):  # type: ignore[no-untyped-def]
    server = Scripted(script)

    async def go():  # type: ignore[no-untyped-def]
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return await body(port)
        finally:
            srv.close()

    return server, run(go())


OK = ["250 sender ok", "250 rcpt ok", "354 go ahead", "250 2.0.0 queued as X"]


def test_mail_rcpt_and_data_go_out_in_one_write() -> None:
    async def body(port: int) -> object:
        client = await session(port)
        return await client.transact("b+1@bounce.test", "b@x.example", MESSAGE)

    server, result = with_server([OK], body)
    assert result.outcome is Outcome.SENT and result.code == 250  # type: ignore[attr-defined]
    assert server.chunks[0].startswith(
        b"MAIL FROM:<b+1@bounce.test>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n"
    )


@pytest.mark.parametrize(
    ("replies", "outcome", "code", "unknown"),
    [
        (
            ["250 ok", "550 5.1.1 no such user", "554 no valid recipients"],
            Outcome.FAILED,
            550,
            False,
        ),
        (
            ["250 ok", "452 4.2.2 mailbox full", "554 no valid recipients"],
            Outcome.DEFERRED,
            452,
            False,
        ),
        (["553 sender rejected", "503 need MAIL", "503 need MAIL"], Outcome.FAILED, 553, False),
        (["250 ok", "250 ok", "451 4.3.0 no DATA now"], Outcome.DEFERRED, 451, False),
        (["250 ok", "250 ok", "354 go", "554 5.7.1 spam"], Outcome.FAILED, 554, False),
        (["250 ok", "250 ok", "354 go", "421 4.4.2 closing"], Outcome.DEFERRED, 421, False),
        (["250 ok", None, None], Outcome.DEFERRED, None, False),  # lost mid-pipeline
        (["250 ok", "250 ok", "354 go", None], Outcome.DEFERRED, None, True),  # lost after data
    ],
)
def test_each_reply_maps_to_its_outcome(
    replies: list[str | None], outcome: Outcome, code: int | None, unknown: bool
) -> None:
    async def body(port: int) -> object:
        client = await session(port)
        return await client.transact("b+1@bounce.test", "b@x.example", MESSAGE)

    server, result = with_server([replies], body)
    assert (result.outcome, result.code, result.unknown) == (  # type: ignore[attr-defined]
        outcome,
        code,
        unknown,
    )
    assert server.payloads == (1 if len(replies) > 3 else 0)


def test_a_connection_dropped_mid_pipeline_is_retried_and_sent_once() -> None:
    """The pool's worker reconnects and sends again; nothing went out the first time."""
    handler = SinkHandler()
    with SmtpSink(handler=handler) as sink:

        async def go() -> list[object]:
            client = await session(sink.port)
            # the server goes away between transactions (a restart, an idle timeout)
            client.close()
            await asyncio.sleep(0.05)
            lost = await client.transact("b+1@bounce.test", "b@x.example", MESSAGE)
            again = await session(sink.port)
            sent = await again.transact("b+1@bounce.test", "b@x.example", MESSAGE)
            await again.quit()
            return [lost, sent]

        lost, sent = run(go())
    assert lost.outcome is Outcome.DEFERRED and not lost.unknown  # type: ignore[attr-defined]
    assert sent.outcome is Outcome.SENT  # type: ignore[attr-defined]
    assert len(handler.received) == 1


@pytest.mark.parametrize("offered", [True, False])
def test_non_ascii_addresses_need_smtputf8(offered: bool) -> None:
    handler = SinkHandler()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), decode_data=False, enable_SMTPUTF8=offered
    )
    controller.start()
    try:

        async def go() -> object:
            client = await session(int(controller.port))
            return await client.transact("b+1@bounce.test", "árvíz@példa.hu", MESSAGE)

        result = run(go())
    finally:
        controller.stop()
    if offered:
        assert result.outcome is Outcome.SENT  # type: ignore[attr-defined]
        assert handler.received[0].recipients == ["árvíz@példa.hu"]
    else:
        assert result.outcome is Outcome.FAILED  # type: ignore[attr-defined]
        assert "SMTPUTF8" in result.detail  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def postfix_sink() -> Iterator[int]:
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not shutil.which(binary):
        pytest.skip("Postfix's smtp-sink is not installed (apt-get install postfix)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-u", "root", f"127.0.0.1:{port}", "100"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, up=True)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def test_pipelines_into_postfix_smtp_sink(postfix_sink: int) -> None:
    async def go() -> list[object]:
        client = await session(postfix_sink)
        assert client.pipelining
        results = [
            await client.transact("b+1@bounce.test", f"r{i}@x.example", MESSAGE) for i in range(200)
        ]
        await client.quit()
        return results

    results = run(go())
    assert all(r.outcome is Outcome.SENT for r in results)  # type: ignore[attr-defined]
