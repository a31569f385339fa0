"""The alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from postgate.store.db import MIGRATIONS, engine_for, migrate
from postgate.store.schema import metadata


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    with engine_for(database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []


def downgrade(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    command.downgrade(cfg, revision)


def test_brand_migration_goes_down_and_up_again(tmp_path: Path) -> None:
    """0013 (tenant brand, topic labels, a form's language and origins) is reversible: down
    to 0012 drops exactly what it added, and up again keeps older rows readable."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenant (slug, name, domain, status, status_reason, "
                "created_at) VALUES ('t', 'T', 't.example', 'active', '', "
                "CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO tenant_brand (tenant_id, display_name, logo_url, "
                "accent_color, website_url, privacy_url, locale, time_zone, "
                "allow_resubscribe, updated_at) VALUES (1, 'T Kft.', '', '', '', '', "
                "'hu', 'Europe/Budapest', 1, CURRENT_TIMESTAMP)"
            )
        )
    downgrade(url, "0012")
    names = inspect(engine).get_table_names()
    assert "tenant_brand" not in names and "topic_label" not in names
    assert {"locale", "allowed_origins"}.isdisjoint(
        c["name"] for c in inspect(engine).get_columns("signup_form")
    )
    migrate(url)
    assert "tenant_brand" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT name FROM tenant")) == "T"
    engine.dispose()
