"""tenant brand, topic labels per language, a form's language and allowed origins

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_brand",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("logo_url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("accent_color", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("website_url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("privacy_url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("time_zone", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("allow_resubscribe", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "topic_label",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "topic", "locale"),
    )
    op.create_index(op.f("ix_topic_label_tenant_id"), "topic_label", ["tenant_id"], unique=False)
    with op.batch_alter_table("signup_form") as batch:
        batch.add_column(
            sa.Column(
                "locale", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""
            )
        )
        batch.add_column(
            sa.Column(
                "allowed_origins",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("signup_form") as batch:
        batch.drop_column("allowed_origins")
        batch.drop_column("locale")
    op.drop_index(op.f("ix_topic_label_tenant_id"), table_name="topic_label")
    op.drop_table("topic_label")
    op.drop_table("tenant_brand")
