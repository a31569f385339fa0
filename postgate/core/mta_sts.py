"""MTA-STS (RFC 8461), the pure parts: the ``_mta-sts`` TXT record's id, the policy file,
and whether an MX host matches the policy's ``mx:`` patterns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MODES = ("enforce", "testing", "none")
MAX_AGE_LIMIT = 31_557_600  # one year, RFC 8461 section 3.2


class PolicyError(ValueError):
    """A policy file that is not a valid STSv1 policy; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class Policy:
    mode: str  # enforce | testing | none
    mx: tuple[str, ...]  # patterns: "mx1.example.com" or "*.example.net"
    max_age: int  # seconds the policy may be cached
    id: str = ""  # the TXT record's id it was fetched under

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"

    @property
    def applies(self) -> bool:
        """A policy in force or under test (``none`` withdraws one)."""
        return self.mode in ("enforce", "testing")


def txt_id(records: Iterable[str]) -> str | None:
    """The ``id`` of the one ``v=STSv1`` TXT record, else None (none, several, no id)."""
    found = []
    for record in records:
        fields = dict(
            (k.strip(), v.strip())
            for k, _, v in (p.partition("=") for p in record.split(";") if "=" in p)
        )
        if fields.get("v") == "STSv1":
            found.append(fields.get("id", ""))
    if len(found) != 1 or not found[0].isalnum() or len(found[0]) > 32:
        return None
    return found[0]


def parse(text: str, policy_id: str = "") -> Policy:
    """An STSv1 policy file (``key: value`` lines, CRLF or LF)."""
    fields: dict[str, list[str]] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"policy line {line[:80]!r} is not 'key: value'")
        fields.setdefault(key.strip().lower(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        raise PolicyError("the policy does not start with 'version: STSv1'")
    mode = (fields.get("mode") or [""])[0].lower()
    if mode not in MODES:
        raise PolicyError(f"policy mode {mode!r} is not enforce, testing or none")
    age = (fields.get("max_age") or [""])[0]
    if not age.isdigit() or int(age) > MAX_AGE_LIMIT:
        raise PolicyError(f"policy max_age {age!r} is not 0..{MAX_AGE_LIMIT} seconds")
    patterns = tuple(p.lower().rstrip(".") for p in fields.get("mx", []) if p)
    if mode != "none" and not patterns:
        raise PolicyError("the policy names no mx")
    return Policy(mode, patterns, int(age), policy_id)


def matches(host: str, patterns: Iterable[str]) -> bool:
    """RFC 8461 section 4.1: exact names, or ``*.`` standing for exactly one label."""
    name = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            head, _, rest = name.partition(".")
            if head and rest == pattern[2:]:
                return True
        elif name == pattern:
            return True
    return False
