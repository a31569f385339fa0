"""Fuzzing the SMS delivery-report parsers: SMPP deliver_sm PDUs as they come off the socket
(mutated receipts) and their receipt text, SMSAPI callback fields, and STOP replies.

A malformed PDU may end the SMPP session (the session then binds again), so the reader may
raise only what the session loop treats as a lost connection; anything else would kill the
session task for good. Parsed receipts, callbacks and replies never raise, and are quick."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from aiosmpplib import DeliverSm, PhoneNumber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postgate.core.sms.opt_out import RESUME_KEYWORDS, keyword
from postgate.providers.smpp import report
from postgate.providers.smpp_session import read_pdu
from postgate.providers.sms import DeliveryReport
from postgate.providers.smsapi import parse_callback

SESSION_ENDS = (OSError, asyncio.IncompleteReadError, ConnectionError, TimeoutError)
QUICK_S = 1.0
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
hostile = st.text(max_size=300) | st.sampled_from(
    [
        "",
        "²",
        "１２",
        "9" * 400,
        "-1",
        "id: stat:",
        "id:" + "x" * 2000,
        "stat:DELIVRD " * 100,
        "\x00",
        "\u2028",
        ",,,,",
        "1,2,3",
    ]
)


def receipt_pdu(text: str, esm_class: int = 0b00000100) -> bytes:
    now = datetime(2026, 11, 25, 12, 0)
    if not text:
        text = DeliverSm.encode_receipt(
            {
                "id": "abc123",
                "sub": 1,
                "dlvrd": 1,
                "stat": "DELIVRD",
                "submit date": now,
                "done date": now,
                "err": 0,
                "text": "Szia",
            }
        )
    pdu = DeliverSm(
        sequence_num=7,
        short_message=text,
        source=PhoneNumber("36201234567"),
        destination=PhoneNumber("Acme"),
        esm_class=esm_class,
        registered_delivery=0,
    )
    return bytes(pdu.pdu())


async def read_all(data: bytes) -> list[object]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    pdus = []
    while True:
        try:
            pdus.append(await asyncio.wait_for(read_pdu(reader), 1))
        except asyncio.IncompleteReadError:
            return pdus


@st.composite
def mutated_pdu(draw: st.DrawFn) -> bytes:
    data = bytearray(receipt_pdu(draw(st.sampled_from(["", "id:1 stat:UNDELIV err:001"]))))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        op = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 20))]
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=40))
        else:  # the length field, which decides how much the reader waits for
            data[0:4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    return bytes(data)


@FUZZ
@given(mutated_pdu())
def test_mutated_deliver_sm_pdus_end_the_session_at_worst(data: bytes) -> None:
    started = time.perf_counter()
    try:
        pdus = asyncio.run(read_all(data))
    except SESSION_ENDS:
        return
    for pdu in pdus:
        if isinstance(pdu, DeliverSm):
            parsed = report(pdu)
            assert parsed is None or isinstance(parsed, DeliveryReport)
    assert time.perf_counter() - started < QUICK_S


@FUZZ
@given(hostile)
def test_receipt_text_never_raises(text: str) -> None:
    pdus = asyncio.run(read_all(receipt_pdu(text or "x")))
    assert len(pdus) == 1 and isinstance(pdus[0], DeliverSm)
    started = time.perf_counter()
    parsed = report(pdus[0])
    assert parsed is not None and parsed.provider == "smpp"
    assert time.perf_counter() - started < QUICK_S


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["MsgId", "status", "donedate", "idx", "to", "username"])
        | st.text(max_size=10),
        hostile,
        max_size=6,
    )
)
def test_smsapi_callback_fields_never_raise(params: dict[str, str]) -> None:
    started = time.perf_counter()
    reports = parse_callback(params)
    assert all(r.provider == "smsapi" and r.message_id for r in reports)
    assert time.perf_counter() - started < QUICK_S


@FUZZ
@given(hostile)
def test_stop_replies_never_raise(text: str) -> None:
    for found in (keyword(text), keyword(text, RESUME_KEYWORDS)):
        assert found is None or found.isupper()
