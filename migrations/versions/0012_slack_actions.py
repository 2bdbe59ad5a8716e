"""alert_actions (who moved an alert, from Slack) and the Slack message of an outbox row
(issue 14)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 10:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_actions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False, comment="acknowledge or snooze."),
        sa.Column("snoozed_until", shared.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "source", sa.String(length=20), nullable=False, comment="Where it was done: slack."
        ),
        sa.Column(
            "actor_id", sa.String(length=100), nullable=False, comment="The Slack member id."
        ),
        sa.Column("actor_name", sa.String(length=200), nullable=True),
        sa.Column("team_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_actions_alert_id_alerts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_actions")),
    )
    with op.batch_alter_table("alert_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_actions_alert_id"), ["alert_id"], unique=False)
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "slack_channel",
                sa.String(length=100),
                nullable=True,
                comment="slack_api: the channel the message was posted in.",
            )
        )
        batch_op.add_column(
            sa.Column(
                "slack_ts",
                sa.String(length=40),
                nullable=True,
                comment="slack_api: the posted message's ts (chat.update).",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("slack_ts")
        batch_op.drop_column("slack_channel")
    with op.batch_alter_table("alert_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_actions_alert_id"))
    op.drop_table("alert_actions")
