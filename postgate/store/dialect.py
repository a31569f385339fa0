"""The one place where PostgreSQL and SQLite SQL differ: insert-or-ignore."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignoring(conn: Connection, table: Table, conflict: Sequence[str]) -> Any:
    """An INSERT into ``table`` that does nothing when the row collides on the unique
    columns ``conflict`` (add ``.values(...)``, and ``.returning(...)`` to learn which)."""
    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=list(conflict))


def insert_ignore(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str]
) -> None:
    """Insert ``rows``, skipping any that collide on the unique columns ``conflict``."""
    if not rows:
        return
    conn.execute(insert_ignoring(conn, table, conflict), list(rows))
