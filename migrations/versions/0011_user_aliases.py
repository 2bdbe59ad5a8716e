"""user_aliases: alias calls, so the scorer counts a user's two ids as one (issue 14)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_aliases",
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("previous_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "previous_id", "user_id", name=op.f("pk_user_aliases")
        ),
    )


def downgrade() -> None:
    op.drop_table("user_aliases")
