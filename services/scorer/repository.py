"""The scorer's queries: activity for a chunk of accounts, score history, work lists.

:class:`ScoringRepository` is the one object the re-scorer talks to. The activity reads are in
:mod:`services.scorer.activity_reads` (any database, nine GROUP BY queries per chunk) and
:mod:`services.scorer.activity_arrays` (PostgreSQL, one statement per chunk); score history
and current scores in :mod:`services.scorer.score_history`; the work lists (re-score marks,
dirty accounts, the sweep's keyset pages) and the stored offsets here. Nothing commits; the
caller's unit of work does. Every read runs a fixed number of queries per chunk of accounts,
whatever the chunk's size, so scoring 100,000 accounts is a few queries per chunk, not per
account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Boolean, Date, and_, bindparam, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scorer.activity import AccountActivity
from services.scorer.activity_arrays import load_activity_arrays
from services.scorer.activity_reads import ACCOUNTS, _as_date, _chunks, load_activity_portable
from services.scorer.bulk import is_postgresql
from services.scorer.score_history import ScoreHistory
from shared.bus.base import TopicPartition
from shared.db.offsets import load_offsets


@dataclass(frozen=True, slots=True)
class StaleMark:
    """An account's re-score mark as read inside a re-score transaction."""

    rescore_from: date | None
    updated_at: datetime
    """The writer stamps this on every batch: a different value later means new events."""
    dirty: bool = True


class ScoringRepository(ScoreHistory):
    """Reads and writes of the re-scorer. Never commits; never one query per account.

    ``load_activity`` honours the window conventions of :mod:`services.scorer.activity`
    exactly and only looks at days up to ``as_of``, so scoring a past date (``tend rescore
    --as-of``) sees what was known of that date's window.
    """

    async def load_activity(
        self,
        session: AsyncSession,
        account_ids: Sequence[str],
        as_of: date,
        key_features: Sequence[str],
    ) -> list[AccountActivity]:
        """One :class:`AccountActivity` per id, in the order given (an account without a row
        gets a bare profile). A constant number of queries per call: keep chunks to a few
        thousand ids."""
        ids = list(dict.fromkeys(account_ids))
        if not ids:
            return []
        keys = list(dict.fromkeys(key_features))
        if is_postgresql(session):
            return await load_activity_arrays(session, ids, as_of, keys)
        return await load_activity_portable(session, ids, as_of, keys)

    async def load_activity_portable(
        self, session: AsyncSession, ids: list[str], as_of: date, keys: list[str]
    ) -> list[AccountActivity]:
        """:meth:`load_activity` on any database (``ids`` and ``keys`` without duplicates):
        SQLite's reads, and on PostgreSQL the reference the array reads are tested against."""
        return await load_activity_portable(session, ids, as_of, keys)

    async def load_marks(
        self, session: AsyncSession, account_ids: Sequence[str]
    ) -> dict[str, StaleMark]:
        """Each account's re-score mark, read before its activity in the same transaction."""
        ac = ACCOUNTS.c
        out: dict[str, StaleMark] = {}
        for chunk in _chunks(list(dict.fromkeys(account_ids))):
            result = await session.execute(
                select(ac.account_id, ac.rescore_from, ac.updated_at, ac.dirty).where(
                    ac.account_id.in_(list(chunk))
                )
            )
            for account_id, rescore_from, updated_at, dirty in result:
                out[account_id] = StaleMark(_as_date(rescore_from), updated_at, bool(dirty))
        return out

    async def advance_marks(
        self, session: AsyncSession, advances: Mapping[str, tuple[StaleMark, date | None]]
    ) -> None:
        """Move each account's mark from what was read to the given day (None: clear it and
        the dirty flag), unless the writer touched the account since the mark was read (then
        the mark stays, and the days are scored again: repeated, never lost)."""
        if not advances:
            return
        ac = ACCOUNTS.c
        stmt = (
            update(ACCOUNTS)
            .where(
                ac.account_id == bindparam("b_account_id"),
                ac.updated_at == bindparam("b_updated_at"),
                or_(
                    and_(ac.rescore_from.is_(None), bindparam("b_unmarked", type_=Boolean)),
                    ac.rescore_from == bindparam("b_read", type_=Date),
                ),
            )
            .values(
                rescore_from=bindparam("b_next", type_=Date),
                dirty=case((bindparam("b_clear", type_=Boolean), False), else_=ac.dirty),
            )
        )
        await session.execute(
            stmt,
            [
                {
                    "b_account_id": account_id,
                    "b_updated_at": mark.updated_at,
                    "b_unmarked": mark.rescore_from is None,
                    "b_read": mark.rescore_from,
                    "b_next": day,
                    "b_clear": day is None,
                }
                for account_id, (mark, day) in sorted(advances.items())
            ],
        )

    async def dirty_accounts(
        self, session: AsyncSession, limit: int, after: str | None = None
    ) -> list[str]:
        """The next ``limit`` accounts after ``after`` (by id, keyset pagination) touched since
        they were last scored."""
        stmt = (
            select(ACCOUNTS.c.account_id)
            .where(ACCOUNTS.c.dirty.is_(True))
            .order_by(ACCOUNTS.c.account_id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(ACCOUNTS.c.account_id > after)
        return list(await session.scalars(stmt))

    async def all_account_ids(
        self, session: AsyncSession, after: str | None, limit: int
    ) -> list[str]:
        """The next ``limit`` account ids after ``after`` (keyset pagination for the sweep)."""
        stmt = select(ACCOUNTS.c.account_id).order_by(ACCOUNTS.c.account_id).limit(limit)
        if after is not None:
            stmt = stmt.where(ACCOUNTS.c.account_id > after)
        return list(await session.scalars(stmt))

    async def get_offsets(
        self,
        session: AsyncSession,
        group_id: str,
        tps: Iterable[tuple[str, int]],
    ) -> dict[tuple[str, int], int]:
        """The stored next offsets of ``tps`` ((topic, partition) pairs) for ``group_id``;
        partitions never flushed are absent."""
        stored = await load_offsets(session, group_id, (TopicPartition(t, p) for t, p in tps))
        return {(tp.topic, tp.partition): o for tp, o in stored.items()}
