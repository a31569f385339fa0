"""a sender domain's authentication preflight (SPF, DMARC, DKIM, MTA-STS, TLS-RPT);
a tenant's SMS send windows

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 18:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "domain_preflight",
        sa.Column("sender_domain_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("domain", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("checks", JSON, nullable=True),
        sa.Column("records", JSON, nullable=True),
        sa.ForeignKeyConstraint(["sender_domain_id"], ["sender_domain.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("sender_domain_id"),
    )
    op.create_index(
        op.f("ix_domain_preflight_tenant_id"), "domain_preflight", ["tenant_id"], unique=False
    )
    with op.batch_alter_table("tenant_profile") as batch:
        batch.add_column(sa.Column("sms_send_window", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenant_profile") as batch:
        batch.drop_column("sms_send_window")
    op.drop_index(op.f("ix_domain_preflight_tenant_id"), table_name="domain_preflight")
    op.drop_table("domain_preflight")
