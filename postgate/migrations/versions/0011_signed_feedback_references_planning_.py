"""signed feedback references, planning leases

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02 05:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # campaigns that exist now sent references in the legacy format (1); new ones get 2
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(sa.Column("plan_lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ref_format", sa.Integer(), nullable=False, server_default="1"))
    with op.batch_alter_table("feedbackevent") as batch:
        batch.add_column(
            sa.Column(
                "verification",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="",
            )
        )
        batch.add_column(
            sa.Column("dkim", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("feedbackevent") as batch:
        batch.drop_column("dkim")
        batch.drop_column("verification")
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("ref_format")
        batch.drop_column("plan_lease_until")
