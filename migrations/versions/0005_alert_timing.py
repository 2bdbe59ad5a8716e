"""alert timing: episodes in event time (started_on, opened_on, resolved_on), day findings and
replay checkpoints in the alerts' score history, and the alert_episodes history

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "started_on",
                sa.Date(),
                nullable=True,
                comment="Event-time day the episode's condition began.",
            )
        )
        batch_op.add_column(
            sa.Column(
                "opened_on", sa.Date(), nullable=True, comment="Event-time day the episode fired."
            )
        )
        batch_op.add_column(
            sa.Column(
                "resolved_on",
                sa.Date(),
                nullable=True,
                comment="Event-time day the episode resolved.",
            )
        )
        batch_op.add_column(
            sa.Column(
                "reopenings",
                sa.Integer(),
                nullable=False,
                server_default="0",
                comment="Returns within the cool-down, continuing this episode.",
            )
        )
        batch_op.add_column(
            sa.Column(
                "manual_resolved_on",
                sa.Date(),
                nullable=True,
                comment="Event-time day of the last manual resolve (replays keep it).",
            )
        )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("reopenings", server_default=None)

    with op.batch_alter_table("alert_score_history", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "findings",
                sa.JSON(),
                nullable=True,
                comment="The rules' findings of this day (replayed on a re-score).",
            )
        )
        batch_op.add_column(
            sa.Column(
                "states",
                sa.JSON(),
                nullable=True,
                comment="Every alert's day state after this day (replay checkpoint).",
            )
        )

    op.create_table(
        "alert_episodes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=50), nullable=False),
        sa.Column("feature", sa.String(length=200), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.Column("resolved_by", sa.String(length=20), nullable=True),
        sa.Column("reopenings", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_episodes")),
        sa.UniqueConstraint(
            "account_id",
            "rule",
            "feature",
            "started_on",
            name=op.f("uq_alert_episodes_account_id_rule_feature_started_on"),
        ),
    )


def downgrade() -> None:
    op.drop_table("alert_episodes")
    with op.batch_alter_table("alert_score_history", schema=None) as batch_op:
        batch_op.drop_column("states")
        batch_op.drop_column("findings")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("manual_resolved_on")
        batch_op.drop_column("reopenings")
        batch_op.drop_column("resolved_on")
        batch_op.drop_column("opened_on")
        batch_op.drop_column("started_on")
