"""Gateway translation without I/O: SMSAPI bodies (verbatim), callbacks, SMPP receipts,
parts, the decisions table and the provider registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiosmpplib import NPI, TON, DeliverSm, OptionalParam, PhoneNumber

from postgate.core.outcome import Outcome
from postgate.core.sms.encoding import encode
from postgate.core.sms.outcomes import Action, DlrStatus, SmsError, decide, overall
from postgate.providers import registry
from postgate.providers.smpp import SmppGateway, report, submits, udh
from postgate.providers.sms import SmsMessage
from postgate.providers.smsapi import SmsApiGateway, classify, parse_callback


def body(fixtures_dir: Path, name: str) -> str:
    return (fixtures_dir / "smsapi" / name).read_text()


def test_smsapi_success_gives_the_message_id(fixtures_dir: Path) -> None:
    result = classify(200, body(fixtures_dir, "send_ok.json"))
    assert (result.outcome, result.message_ids) == (Outcome.SENT, ("5F0A6C0B3463384A1A7B0E01",))


@pytest.mark.parametrize(
    ("name", "http", "error", "outcome"),
    [
        ("send_to_invalid_number.json", 200, SmsError.INVALID_NUMBER, Outcome.FAILED),
        ("no_credit.json", 200, SmsError.NO_CREDIT, Outcome.DEFERRED),
        ("auth.json", 401, SmsError.AUTH, Outcome.DEFERRED),
        ("throttled.json", 200, SmsError.THROTTLED, Outcome.DEFERRED),
    ],
)
def test_smsapi_errors_with_any_http_status_are_mapped(
    fixtures_dir: Path, name: str, http: int, error: SmsError, outcome: Outcome
) -> None:
    result = classify(http, body(fixtures_dir, name))
    assert (result.error, result.outcome) == (error, outcome)


def test_smsapi_duplicate_idx_means_already_sent(fixtures_dir: Path) -> None:
    result = classify(200, body(fixtures_dir, "duplicate_idx.json"))
    assert result.outcome is Outcome.SENT and result.error is None


@pytest.mark.parametrize(
    ("http", "text", "error"),
    [
        (500, "<html>oops</html>", SmsError.TEMPORARY),
        (502, "", SmsError.TEMPORARY),
        (200, "not json", SmsError.UNKNOWN),
        (200, '{"error": 777}', SmsError.UNKNOWN),
        (200, '{"count": 0, "list": []}', SmsError.UNKNOWN),
    ],
)
def test_smsapi_odd_answers_never_count_as_sent(http: int, text: str, error: SmsError) -> None:
    result = classify(http, text)
    assert result.error is error and result.outcome is not Outcome.SENT


def test_smsapi_callback_batches_are_split_and_normalised() -> None:
    reports = parse_callback(
        {
            "MsgId": "A1,B2,C3",
            "status": "404,405,409",
            "idx": "7,8,9",
            "donedate": "1700000000,1700000001,",
        }
    )
    assert [(r.message_id, r.status) for r in reports] == [
        ("A1", DlrStatus.DELIVERED),
        ("B2", DlrStatus.UNDELIVERED),
        ("C3", DlrStatus.ACCEPTED),
    ]
    assert reports[0].done_at is not None and reports[2].done_at is None
    assert parse_callback({"MsgId": "X", "status": "499"})[0].status is DlrStatus.UNKNOWN


def test_decisions() -> None:
    assert decide(SmsError.NO_CREDIT).action is Action.PAUSE_TENANT
    assert decide(SmsError.AUTH).action is Action.HALT_PROVIDER
    assert decide(SmsError.THROTTLED).retry_now and not decide(SmsError.REJECTED).retry_now
    assert decide(SmsError.UNKNOWN).outcome is Outcome.DEFERRED  # never dropped


@pytest.mark.parametrize(
    ("statuses", "parts", "expected"),
    [
        (["delivered"], 1, DlrStatus.DELIVERED),
        (["delivered", None], 2, None),
        (["delivered", "accepted"], 2, None),
        (["delivered", "delivered"], 2, DlrStatus.DELIVERED),
        (["delivered", "undelivered"], 2, DlrStatus.UNDELIVERED),
        ([None], 1, None),
        (["expired"], 1, DlrStatus.EXPIRED),
    ],
)
def test_a_delivery_is_settled_by_all_its_parts(
    statuses: list[str | None], parts: int, expected: DlrStatus | None
) -> None:
    assert overall(statuses, parts) == expected


def _deliver(text: str, esm_class: int, params: list[OptionalParam] | None = None) -> DeliverSm:
    return DeliverSm(
        short_message=text,
        esm_class=esm_class,
        optional_params=params,
        source=PhoneNumber("36201234567", TON.INTERNATIONAL, NPI.ISDN),
    )


def test_smpp_receipts_are_parsed_and_replies_are_not_receipts() -> None:
    text = (
        "id:0A1B2C sub:001 dlvrd:001 submit date:2611251200 done date:2611251201 "
        "stat:DELIVRD err:000 Text:Hello"
    )
    got = report(_deliver(text, 0x04))
    assert got is not None and (got.message_id, got.status) == ("0A1B2C", DlrStatus.DELIVERED)
    odd = report(_deliver("stat:UNDELIV err:011", 0x04, [OptionalParam(0x001E, "77")]))
    assert odd is not None and (odd.message_id, odd.status) == ("77", DlrStatus.UNDELIVERED)
    assert report(_deliver("STOP", 0x00)) is None


def test_smpp_parts_carry_one_reference_and_their_numbers() -> None:
    message = SmsMessage(300, "+36201234567", "Acme", encode("x" * 400))
    pdus = submits(message)
    assert len(pdus) == 3 and all(p.esm_class == 0x40 for p in pdus)
    assert not any(p.is_segmented() for p in pdus)  # a UDH, not SAR TLVs
    raw = [p.pdu() for p in pdus]
    assert all(udh(300, 3, i + 1) in r for i, r in enumerate(raw))
    single = submits(SmsMessage(1, "+36201234567", "36201111111", encode("ő")))[0]
    assert single.esm_class == 0 and single.source.ton == TON.INTERNATIONAL
    assert single.encoding == "ucs2" and single.registered_delivery == 1


def test_the_registry_loads_by_name_lazily_and_explains_unknown_names() -> None:
    assert registry.factory("smpp") is SmppGateway
    assert registry.factory("smsapi") is SmsApiGateway
    assert {"smpp", "smsapi", "smtp"} <= set(registry.available())
    with pytest.raises(registry.UnknownProvider, match=r"available: .*smpp"):
        registry.factory("carrier-pigeon")
