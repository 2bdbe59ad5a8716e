"""backtest_runs: each tend backtest's window and figures, for the console (issue 12)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 07:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backtest_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ran_at", shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False, comment="Comparison.to_dict()."),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_runs")),
    )


def downgrade() -> None:
    op.drop_table("backtest_runs")
