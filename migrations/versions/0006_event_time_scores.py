"""event-time scores: accounts.rescore_from (earliest stale day), health_scores.provisional

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "rescore_from",
                sa.Date(),
                nullable=True,
                comment="Earliest day whose score new events (or a profile change) made stale; "
                "set with the rollups, cleared by the re-scorer as it re-scores the days.",
            )
        )
    with op.batch_alter_table("health_scores", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "provisional",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
                comment="A score of today (UTC), which is not complete yet.",
            )
        )
    with op.batch_alter_table("health_scores", schema=None) as batch_op:
        batch_op.alter_column("provisional", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("health_scores", schema=None) as batch_op:
        batch_op.drop_column("provisional")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("rescore_from")
