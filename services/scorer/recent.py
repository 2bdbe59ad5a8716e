"""The last events of each account (``recent_event_pages``): part of the rollup writer's batch.

What people see in the "Last events" views (``GET /v1/accounts/{id}/events``, the console's
account page, ``tend tail``): each counted event's call type, name, user, event and receipt
times and write key id. Kept cheap on the scorer's hot path: per batch, one insert of a page
(row) per account holding its newest events of the batch, at most :data:`RECENT_EVENTS_KEPT`
(older events of the same batch would be pruned at once), as JSON (the format and the ids:
:mod:`shared.read.events`), and every so many events one set-based prune of the accounts
touched since the last (on SQLite more only past :data:`CHUNK` accounts), inside the writer's
transaction, so a replayed batch adds nothing (only events counted for the first time are
kept). A row per event, as before, cost PostgreSQL a heap row and two index entries per event
(docs/performance.md, "PostgreSQL per event").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scorer.bulk import columns, is_postgresql, unnest
from services.scorer.driver import DriverStatement
from shared.db.models import RecentEventPage
from shared.events import AnyEvent
from shared.read.events import PageEvent, encode_page

PAGES: Table = RecentEventPage.__table__  # type: ignore[assignment]

RECENT_EVENTS_KEPT = 50
"""Events kept per account (at least: a prune keeps whole pages, so up to a page more). At
most :data:`shared.read.events.PAGE_SLOTS` (a page holds at most this many)."""
PRUNE_EVERY = 5000
"""Events stored between prunes (a few batches of the scorer's default 1,000 events)."""
CHUNK = 2000
"""Accounts per ``IN (...)`` list of the prune (well under both drivers' bind limits)."""
MAX_TEXT = 200
"""The longest name or user id stored (ingest checks both to this length already)."""
COLUMNS = ("account_id", "size", "events", "stored_at")
_INSERT = text(
    f"INSERT INTO {PAGES.name} ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join(COLUMNS[:-1])}, CAST(:stored_at AS TIMESTAMP WITH TIME ZONE) "
    f"FROM {unnest(PAGES, COLUMNS[:-1], ordinality=True)} ORDER BY n"
)
"""PostgreSQL: the batch's pages in one statement, in order (ids grow with it). The batch's one
``stored_at`` travels once, not as an array."""
_INSERT_SQLITE = DriverStatement(PAGES.insert(), COLUMNS)
"""SQLite: the same pages, one execution each (``executemany``, in order)."""


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
    """Stores each batch's newest counted events per account, a page per account, and prunes
    every account touched to the pages holding its newest :data:`RECENT_EVENTS_KEPT` once
    ``prune_every`` events were stored since the last prune (and on the first batch), so the
    prune's cost is shared by many batches.

    Contract: runs in the writer's transaction and never commits. Between prunes an account
    holds its newest ``RECENT_EVENTS_KEPT`` events plus the events stored since (and, after a
    prune, up to a page more: whole pages are kept); every reader asks for the newest
    ``RECENT_EVENTS_KEPT`` at most, so what people see is the same. A prune rolled back with
    its batch leaves its accounts over the bound until they are touched and pruned again.
    """

    def __init__(self, prune_every: int = PRUNE_EVERY) -> None:
        self.prune_every = prune_every
        self.stored_since_prune = prune_every  # the first batch prunes: a restart forgot
        self.touched: set[str] = set()

    async def keep(self, session: AsyncSession, fresh: Sequence[AnyEvent], now: datetime) -> None:
        pages: dict[str, list[PageEvent]] = {}
        last: dict[str, int] = {}
        for i, e in enumerate(newest_per_account(fresh)):
            account = str(e.account_id)
            pages.setdefault(account, []).append(_row(e))
            last[account] = i
        if not pages:
            return
        # The pages in the order of each one's last event: the newest page holds the newest.
        rows = [
            (a, len(pages[a]), encode_page(pages[a])) for a in sorted(last, key=last.__getitem__)
        ]
        if is_postgresql(session):
            await session.execute(_INSERT, {**columns(COLUMNS[:-1], rows), "stored_at": now})
        else:
            await _INSERT_SQLITE.executemany(session, [(*row, now) for row in rows])
        self.touched.update(pages)
        self.stored_since_prune += sum(row[1] for row in rows)
        if self.stored_since_prune >= self.prune_every:
            await prune(session, sorted(self.touched))
            self.touched.clear()
            self.stored_since_prune = 0


def _row(e: AnyEvent) -> PageEvent:
    """``e`` as an event of a page (:data:`shared.read.events.PageEvent`)."""
    return (
        e.event_id,
        e.type,
        e.name[:MAX_TEXT] if e.name is not None else None,
        e.actor[:MAX_TEXT] or None,
        e.write_key_id,
        e.occurred_at,
        e.received_at,
    )


_OLDER = (
    "SELECT id FROM ("
    "SELECT p.id, sum(p.size) OVER (PARTITION BY p.account_id ORDER BY p.id DESC) - p.size "
    f"AS newer FROM {PAGES.name} AS p {{accounts}}"
    ") AS s WHERE newer >= :kept"
)
_PRUNE = text(
    f"DELETE FROM {PAGES.name} WHERE id IN ("
    + _OLDER.format(
        accounts="JOIN unnest(CAST(:accounts AS TEXT[])) AS a(account_id) "
        "ON p.account_id = a.account_id"
    )
    + ")"
)
"""PostgreSQL: per account, the pages with :data:`RECENT_EVENTS_KEPT` or more newer events
(a walk of the account's pages along the ``(account_id, id)`` index, summing their sizes from
the newest), deleted. The accounts are joined as an unnested array, not ``= ANY``, which a
generic plan searches linearly per row."""
_PRUNE_SQLITE = text(
    f"DELETE FROM {PAGES.name} WHERE id IN ("
    + _OLDER.format(accounts="WHERE p.account_id IN :accounts")
    + ")"
).bindparams(bindparam("accounts", expanding=True))
"""SQLite: the same, :data:`CHUNK` accounts per ``IN`` list."""


async def prune(session: AsyncSession, accounts: Sequence[str]) -> None:
    """Drop the pages of ``accounts`` that hold none of each one's newest
    :data:`RECENT_EVENTS_KEPT` events (ids grow with arrival): on PostgreSQL one statement,
    on SQLite one per :data:`CHUNK` accounts."""
    if is_postgresql(session):
        await session.execute(_PRUNE, {"kept": RECENT_EVENTS_KEPT, "accounts": list(accounts)})
        return
    for start in range(0, len(accounts), CHUNK):
        chunk = list(accounts[start : start + CHUNK])
        await session.execute(_PRUNE_SQLITE, {"kept": RECENT_EVENTS_KEPT, "accounts": chunk})
