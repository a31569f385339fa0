"""a sending domain's warm-up: its stage on the ramp, and each day's count per provider
group

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 10:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sender_domain") as batch:
        batch.add_column(
            sa.Column(
                "warmup_state",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="done",  # domains that already send are established
            )
        )
        batch.add_column(
            sa.Column("warmup_stage", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column(
                "warmup_reason",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="",
            )
        )
        batch.add_column(sa.Column("warmup_reviewed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "warmup_day",
        sa.Column("sender_domain_id", sa.Integer(), nullable=False),
        sa.Column("group", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["sender_domain_id"], ["sender_domain.id"]),
        sa.PrimaryKeyConstraint("sender_domain_id", "group", "day"),
    )


def downgrade() -> None:
    op.drop_table("warmup_day")
    with op.batch_alter_table("sender_domain") as batch:
        batch.drop_column("warmup_reviewed_at")
        batch.drop_column("warmup_reason")
        batch.drop_column("warmup_stage")
        batch.drop_column("warmup_state")
