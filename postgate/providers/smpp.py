"""The domestic gateway over SMPP 3.4: submit_sm per part, receipts and replies.

Each part of a message is one submit_sm with ``registered_delivery=1``; a long
message carries a concatenation header (UDH, reference derived from the delivery id
so a retried part reassembles with the others). Parts the gateway already accepted
are remembered, so a retry after throttling resubmits only the missing ones.
Receipts (deliver_sm with a receipt esm_class, ``id:… stat:DELIVRD …``) and replies
(any other deliver_sm) go to the feedback sink before the deliver_sm is acknowledged.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import ClassVar, cast

from aiosmpplib import (
    NPI,
    TON,
    DeliverSm,
    PhoneNumber,
    SmppCommandStatus,
    SubmitSm,
    SubmitSmResp,
)
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from postgate.core.outcome import Outcome
from postgate.core.sms.encoding import Encoding, to_bytes
from postgate.core.sms.outcomes import DlrStatus, SmsError
from postgate.providers.smpp_session import NotBound, SessionConfig, SmppSession
from postgate.providers.sms import (
    DeliveryReport,
    FeedbackSink,
    GatewayLimits,
    InboundSms,
    SmsGateway,
    SmsMessage,
    SmsResult,
)
from postgate.settings import ProviderSettings, Settings

log = logging.getLogger("postgate.smpp")
S = SmppCommandStatus
ERRORS: dict[SmppCommandStatus, SmsError] = {
    S.ESME_RTHROTTLED: SmsError.THROTTLED,
    S.ESME_RMSGQFUL: SmsError.THROTTLED,
    S.ESME_RINVDSTADR: SmsError.INVALID_NUMBER,
    S.ESME_RINVNUMDESTS: SmsError.INVALID_NUMBER,
    S.ESME_RINVSRCADR: SmsError.REJECTED,
    S.ESME_RSUBMITFAIL: SmsError.REJECTED,
    S.ESME_RSYSERR: SmsError.TEMPORARY,
    S.ESME_RX_T_APPN: SmsError.TEMPORARY,
    S.ESME_RINVPASWD: SmsError.AUTH,
    S.ESME_RINVSYSID: SmsError.AUTH,
    S.ESME_RBINDFAIL: SmsError.AUTH,
}
RECEIPT_STATES: dict[str, DlrStatus] = {
    "DELIVRD": DlrStatus.DELIVERED,
    "UNDELIV": DlrStatus.UNDELIVERED,
    "EXPIRED": DlrStatus.EXPIRED,
    "REJECTD": DlrStatus.REJECTED,
    "DELETED": DlrStatus.REJECTED,
    "ACCEPTD": DlrStatus.ACCEPTED,
    "ENROUTE": DlrStatus.ACCEPTED,
    "UNKNOWN": DlrStatus.UNKNOWN,
}
PARTIAL_LIMIT = 100_000
RECEIPT_FIELD = re.compile(r"(?i)\b(id|stat|err):(\S+)")
RECEIPTED_MESSAGE_ID = 0x001E
DATA_CODING = {Encoding.GSM7: "gsm0338", Encoding.UCS2: "ucs2"}


def udh(reference: int, total: int, seq: int) -> bytes:
    """The 8-bit concatenation header (IEI 0x00) for part ``seq`` of ``total``."""
    return bytes((5, 0x00, 3, reference & 0xFF, total, seq))


def submits(message: SmsMessage) -> list[SubmitSm]:
    """One submit_sm per part, its octets encoded by :mod:`postgate.core.sms.encoding`."""
    sms, pdus = message.sms, []
    numeric = message.sender.isascii() and message.sender.isdigit()
    sender = (
        PhoneNumber(message.sender, TON.INTERNATIONAL, NPI.ISDN)
        if numeric
        else PhoneNumber(message.sender, TON.ALPHANUMERIC, NPI.UNKNOWN)
    )
    dest = PhoneNumber(message.to.lstrip("+"), TON.INTERNATIONAL, NPI.ISDN)
    for i, part in enumerate(sms.parts):
        octets = to_bytes(part, sms.encoding)
        multi = sms.segments > 1
        if multi:
            octets = udh(message.delivery_id, sms.segments, i + 1) + octets
        pdu = SubmitSm(
            short_message=part or " ",
            source=sender,
            destination=dest,
            esm_class=0x40 if multi else 0,
            registered_delivery=1,
            encoding=DATA_CODING[sms.encoding],
            auto_message_payload=False,
            log_id=f"{message.delivery_id}:{i + 1}",
        )
        pdu.set_encoded_message(octets)
        pdus.append(pdu)
    return pdus


def report(pdu: DeliverSm) -> DeliveryReport | None:
    """A delivery receipt as a normalised report; None when the PDU is not a receipt.
    The id comes from the receipt text or, failing that, receipted_message_id."""
    if not pdu.is_receipt():
        return None
    text = pdu.short_message or pdu.message_payload
    found = dict(RECEIPT_FIELD.findall(text))
    message_id = found.get("id") or next(
        (str(p.value) for p in pdu.optional_params or [] if p.tag == RECEIPTED_MESSAGE_ID), ""
    )
    stat = found.get("stat", "").upper()
    return DeliveryReport(
        "smpp",
        message_id,
        RECEIPT_STATES.get(stat, DlrStatus.UNKNOWN),
        f"{stat} err:{found.get('err', '')}".strip(),
        None,
        text[:500],
    )


class SmppSettings(ProviderSettings):
    """``SMPP_HOST``, ``SMPP_PORT``, ``SMPP_SYSTEM_ID``, ``SMPP_PASSWORD``,
    ``SMPP_SYSTEM_TYPE``, ``SMPP_WINDOW``, ``SMPP_RATE_PER_S``, ``SMPP_TIMEOUT_S``,
    ``SMPP_ENQUIRE_LINK_S``."""

    model_config = SettingsConfigDict(env_prefix="SMPP_", env_file=None, extra="ignore")
    name: ClassVar[str] = "smpp"
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    window: int = Field(default=10, ge=1)  # outstanding submit_sm per bind
    rate_per_s: float = 100.0
    timeout_s: float = 10.0
    enquire_link_s: float = 30.0


class SmppGateway(SmsGateway):
    name = "smpp"

    def __init__(self, settings: Settings, feedback: FeedbackSink) -> None:
        own = settings.provider(SmppSettings)
        super().__init__(
            GatewayLimits(
                own.rate_per_s, own.timeout_s, settings.sms_retries, settings.sms_backoff_s
            ),
            feedback,
        )
        self.session = SmppSession(
            SessionConfig(
                own.host,
                own.port,
                own.system_id,
                own.password,
                own.system_type,
                own.window,
                own.timeout_s,
                own.enquire_link_s,
            ),
            self._on_deliver,
        )
        # delivery id -> part -> message id, for messages with parts still to send
        self.accepted: OrderedDict[int, dict[int, str]] = OrderedDict()

    async def open(self) -> None:
        await self.session.start()

    async def shut(self) -> None:
        await self.session.close()

    def health(self) -> dict[str, object]:
        return {
            **super().health(),
            "bound": self.session.bound.is_set(),
            "binds": self.session.binds,
        }

    async def submit(self, message: SmsMessage) -> SmsResult:
        done = self.accepted.setdefault(message.delivery_id, {})
        while len(self.accepted) > PARTIAL_LIMIT:  # bounded: forget the oldest
            self.accepted.popitem(last=False)
        pdus = submits(message)
        for i, pdu in enumerate(pdus):
            if i in done:
                continue
            try:
                resp = cast(SubmitSmResp, await self.session.request(pdu))
            except NotBound as exc:
                return SmsResult.failure(SmsError.TEMPORARY, detail=str(exc))
            if resp.command_status is not S.ESME_ROK:
                kind = ERRORS.get(resp.command_status, SmsError.UNKNOWN)
                if kind in (SmsError.INVALID_NUMBER, SmsError.REJECTED):
                    self.accepted.pop(message.delivery_id, None)
                return SmsResult.failure(
                    kind, resp.command_status.name, f"part {i + 1}/{len(pdus)}"
                )
            done[i] = resp.message_id
        ids = tuple(done[i] for i in range(len(pdus)))
        del self.accepted[message.delivery_id]
        return SmsResult(Outcome.SENT, ids, None, "ESME_ROK")

    async def _on_deliver(self, pdu: DeliverSm) -> SmppCommandStatus:
        receipt = report(pdu)
        if receipt is not None:
            await self.feedback.reports([receipt])
        else:
            text = pdu.short_message or pdu.message_payload
            await self.feedback.inbound(
                InboundSms(
                    "smpp",
                    "+" + pdu.source.number.lstrip("+"),
                    pdu.destination.number,
                    text,
                    raw=f"{pdu.source.number}>{pdu.destination.number}: {text}"[:2000],
                )
            )
        return S.ESME_ROK
