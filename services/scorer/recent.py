"""The last events of each account (``recent_events``): part of the rollup writer's batch.

What people see in the "Last events" views (``GET /v1/accounts/{id}/events``, the console's
account page, ``tend tail``): each counted event's call type, name, user, event and receipt
times and write key id. Kept cheap on the scorer's hot path: per batch, one insert of at most
:data:`RECENT_EVENTS_KEPT` rows per account (older events of the same batch would be pruned at
once) and one set-based prune of the accounts the batch touched (on SQLite more only past
:data:`CHUNK` accounts), inside the writer's transaction, so a replayed batch adds nothing
(only events counted for the first time are kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scorer.bulk import columns, is_postgresql, unnest
from services.scorer.driver import DriverStatement
from shared.db.models import RecentEvent
from shared.events import AnyEvent

RECENT: Table = RecentEvent.__table__  # type: ignore[assignment]

RECENT_EVENTS_KEPT = 50
"""Events kept per account."""
PRUNE_EVERY = 5000
"""Rows stored between prunes (a few batches of the scorer's default 1,000 events)."""
CHUNK = 2000
"""Accounts per ``IN (...)`` list of the prune (well under both drivers' bind limits)."""
MAX_TEXT = 200
"""The longest name or user id stored (ingest checks both to this length already)."""
COLUMNS = (
    "account_id",
    "event_id",
    "type",
    "name",
    "user_id",
    "write_key_id",
    "occurred_at",
    "received_at",
    "stored_at",
)
_INSERT = text(
    f"INSERT INTO {RECENT.name} ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join(COLUMNS[:-1])}, CAST(:stored_at AS TIMESTAMP WITH TIME ZONE) "
    f"FROM {unnest(RECENT, COLUMNS[:-1], ordinality=True)} ORDER BY n"
)
"""PostgreSQL: the batch's rows in one statement, in arrival order (ids grow with it). The
batch's one ``stored_at`` travels once, not as an array (asyncpg encodes a timestamp in about
0.8 µs, the costliest element of the row)."""
_INSERT_SQLITE = DriverStatement(RECENT.insert(), COLUMNS)
"""SQLite: the same rows, one execution each (``executemany``, in arrival order)."""


def newest_per_account(fresh: Sequence[AnyEvent]) -> list[AnyEvent]:
    """The events of ``fresh`` (in arrival order) among the newest :data:`RECENT_EVENTS_KEPT`
    of their account, still in arrival order; events without an account are left out."""
    seen: dict[str, int] = {}
    kept: list[AnyEvent] = []
    for e in reversed(fresh):
        if e.account_id is None:
            continue
        n = seen.get(e.account_id, 0)
        if n < RECENT_EVENTS_KEPT:
            seen[e.account_id] = n + 1
            kept.append(e)
    kept.reverse()
    return kept


class RecentEvents:
    """Stores each batch's newest counted events per account, and prunes every account
    touched to its newest :data:`RECENT_EVENTS_KEPT` once ``prune_every`` rows were stored
    since the last prune (and on the first batch), so the prune's cost is shared by many
    batches.

    Contract: runs in the writer's transaction and never commits. Between prunes an account
    holds at most ``RECENT_EVENTS_KEPT`` plus the rows stored since (every reader asks for the
    newest ``RECENT_EVENTS_KEPT``, so what people see is the same). A prune rolled back with its
    batch leaves its accounts over the bound until they are touched and pruned again.
    """

    def __init__(self, prune_every: int = PRUNE_EVERY) -> None:
        self.prune_every = prune_every
        self.stored_since_prune = prune_every  # the first batch prunes: a restart forgot
        self.touched: set[str] = set()

    async def keep(self, session: AsyncSession, fresh: Sequence[AnyEvent], now: datetime) -> None:
        kept = newest_per_account(fresh)
        if not kept:
            return
        rows = [_row(e) for e in kept]
        if is_postgresql(session):
            await session.execute(_INSERT, {**columns(COLUMNS[:-1], rows), "stored_at": now})
        else:
            await _INSERT_SQLITE.executemany(session, [(*row, now) for row in rows])
        self.touched.update(str(e.account_id) for e in kept)
        self.stored_since_prune += len(kept)
        if self.stored_since_prune >= self.prune_every:
            await prune(session, sorted(self.touched))
            self.touched.clear()
            self.stored_since_prune = 0


def _row(e: AnyEvent) -> tuple[object, ...]:
    """The values of :data:`COLUMNS` for ``e``, but the last (``stored_at``)."""
    return (
        e.account_id,
        e.event_id,
        e.type,
        e.name[:MAX_TEXT] if e.name is not None else None,
        e.actor[:MAX_TEXT] or None,
        e.write_key_id,
        e.occurred_at,
        e.received_at,
    )


_PRUNE = text(
    f"DELETE FROM {RECENT.name} AS r USING ("
    "SELECT a.account_id, ("
    f"SELECT e.id FROM {RECENT.name} AS e WHERE e.account_id = a.account_id "
    "ORDER BY e.id DESC OFFSET :older LIMIT 1"
    ") AS oldest_kept "
    "FROM unnest(CAST(:accounts AS TEXT[])) AS a(account_id)"
    ") AS k "
    "WHERE r.account_id = k.account_id AND r.id < k.oldest_kept"
)
"""PostgreSQL: per account, the id of its :data:`RECENT_EVENTS_KEPT`-th newest row (a walk
back along the ``(account_id, id)`` index) and the rows older than it. A window ranking of
every row of the accounts, as SQLite still does, sorted and hash-joined them all: after 5,000
new rows over 2,000 accounts, 95 ms of PostgreSQL CPU against 53 ms (docs/performance.md)."""


async def prune(session: AsyncSession, accounts: Sequence[str]) -> None:
    """Drop the events of ``accounts`` beyond each one's newest :data:`RECENT_EVENTS_KEPT`
    (ids grow with arrival): on PostgreSQL one statement, on SQLite one per :data:`CHUNK`
    accounts."""
    if is_postgresql(session):
        await session.execute(_PRUNE, {"older": RECENT_EVENTS_KEPT - 1, "accounts": list(accounts)})
        return
    for start in range(0, len(accounts), CHUNK):
        ranked = (
            select(
                RECENT.c.id,
                func.row_number()
                .over(partition_by=RECENT.c.account_id, order_by=RECENT.c.id.desc())
                .label("rank"),
            )
            .where(RECENT.c.account_id.in_(accounts[start : start + CHUNK]))
            .subquery()
        )
        older = select(ranked.c.id).where(ranked.c.rank > RECENT_EVENTS_KEPT)
        await session.execute(delete(RECENT).where(RECENT.c.id.in_(older)))
