"""customer reports: the customer's contacts on accounts, the outbox of scheduled reports

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column(
            "customer_emails",
            sa.JSON(),
            nullable=True,
            comment="The customer's contacts: the monthly report goes to them.",
        ),
    )
    op.create_table(
        "report_deliveries",
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False, comment="YYYY-MM"),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("created_at", shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", shared.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_report_deliveries_status")
        ),
        sa.PrimaryKeyConstraint("account_id", "month", name=op.f("pk_report_deliveries")),
    )
    op.create_index(
        op.f("ix_report_deliveries_next_attempt_at"),
        "report_deliveries",
        ["next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_report_deliveries_next_attempt_at"), table_name="report_deliveries")
    op.drop_table("report_deliveries")
    op.drop_column("accounts", "customer_emails")
