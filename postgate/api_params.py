"""Parameter types shared by api routes: ids that fit their column, bounded limits, and
text a database column can hold (PostgreSQL refuses NUL in text; no field of ours wants
other control characters)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field

MAX_BIG_ID = 2**63 - 1  # contacts, deliveries (BIGINT)
MAX_ID = 2**31 - 1  # tenants, lists, campaigns, forms (INTEGER)

RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id")]
BigRowId = Annotated[int, Path(ge=1, le=MAX_BIG_ID, description="a row id")]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=500)]


def _text(value: str) -> str:
    if any((ch < " " and ch not in "\t\n\r") or ch == "\x7f" for ch in value):
        raise ValueError("control characters (NUL and the like) are not allowed")
    return value


def _line(value: str) -> str:
    if any(ch < " " or ch == "\x7f" or ch in "\u2028\u2029" for ch in value):
        raise ValueError("control characters and line breaks are not allowed")
    return value


Text = Annotated[str, AfterValidator(_text)]  # free text: tabs and line breaks allowed
Line = Annotated[str, AfterValidator(_line)]  # one line: names, ids, addresses, reasons
