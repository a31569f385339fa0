"""Sender ids and recipient numbers: what a gateway will accept. Pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

_ALNUM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .&_-]{0,10}$")
_NUMERIC = re.compile(r"^\+?[0-9]{3,15}$")


class AddressError(ValueError):
    """A sender id or phone number a gateway would refuse."""


@dataclass(frozen=True, slots=True)
class SenderId:
    value: str
    numeric: bool  # a phone number or short code (replies possible) vs a name


def sender_id(value: str) -> SenderId:
    """Validate a sender id: a name of at most 11 GSM-safe characters with a letter in
    it, or a number (short code or E.164) of 3 to 15 digits."""
    value = value.strip()
    if _NUMERIC.match(value):
        return SenderId(value.lstrip("+"), numeric=True)
    if not _ALNUM.match(value):
        raise AddressError(
            f"sender id {value!r}: use at most 11 letters, digits, space or . & _ -, "
            "or a phone number"
        )
    if not any(ch.isalpha() for ch in value):
        raise AddressError(f"sender id {value!r}: an alphanumeric id needs a letter")
    return SenderId(value, numeric=False)


def e164(number: str) -> str:
    """Parse an international number to E.164, or raise :class:`AddressError`."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as exc:
        raise AddressError(f"phone number {number!r}: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise AddressError(f"phone number {number!r} is not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
