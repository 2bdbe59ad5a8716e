"""recent_events: the last events counted per account, for the "Last events" views (issue 16)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.types

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recent_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column(
            "write_key_id",
            sa.Integer(),
            nullable=True,
            comment="api_keys.id of the key that sent it (no foreign key: a key row may go).",
        ),
        sa.Column("occurred_at", shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "stored_at",
            shared.db.types.UTCDateTime(timezone=True),
            nullable=False,
            comment="When the scorer counted it.",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recent_events")),
    )
    op.create_index(
        "ix_recent_events_account_id_id", "recent_events", ["account_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_recent_events_account_id_id", table_name="recent_events")
    op.drop_table("recent_events")
