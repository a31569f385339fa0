"""What a visitor has to fix in a form, field by field, in their language."""

from __future__ import annotations

from postgate.core.addresses import (
    AddressError,
    clean_name,
    normalise_email,
    normalise_phone,
    region_of,
)
from postgate.core.i18n import Words

MAX_FIELD = 1000


def problems(channels: list[str], fields: dict[str, str], regions: str, _: Words) -> dict[str, str]:
    """Field name -> what to fix; empty when every field is fine."""
    out: dict[str, str] = {}
    email, phone = fields.get("email", "").strip(), fields.get("phone", "").strip()
    if "email" in channels or email:
        if not email:
            out["email"] = _("Enter your email address, like name@example.com.")
        elif len(email) > MAX_FIELD:
            out["email"] = _("This is too long for an email address.")
        else:
            try:
                normalise_email(email)
            except AddressError:
                out["email"] = _(
                    "This is not a valid email address: check it for typos, like name@example.com."
                )
    if "sms" in channels or phone:
        if not phone:
            out["phone"] = _("Enter your mobile number, like +36 20 123 4567.")
        else:
            try:
                number = normalise_phone(phone[:MAX_FIELD])
            except AddressError:
                out["phone"] = _(
                    "This is not a valid phone number: check the digits, like +36 20 123 4567."
                )
            else:
                allowed = {r.strip().upper() for r in regions.split(",") if r.strip()}
                if "sms" in channels and "*" not in allowed and region_of(number) not in allowed:
                    out["phone"] = _(
                        "We can only text numbers of: %(regions)s.",
                        regions=", ".join(sorted(allowed)),
                    )
    name = fields.get("name", "")
    if name:
        try:
            clean_name(name[: MAX_FIELD + 1])
        except AddressError:
            out["name"] = _("Use letters, spaces and punctuation only, at most 200 characters.")
    return out
