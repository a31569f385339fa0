"""a feedback event's reason (core.bounce_reasons.BounceReason)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 16:15:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedbackevent") as batch:
        batch.add_column(
            sa.Column(
                "reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("feedbackevent") as batch:
        batch.drop_column("reason")
