"""account champion: the champion's user id, named by an operator (tend accounts import)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column(
            "champion",
            sa.String(length=200),
            nullable=True,
            comment="The champion's user id, named by an operator.",
        ),
    )


def downgrade() -> None:
    op.drop_column("accounts", "champion")
