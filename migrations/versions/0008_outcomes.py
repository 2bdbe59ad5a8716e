"""outcomes: recorded cancellations, renewals, expansions, contractions; MRR history; lifecycle
stage changes (issue 12)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 06:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "mrr_delta",
            sa.Float(),
            nullable=True,
            comment="Expansion (> 0) or contraction (< 0).",
        ),
        sa.Column("new_mrr", sa.Float(), nullable=True, comment="Renewal."),
        sa.Column("mrr_lost", sa.Float(), nullable=True, comment="Cancellation; optional."),
        sa.Column("new_term_end", sa.Date(), nullable=True, comment="Renewal."),
        sa.Column("source", sa.String(length=20), nullable=False, comment="import, api or demo."),
        sa.Column("recorded_at", shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('cancellation', 'renewal', 'expansion', 'contraction')",
            name=op.f("ck_outcomes_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint(
            "account_id",
            "kind",
            "effective_on",
            name=op.f("uq_outcomes_account_id_kind_effective_on"),
        ),
    )
    op.create_table(
        "mrr_history",
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("mrr", sa.Float(), nullable=False),
        sa.Column(
            "cause", sa.String(length=20), nullable=False, comment="start or the outcome's kind."
        ),
        sa.PrimaryKeyConstraint("account_id", "effective_on", name=op.f("pk_mrr_history")),
    )
    op.create_table(
        "lifecycle_stage_changes",
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "effective_on", name=op.f("pk_lifecycle_stage_changes")
        ),
    )


def downgrade() -> None:
    op.drop_table("lifecycle_stage_changes")
    op.drop_table("mrr_history")
    op.drop_table("outcomes")
