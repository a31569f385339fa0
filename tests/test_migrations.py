"""The alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from postgate.store.db import engine_for
from postgate.store.schema import metadata


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    with engine_for(database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []
