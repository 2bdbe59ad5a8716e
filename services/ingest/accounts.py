"""The user-to-account directory: the account of each user's last ``group`` call.

Read through a TTL cache when an event names no account; written after the broker has
acknowledged a ``group`` event (the scorer writes the same table from the topic as well).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import UserAccount
from shared.db.session import transaction
from shared.db.upsert import insert_for

log = logging.getLogger(__name__)

NEGATIVE_TTL_CAP_S = 5.0
"""A user with no group call yet is remembered briefly, so their group call made through
another ingest process is seen soon."""


class AccountDirectory:
    """``lookup`` answers from the cache or one query; ``remember`` upserts memberships.

    Guarantees: a membership written by :meth:`remember` is visible to this process at once;
    one written elsewhere within ``ttl_s`` (``min(ttl_s, 5 s)`` for users with none before).
    A write never replaces a membership from a later group call (``updated_at`` only grows).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl_s: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._negative_ttl_s = min(ttl_s, NEGATIVE_TTL_CAP_S)
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, tuple[str | None, float]] = {}
        self.queries = 0

    async def lookup(self, user_ids: Iterable[str]) -> dict[str, str]:
        """user id -> account id for those of ``user_ids`` with a group call on record."""
        now = self._clock()
        found: dict[str, str] = {}
        missing: list[str] = []
        for user_id in set(user_ids):
            cached = self._cache.get(user_id)
            if cached is not None and cached[1] > now:
                if cached[0] is not None:
                    found[user_id] = cached[0]
            else:
                missing.append(user_id)
        if not missing:
            return found
        self.queries += 1
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(UserAccount.user_id, UserAccount.account_id).where(
                        UserAccount.user_id.in_(missing)
                    )
                )
            ).all()
        from_db = {user_id: account_id for user_id, account_id in rows}
        for user_id in missing:
            account = from_db.get(user_id)
            ttl = self._ttl_s if account is not None else self._negative_ttl_s
            self._put(user_id, account, now + ttl)
            if account is not None:
                found[user_id] = account
        return found

    async def remember(self, memberships: Mapping[str, tuple[str, datetime]]) -> None:
        """Store user id -> (account id, time of the group call); the cache is updated even
        when the database write fails (the broker already has the events; the scorer will
        write the table from them), and the failure is logged."""
        if not memberships:
            return
        expires = self._clock() + self._ttl_s
        for user_id, (account_id, _) in memberships.items():
            self._put(user_id, account_id, expires)
        rows = [
            {"user_id": u, "account_id": a, "updated_at": at}
            for u, (a, at) in sorted(memberships.items())
        ]
        try:
            async with transaction(self._sessions) as session:
                table: Any = UserAccount.__table__
                stmt = insert_for(session, table).values(rows)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["user_id"],
                    set_={
                        "account_id": stmt.excluded.account_id,
                        "updated_at": stmt.excluded.updated_at,
                    },
                    where=table.c.updated_at <= stmt.excluded.updated_at,
                )
                await session.execute(stmt)
        except Exception:
            log.warning("user_accounts upsert failed for %d users", len(rows), exc_info=True)

    def _put(self, user_id: str, account_id: str | None, expires_at: float) -> None:
        if self._ttl_s <= 0:
            return
        if len(self._cache) >= self._max_entries and user_id not in self._cache:
            now = self._clock()
            self._cache = {u: v for u, v in self._cache.items() if v[1] > now}
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
        self._cache[user_id] = (account_id, expires_at)
