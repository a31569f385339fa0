"""One SMPP 3.4 transceiver session: bind, window, enquire_link, reconnect.

PDUs are encoded and parsed by aiosmpplib's protocol classes; this module owns the
socket. ``request`` sends a PDU and waits for its response under a window of
outstanding requests (the gateway's limit on unacknowledged submit_sm). A lost
connection fails every outstanding request with :class:`ConnectionError` and the
session binds again with backoff; requests wait for the new bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import count

from aiosmpplib import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    SmppCommand,
    SmppCommandStatus,
    SmppMessage,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)

log = logging.getLogger("postgate.smpp")
DEFAULT_ENCODING = "gsm0338"
MAX_PDU_BYTES = 65_536  # far above any real PDU; a larger length is garbage, not a buffer size
PARSERS: dict[SmppCommand, type[SmppMessage]] = {
    SmppCommand.BIND_TRANSCEIVER_RESP: BindTransceiverResp,
    SmppCommand.SUBMIT_SM_RESP: SubmitSmResp,
    SmppCommand.DELIVER_SM: DeliverSm,
    SmppCommand.ENQUIRE_LINK: EnquireLink,
    SmppCommand.ENQUIRE_LINK_RESP: EnquireLinkResp,
    SmppCommand.UNBIND: Unbind,
    SmppCommand.UNBIND_RESP: UnbindResp,
    SmppCommand.GENERIC_NACK: GenericNack,
}


class NotBound(ConnectionError):
    """No session to send on: the request never left, so a retry cannot duplicate it."""


@dataclass
class SessionConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    window: int = 10
    timeout_s: float = 10.0
    enquire_link_s: float = 30.0
    reconnect_s: float = 0.5


class MalformedPdu(ConnectionError):
    """The gateway sent bytes that are not SMPP: the session ends and binds again."""


async def read_pdu(reader: asyncio.StreamReader) -> SmppMessage | None:
    """Read one PDU; None for a command we do not parse (its body is skipped). A PDU that
    cannot be framed or parsed raises :class:`MalformedPdu`, which the session treats as
    a lost connection (any other error would end the session task for good)."""
    head = await reader.readexactly(16)
    length = int.from_bytes(head[:4], "big")
    if not 16 <= length <= MAX_PDU_BYTES:
        raise MalformedPdu(f"PDU length {length}")
    body = await reader.readexactly(length - 16)
    try:
        header = SmppMessage.parse_header(head)
    except ValueError:  # a command id this library does not know: skip it
        return None
    parser = PARSERS.get(header.smpp_command)
    if parser is None:
        return None
    try:
        return parser.from_pdu(head + body, header, DEFAULT_ENCODING)
    except Exception as exc:
        raise MalformedPdu(f"malformed {header.smpp_command.name}: {exc!r}") from exc


class SmppSession:
    def __init__(
        self, config: SessionConfig, on_deliver: Callable[[DeliverSm], Awaitable[SmppCommandStatus]]
    ) -> None:
        self.config = config
        self.on_deliver = on_deliver
        self.window = asyncio.Semaphore(config.window)
        self.bound = asyncio.Event()
        self.binds = 0  # successful binds so far (a reconnect makes it > 1)
        self._seq = count(1)
        self._pending: dict[int, asyncio.Future[SmppMessage]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        if self._writer is not None and self.bound.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.request(Unbind(), windowed=False), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def request(self, pdu: SmppMessage, windowed: bool = True) -> SmppMessage:
        """Send ``pdu`` once bound and return the gateway's response PDU. Raises
        :class:`NotBound` (nothing was sent) when no bind comes within the timeout."""
        try:
            await asyncio.wait_for(self.bound.wait(), self.config.timeout_s)
        except TimeoutError:
            raise NotBound(f"not bound to {self.config.host}:{self.config.port}") from None
        if windowed:
            async with self.window:
                return await self._exchange(pdu)
        return await self._exchange(pdu)

    async def _exchange(self, pdu: SmppMessage) -> SmppMessage:
        writer = self._writer
        if writer is None or not self.bound.is_set():
            raise NotBound("not bound")
        pdu.sequence_num = next(self._seq) & 0x7FFFFFFF
        future: asyncio.Future[SmppMessage] = asyncio.get_running_loop().create_future()
        self._pending[pdu.sequence_num] = future
        try:
            writer.write(pdu.pdu())
            return await asyncio.wait_for(future, self.config.timeout_s)
        finally:
            self._pending.pop(pdu.sequence_num, None)

    async def _run(self) -> None:
        cfg = self.config
        failures = 0
        while not self._closing:
            delay = min(30.0, cfg.reconnect_s * 2 ** min(failures, 8))  # backoff while down
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(cfg.host, cfg.port), cfg.timeout_s
                )
            except (OSError, TimeoutError) as exc:
                log.warning("smpp %s:%s connect failed: %s", cfg.host, cfg.port, exc)
                failures += 1
                await asyncio.sleep(delay)
                continue
            self._writer = writer
            keepalive: asyncio.Task[None] | None = None
            failures += 1
            try:
                await self._bind(reader, writer)
                failures = 0
                keepalive = asyncio.create_task(self._keepalive())
                await self._read(reader, writer)
            except (OSError, asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
                (log.info if self._closing else log.warning)("smpp session ended: %r", exc)
            finally:
                self.bound.clear()
                if keepalive is not None:
                    keepalive.cancel()
                self._fail_pending(ConnectionError("smpp connection lost"))
                self._writer = None
                writer.close()
            if not self._closing:
                await asyncio.sleep(min(30.0, cfg.reconnect_s * 2 ** min(failures - 1, 8)))

    async def _bind(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cfg = self.config
        bind = BindTransceiver(
            sequence_num=next(self._seq),
            system_id=cfg.system_id,
            password=cfg.password,
            system_type=cfg.system_type,
        )
        writer.write(bind.pdu())
        resp = await asyncio.wait_for(read_pdu(reader), cfg.timeout_s)
        if (
            not isinstance(resp, BindTransceiverResp)
            or resp.command_status is not SmppCommandStatus.ESME_ROK
        ):
            status = getattr(resp, "command_status", None)
            raise ConnectionError(f"bind refused: {status!r}")
        self.binds += 1
        self.bound.set()
        log.info("smpp bound to %s:%s as %s", cfg.host, cfg.port, cfg.system_id)

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            pdu = await read_pdu(reader)
            if pdu is None:
                continue
            if isinstance(pdu, DeliverSm):
                task = asyncio.create_task(self._deliver(pdu, writer))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)
            elif isinstance(pdu, EnquireLink):
                writer.write(EnquireLinkResp(sequence_num=pdu.sequence_num).pdu())
            elif isinstance(pdu, Unbind):
                writer.write(UnbindResp(sequence_num=pdu.sequence_num).pdu())
                raise ConnectionError("gateway unbound")
            else:
                future = self._pending.get(pdu.sequence_num)
                if future is not None and not future.done():
                    future.set_result(pdu)

    async def _deliver(self, pdu: DeliverSm, writer: asyncio.StreamWriter) -> None:
        try:
            status = await self.on_deliver(pdu)
        except Exception:  # not recorded: ask the gateway to deliver it again
            log.exception("smpp deliver_sm not recorded; the gateway will retry")
            status = SmppCommandStatus.ESME_RX_T_APPN
        if not writer.is_closing():
            writer.write(DeliverSmResp(sequence_num=pdu.sequence_num, command_status=status).pdu())

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.config.enquire_link_s)
            try:
                await self.request(EnquireLink(), windowed=False)
            except (TimeoutError, ConnectionError):
                log.warning("smpp enquire_link unanswered; reconnecting")
                if self._writer is not None:
                    self._writer.close()
                return

    def _fail_pending(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()
