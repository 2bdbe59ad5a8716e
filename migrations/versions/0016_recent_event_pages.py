"""recent_event_pages: the last events per account a page (row) per account per batch, not a
row per event (issue 13, the scorer's PostgreSQL CPU per event)

Each existing ``recent_events`` row becomes a page of one event with the row's id, so the
event's id (page id x ``PAGE_SLOTS``) still grows with arrival, and pages stored later get
higher ids; a ``tend tail -f`` that ran across the upgrade shows its last events again.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.types
from shared.read.events import PAGE_SLOTS, decode_page, encode_page

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = shared.db.types.UTCDateTime(timezone=True)
CHUNK = 1000

OLD = sa.table(
    "recent_events",
    sa.column("id", BigId),
    sa.column("account_id", sa.String()),
    sa.column("event_id", sa.String()),
    sa.column("type", sa.String()),
    sa.column("name", sa.String()),
    sa.column("user_id", sa.String()),
    sa.column("write_key_id", sa.Integer()),
    sa.column("occurred_at", Time),
    sa.column("received_at", Time),
    sa.column("stored_at", Time),
)
PAGES = sa.table(
    "recent_event_pages",
    sa.column("id", BigId),
    sa.column("account_id", sa.String()),
    sa.column("size", sa.Integer()),
    sa.column("events", sa.Text()),
    sa.column("stored_at", Time),
)


def _create_old() -> None:
    op.create_table(
        "recent_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
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
        sa.Column("occurred_at", Time, nullable=False),
        sa.Column("received_at", Time, nullable=False),
        sa.Column("stored_at", Time, nullable=False, comment="When the scorer counted it."),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recent_events")),
    )
    op.create_index(
        "ix_recent_events_account_id_id", "recent_events", ["account_id", "id"], unique=False
    )


def _restart_ids(table: str) -> None:
    """PostgreSQL: the table's id sequence past the ids copied in (SQLite does it itself)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table} "
            "HAVING count(*) > 0"
        )


def upgrade() -> None:
    op.create_table(
        "recent_event_pages",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column(
            "size", sa.Integer(), nullable=False, comment="How many events ``events`` holds."
        ),
        sa.Column(
            "events",
            sa.Text(),
            nullable=False,
            comment="JSON: [event_id, type, name, user_id, write_key_id, occurred_at, "
            "received_at] per event, in arrival order.",
        ),
        sa.Column("stored_at", Time, nullable=False, comment="When the scorer counted them."),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recent_event_pages")),
    )
    op.create_index(
        "ix_recent_event_pages_account_id_id",
        "recent_event_pages",
        ["account_id", "id"],
        unique=False,
    )
    bind = op.get_bind()
    last = None
    while True:
        query = sa.select(OLD).order_by(OLD.c.id).limit(CHUNK)
        if last is not None:
            query = query.where(OLD.c.id > last)
        rows = bind.execute(query).all()
        if not rows:
            break
        pages = [
            {
                "id": r.id,
                "account_id": r.account_id,
                "size": 1,
                "events": encode_page(
                    [
                        (
                            r.event_id,
                            r.type,
                            r.name,
                            r.user_id,
                            r.write_key_id,
                            r.occurred_at,
                            r.received_at,
                        )
                    ]
                ),
                "stored_at": r.stored_at,
            }
            for r in rows
        ]
        bind.execute(sa.insert(PAGES), pages)
        last = rows[-1].id
    _restart_ids("recent_event_pages")
    op.drop_index("ix_recent_events_account_id_id", table_name="recent_events")
    op.drop_table("recent_events")


def _old_text(value: str | None, postgresql: bool) -> str | None:
    """``value`` as ``recent_events`` can hold it: PostgreSQL text cannot hold NUL, which a
    page's JSON can (an event name from a producer other than ingest; the old writer refused
    the whole record), so there each NUL becomes U+FFFD."""
    if value is None or not postgresql or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


def downgrade() -> None:
    _create_old()
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    last = None
    while True:
        query = sa.select(PAGES).order_by(PAGES.c.id).limit(CHUNK)
        if last is not None:
            query = query.where(PAGES.c.id > last)
        pages = bind.execute(query).all()
        if not pages:
            break
        rows = [
            {
                "id": page.id * PAGE_SLOTS + position,
                "account_id": page.account_id,
                "event_id": _old_text(event_id, postgresql),
                "type": kind,
                "name": _old_text(name, postgresql),
                "user_id": _old_text(user_id, postgresql),
                "write_key_id": key_id,
                "occurred_at": occurred_at,
                "received_at": received_at,
                "stored_at": page.stored_at,
            }
            for page in pages
            for position, (event_id, kind, name, user_id, key_id, occurred_at, received_at) in (
                enumerate(decode_page(page.events))
            )
        ]
        bind.execute(sa.insert(OLD), rows)
        last = pages[-1].id
    _restart_ids("recent_events")
    op.drop_index("ix_recent_event_pages_account_id_id", table_name="recent_event_pages")
    op.drop_table("recent_event_pages")
