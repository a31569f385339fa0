"""Sender ids, numbers, routing and opt-out keywords."""

from __future__ import annotations

import pytest

from postgate.core.sms.addressing import AddressError, e164, sender_id
from postgate.core.sms.opt_out import RESUME_KEYWORDS, keyword
from postgate.core.sms.routing import parse_routes, route


@pytest.mark.parametrize(
    "value", ["Acme", "ACME Kft.", "Shop-24", "A1234567890", "36201234567", "+36201234567", "1234"]
)
def test_valid_sender_ids(value: str) -> None:
    sid = sender_id(value)
    assert sid.numeric == value.lstrip("+").isdigit()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("TooLongSender", "at most 11"),
        ("Ácme", "at most 11"),
        ("", "at most 11"),
        ("12-34", "needs a letter"),
        ("a\nb", "at most 11"),
    ],
)
def test_invalid_sender_ids_say_why(value: str, why: str) -> None:
    with pytest.raises(AddressError, match=why):
        sender_id(value)


def test_e164_and_bad_numbers() -> None:
    assert e164("+36 20 123 4567") == "+36201234567"
    with pytest.raises(AddressError, match="not a valid number"):
        e164("+36 99 123 4567")
    with pytest.raises(AddressError):
        e164("hello")


def test_hungarian_numbers_go_domestic_others_international() -> None:
    assert route("+36201234567") == "smpp"
    assert route("+48501234567") == "smsapi"
    assert route("+14155550100") == "smsapi"


def test_a_tenant_override_and_the_longest_prefix_win() -> None:
    routes = parse_routes("36=smpp, 3630=smsapi, *=smsapi")
    assert route("+36301234567", routes) == "smsapi"
    assert route("+36201234567", routes) == "smpp"
    assert route("+36201234567", routes, {"*": "smsapi", "36": "smsapi"}) == "smsapi"


@pytest.mark.parametrize("spec", ["36=smpp", "36", "x=smpp,*=a", "*="])
def test_bad_route_tables_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_routes(spec)


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop. ",
        "LEIRATKOZÁS",
        "leiratkozas",
        "Leiratkozom!",
        "unsubscribe",
        "STOP ALL",
        "opt out",
        "Stop please",
    ],
)
def test_opt_out_keywords(text: str) -> None:
    assert keyword(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Köszönöm",
        "",
        "when does the bus stop running today",
        "Nem kérek több üzenetet stop",
        "STOPPER",
    ],
)
def test_other_replies_are_not_opt_outs(text: str) -> None:
    assert keyword(text) is None


@pytest.mark.parametrize("text", ["START", "start", "Unstop", "Feliratkozás", "feliratkozom!"])
def test_opt_back_in_keywords_are_not_opt_outs(text: str) -> None:
    assert keyword(text, RESUME_KEYWORDS) is not None
    assert keyword(text) is None


@pytest.mark.parametrize(
    "text", ["STOP", "please start sending me the news again now", "restart", "Köszönöm"]
)
def test_other_replies_are_not_opt_back_ins(text: str) -> None:
    assert keyword(text, RESUME_KEYWORDS) is None
