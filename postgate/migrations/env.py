"""Alembic environment: the URL comes from the caller's config (see postgate.store.db.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from postgate.store.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""


def run() -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
