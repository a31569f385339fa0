"""source IP addresses for direct-to-MX and their warm-up: each address's place on its
ramp, each day's count per provider group, and the address every delivery went from

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 15:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_address",
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("warmup_state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("warmup_stage", sa.Integer(), nullable=False),
        sa.Column("warmup_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("warmup_reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_table(
        "source_day",
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("group", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["address"], ["source_address.address"]),
        sa.PrimaryKeyConstraint("address", "group", "day"),
    )
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("source_ip", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.create_index("ix_delivery_source_sent", ["source_ip", "sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_index("ix_delivery_source_sent")
        batch.drop_column("source_ip")
    op.drop_table("source_day")
    op.drop_table("source_address")
