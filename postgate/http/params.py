"""Parameter types of the api routes: ids that fit their column and bounded limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

from postgate.core.params import Line, Text

MAX_BIG_ID = 2**63 - 1  # contacts, deliveries (BIGINT)
MAX_ID = 2**31 - 1  # tenants, lists, campaigns, forms (INTEGER)

RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id")]
BigRowId = Annotated[int, Path(ge=1, le=MAX_BIG_ID, description="a row id")]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=500)]

__all__ = ["MAX_BIG_ID", "MAX_ID", "BigRowId", "BodyId", "Limit", "Line", "RowId", "Text"]
