"""Normalising what people type: email addresses (email-validator), phone numbers
(phonenumbers, to E.164) and free text such as names. Each raises :class:`AddressError`
with a reason that can be shown to the person or written into an import report."""

from __future__ import annotations

import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

MAX_EMAIL = 254
MAX_NAME = 200
DEFAULT_REGION = "HU"


class AddressError(ValueError):
    pass


def has_tricks(value: str) -> bool:
    """Control characters, line breaks, bidi overrides, zero-width and other format chars."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for ch in value)


def normalise_email(value: str) -> str:
    value = value.strip()
    if not value:
        raise AddressError("email is empty")
    if len(value) > MAX_EMAIL:
        raise AddressError("email is too long")
    if has_tricks(value):
        raise AddressError("email contains control or invisible characters")
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AddressError(f"invalid email: {exc}") from None
    return str(result.normalized)


def normalise_phone(value: str, region: str = DEFAULT_REGION) -> str:
    value = value.strip()
    if len(value) > 40 or has_tricks(value):
        raise AddressError("invalid phone number")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise AddressError(f"invalid phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise AddressError("invalid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_of(e164: str) -> str | None:
    """The ISO region of a normalised number ('+36201234567' -> 'HU')."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))


def clean_name(value: str) -> str:
    """A display name: NFC, one line, no invisible characters, bounded length."""
    value = unicodedata.normalize("NFC", value).strip()
    if len(value) > MAX_NAME:
        raise AddressError("name is too long")
    if has_tricks(value):
        raise AddressError("name contains line breaks, control or invisible characters")
    return value
