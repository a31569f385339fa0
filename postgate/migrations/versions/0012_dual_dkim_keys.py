"""a second DKIM key per sender domain (dual signing)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 06:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ("dkim2_selector", "dkim2_algorithm", "dkim2_private_key", "dkim2_public_key")


def upgrade() -> None:
    with op.batch_alter_table("sender_domain") as batch:
        for name in COLUMNS:
            kind = sa.Text() if name.endswith("_key") else sqlmodel.sql.sqltypes.AutoString()
            batch.add_column(sa.Column(name, kind, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("sender_domain") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
