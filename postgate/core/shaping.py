"""Traffic shaping, free of I/O: the shaping file's schema, which provider group a
destination belongs to (by the names of its MX hosts), which automation rule a reply
matches, and the token-bucket arithmetic both throttle stores share.

A group's pace is a generic cell rate: one message per ``1 / rate`` seconds, ``burst``
at once. A send is given the first free turn; a turn further than ``max_wait_s`` away
is not taken, and the send is deferred until about then instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT = "default"
BACKOFF = "backoff"  # the rule name of the shared generic backoff (a 421 no rule matched)
HostPattern = Annotated[str, Field(pattern=r"^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Group(Strict):
    """One mailbox provider: the MX host names that are its, and its limits. ``None``
    connections (the default group's): ``MX_CONNECTIONS_PER_DOMAIN``."""

    mx: list[HostPattern] = Field(default_factory=list)  # "*.google.com" or an exact name
    connections: int | None = Field(default=None, ge=1)
    messages_per_connection: int = Field(default=100, ge=1)
    per_minute: float | None = Field(default=None, gt=0)
    per_hour: float | None = Field(default=None, gt=0)
    burst: int = Field(default=1, ge=1)
    tenant_share: float = Field(default=1.0, gt=0, le=1)  # of the group's rate, per tenant

    @property
    def rate(self) -> float:
        """Messages per second (0: no limit): the stricter of per minute and per hour."""
        rates = [r / s for r, s in ((self.per_minute, 60), (self.per_hour, 3600)) if r]
        return min(rates, default=0.0)


class Action(StrEnum):
    SLOW = "slow"  # the group's rate times ``factor``
    SUSPEND = "suspend"  # nothing to the group
    SUSPEND_TENANT = "suspend_tenant"  # nothing from this tenant to the group


class Rule(Strict):
    """A reply that asks for an action: ``code`` (any when unset) and ``text``, a regular
    expression searched in the reply's text (case-insensitive)."""

    name: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    groups: list[str] = Field(default_factory=list)  # empty: any group
    code: int | None = Field(default=None, ge=200, le=599)
    text: str = ""
    action: Action
    minutes: float = Field(gt=0)
    factor: float = Field(default=0.5, gt=0, lt=1)

    @field_validator("text")
    @classmethod
    def _compiles(cls, text: str) -> str:
        try:
            re.compile(text)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return text

    def matches(self, group: str, code: int | None, detail: str) -> bool:
        if self.groups and group not in self.groups:
            return False
        if self.code is not None and code != self.code:
            return False
        return code is not None and bool(re.search(self.text, detail, re.IGNORECASE))


class Shaping(Strict):
    max_wait_s: float = Field(default=2.0, ge=0)  # a send waits this long for its turn
    lease_s: float = Field(default=30.0, gt=1)  # a dead process's connections count this long
    idle_s: float = Field(default=5.0, gt=0)  # an idle connection (and its lease) is kept this long
    groups: dict[str, Group]
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Shaping:
        if DEFAULT not in self.groups:
            raise ValueError(f"a group named {DEFAULT!r} is required")
        if self.groups[DEFAULT].mx:
            raise ValueError(f"group {DEFAULT!r} takes every other domain: it lists no mx")
        for rule in self.rules:
            if unknown := [g for g in rule.groups if g not in self.groups]:
                raise ValueError(f"rule {rule.name!r} names unknown groups {unknown}")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("rule names must be unique")
        if BACKOFF in names:
            raise ValueError(f"rule name {BACKOFF!r} is the generic backoff's")
        return self

    def group_of(self, hosts: list[str]) -> str:
        """The group of the first of ``hosts`` (MX names, most preferred first) that one
        names; ``default`` when none does."""
        for host in hosts:
            host = host.lower().rstrip(".")
            for name, group in self.groups.items():
                if any(host_matches(pattern, host) for pattern in group.mx):
                    return name
        return DEFAULT

    def rule_for(self, group: str, code: int | None, detail: str) -> Rule | None:
        return next((r for r in self.rules if r.matches(group, code, detail)), None)


def host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def shaping_key(group: str, domain: str) -> str:
    """What the limits are counted by: the group, or for the default group (many unrelated
    providers) each destination domain on its own."""
    return f"{DEFAULT}/{domain}" if group == DEFAULT else group


class Stage(StrEnum):
    """A send is paced twice: by its tenant's share before it takes a connection slot (so a
    tenant over its share holds up no one else), then by the group's rate once it has a
    connection (so a turn is never spent by a send that then finds no connection)."""

    TENANT = "tenant"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Turn:
    """A send's place in a bucket: ``wait`` seconds from now (taken), or ``None`` with
    ``retry_after`` (not taken: too far away, or the group is suspended). ``wanted``: some
    sender is waiting for one of the group's connections."""

    wait: float | None
    retry_after: float = 0.0
    why: str = ""
    wanted: bool = False


def next_turn(tat: float, now: float, rate: float, burst: int) -> float:
    """When the next send may go (generic cell rate: ``tat`` is the bucket's theoretical
    arrival time); 0 rate: at once."""
    if rate <= 0:
        return now
    return max(now, tat - (burst - 1) / rate)


def taken(tat: float, now: float, rate: float) -> float:
    """The bucket's arrival time once a turn is taken."""
    return max(tat, now) + 1 / rate if rate > 0 else now


@dataclass(frozen=True, slots=True)
class ActiveAction:
    """An automation in force: ``tenant`` set only for ``suspend_tenant``; ``until`` is
    wall-clock seconds."""

    key: str
    action: Action
    rule: str
    until: float
    tenant: str = ""
    factor: float = 1.0
