"""A local SMSC speaking real SMPP 3.4 over TCP, for the demo, the benchmark and the tests.

It accepts bind_transceiver, acknowledges submit_sm with a message id and sends a
delivery receipt (deliver_sm, ``id:… stat:DELIVRD …``) for each accepted part. It can
be told to throttle (ESME_RTHROTTLED), to refuse binds, to drop the connection on a
submit without answering it, to fail a number's receipts, and to send an inbound
(MO) message. It runs on its own event loop in a thread, like the SMTP sink.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime

from aiosmpplib import (
    NPI,
    TON,
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    PhoneNumber,
    SmppCommand,
    SmppCommandStatus,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)

PARSERS: dict[SmppCommand, type[SmppMessage]] = {
    SmppCommand.BIND_TRANSCEIVER: BindTransceiver,
    SmppCommand.SUBMIT_SM: SubmitSm,
    SmppCommand.ENQUIRE_LINK: EnquireLink,
    SmppCommand.UNBIND: Unbind,
    SmppCommand.DELIVER_SM_RESP: DeliverSmResp,
    SmppCommand.ENQUIRE_LINK_RESP: EnquireLinkResp,
}


@dataclass
class Submitted:
    message_id: str
    destination: str
    source: str
    encoding: str  # gsm0338 | ucs2
    text: str
    udh: tuple[int, int, int] | None  # (reference, part, total) of a concatenated part


@dataclass
class SmscState:
    submitted: list[Submitted] = field(default_factory=list)
    throttle: int = 0  # answer the next N submits with ESME_RTHROTTLED
    drop_on_submit: int = 0  # hang up on the next N submits without answering
    refuse_binds: int = 0
    failing: dict[str, str] = field(default_factory=dict)  # number -> receipt stat
    rejecting: dict[str, SmppCommandStatus] = field(default_factory=dict)  # number -> status
    delay_s: float = 0.0  # answer each submit after this long (to observe the window)
    in_flight: int = 0
    max_in_flight: int = 0
    receipts: bool = True
    binds: int = 0
    throttled: int = 0
    deliver_acks: list[SmppCommandStatus] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, number: str) -> list[Submitted]:
        with self.lock:
            return [s for s in self.submitted if s.destination == number.lstrip("+")]


class SmscSink:
    def __init__(self, port: int = 0) -> None:
        self.state = SmscState()
        self.port = port or _free_port()
        self.loop = asyncio.new_event_loop()
        self.ids = itertools.count(secrets.randbits(40))  # unique across runs, like a real gateway
        self.seq = itertools.count(1)
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    def start(self) -> SmscSink:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self.loop
        ).result(5)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self.server is not None
            self.server.close()
            for writer in list(self.writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def __enter__(self) -> SmscSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def send_mo(self, source: str, text: str, destination: str = "1234") -> None:
        """Deliver an inbound SMS from ``source`` to every bound client."""
        mo = DeliverSm(
            short_message=text,
            source=PhoneNumber(source.lstrip("+"), TON.INTERNATIONAL, NPI.ISDN),
            destination=PhoneNumber(destination),
            esm_class=0,
            registered_delivery=0,
        )
        asyncio.run_coroutine_threadsafe(self._push(mo), self.loop).result(5)

    async def _push(self, pdu: DeliverSm) -> None:
        for writer in list(self.writers):
            pdu.sequence_num = next(self.seq)
            writer.write(pdu.pdu())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        st = self.state
        try:
            while True:
                head = await reader.readexactly(16)
                header = SmppMessage.parse_header(head)
                body = await reader.readexactly(header.pdu_length - 16)
                parser = PARSERS.get(header.smpp_command)
                if parser is None:
                    continue
                pdu = parser.from_pdu(head + body, header, "gsm0338")
                seq = pdu.sequence_num
                if isinstance(pdu, BindTransceiver):
                    with st.lock:
                        refuse = st.refuse_binds > 0
                        st.refuse_binds -= refuse
                        st.binds += not refuse
                    status = (
                        SmppCommandStatus.ESME_RBINDFAIL if refuse else SmppCommandStatus.ESME_ROK
                    )
                    writer.write(BindTransceiverResp(seq, status, system_id="sink").pdu())
                    if refuse:
                        break
                    self.writers.add(writer)
                elif isinstance(pdu, SubmitSm):
                    if st.delay_s:
                        task = asyncio.create_task(self._later(pdu, writer))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
                    elif not self._submit(pdu, writer):
                        break
                elif isinstance(pdu, EnquireLink):
                    writer.write(EnquireLinkResp(sequence_num=seq).pdu())
                elif isinstance(pdu, Unbind):
                    writer.write(UnbindResp(sequence_num=seq).pdu())
                    break
                elif isinstance(pdu, DeliverSmResp):
                    with st.lock:
                        st.deliver_acks.append(pdu.command_status)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _later(self, pdu: SubmitSm, writer: asyncio.StreamWriter) -> None:
        st = self.state
        with st.lock:
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        await asyncio.sleep(st.delay_s)
        with st.lock:
            st.in_flight -= 1
        if not self._submit(pdu, writer):
            writer.close()

    def _submit(self, pdu: SubmitSm, writer: asyncio.StreamWriter) -> bool:
        st = self.state
        with st.lock:
            rejected = st.rejecting.get(pdu.destination.number)
            if rejected is not None:
                writer.write(
                    SubmitSmResp(sequence_num=pdu.sequence_num, command_status=rejected).pdu()
                )
                return True
            if st.drop_on_submit > 0:
                st.drop_on_submit -= 1
                return False
            if st.throttle > 0:
                st.throttle -= 1
                st.throttled += 1
                writer.write(
                    SubmitSmResp(
                        sequence_num=pdu.sequence_num,
                        command_status=SmppCommandStatus.ESME_RTHROTTLED,
                    ).pdu()
                )
                return True
            message_id = f"{next(self.ids):x}"
            segmentation = pdu.get_segmentation_data() if pdu.is_segmented() else None
            udh = (segmentation[0], segmentation[1], segmentation[2]) if segmentation else None
            st.submitted.append(
                Submitted(
                    message_id,
                    pdu.destination.number,
                    pdu.source.number,
                    pdu.encoding or "gsm0338",
                    pdu.short_message,
                    udh,
                )
            )
            stat = st.failing.get(pdu.destination.number, "DELIVRD")
            receipts = st.receipts
        writer.write(SubmitSmResp(sequence_num=pdu.sequence_num, message_id=message_id).pdu())
        if receipts and pdu.registered_delivery:
            now = datetime.now()
            text = DeliverSm.encode_receipt(
                {
                    "id": message_id,
                    "sub": 1,
                    "dlvrd": int(stat == "DELIVRD"),
                    "stat": stat,
                    "submit date": now,
                    "done date": now,
                    "err": 0 if stat == "DELIVRD" else 1,
                    "text": pdu.short_message[:20],
                }
            )
            receipt = DeliverSm(
                sequence_num=next(self.seq),
                short_message=text,
                source=pdu.destination,
                destination=pdu.source,
                esm_class=0b00000100,
                registered_delivery=0,
            )
            writer.write(receipt.pdu())
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
